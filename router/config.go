package router

import (
	"fmt"
	"math"
)

// Scoring functions (config.json scoring_func).
const (
	// Sigmoid is DeepSeek-V3's affinity s = sigmoid(u·e) (report eq. 15).
	Sigmoid = "sigmoid"
	// Softmax is DeepSeek-V2's affinity s = softmax(u·E) over all experts.
	Softmax = "softmax"
)

// NoAuxTC is the topk_method of DeepSeek-V3: auxiliary-loss-free balancing
// with the selection bias e_score_correction_bias (report §2.1.2).
const NoAuxTC = "noaux_tc"

// Config is the router's configuration. Each field names the config.json
// key it comes from and, where the report has one, its symbol.
type Config struct {
	// Hidden is hidden_size: the width d of the token representation u_t.
	Hidden int
	// Experts is n_routed_experts: N_r, the number of routed experts.
	Experts int
	// TopK is num_experts_per_tok: K_r, the experts each token chooses.
	TopK int
	// Groups is n_group: experts are split into this many equal,
	// consecutive groups (one per node in DeepSeek-V3's deployment).
	// 1 disables group-limited routing.
	Groups int
	// TopKGroups is topk_group: M, the groups (nodes) a token may reach.
	TopKGroups int
	// TopKMethod is topk_method. "noaux_tc" (DeepSeek-V3) adds the
	// selection bias e_score_correction_bias to the scores used to choose
	// experts and groups; any other value ("greedy",
	// "group_limited_greedy") chooses on the scores alone and the router
	// has no bias parameter.
	TopKMethod string
	// ScoringFunc is scoring_func: "sigmoid" (DeepSeek-V3) or "softmax".
	ScoringFunc string
	// NormTopKProb is norm_topk_prob: divide the chosen experts' scores by
	// their sum (report eq. 13). The official reference does this whenever
	// scoring is sigmoid; DeepSeek-V3's config.json sets it true.
	NormTopKProb bool
	// RoutedScalingFactor is routed_scaling_factor: the gate weights are
	// multiplied by it (2.5 in DeepSeek-V3).
	RoutedScalingFactor float32
}

// UsesBias reports whether selection adds the bias e_score_correction_bias,
// which is keyed on TopKMethod == "noaux_tc" (never on the model width).
func (c Config) UsesBias() bool { return c.TopKMethod == NoAuxTC }

// GroupSize returns the experts per group, n_routed_experts / n_group.
func (c Config) GroupSize() int {
	if c.Groups <= 0 {
		return 0
	}
	return c.Experts / c.Groups
}

// Validate returns an error naming the first inconsistent field
// (with its config.json name) and the expected and actual values.
func (c Config) Validate() error {
	switch {
	case c.Hidden <= 0:
		return fmt.Errorf("router: hidden_size %d must be positive", c.Hidden)
	case c.Experts <= 0:
		return fmt.Errorf("router: n_routed_experts %d must be positive", c.Experts)
	case c.Experts > math.MaxInt32:
		return fmt.Errorf("router: n_routed_experts %d exceeds the int32 expert ids", c.Experts)
	case c.TopK <= 0 || c.TopK > c.Experts:
		return fmt.Errorf("router: num_experts_per_tok %d must be in [1, n_routed_experts %d]", c.TopK, c.Experts)
	case c.Groups <= 0:
		return fmt.Errorf("router: n_group %d must be positive (1 disables group-limited routing)", c.Groups)
	case c.Experts%c.Groups != 0:
		return fmt.Errorf("router: n_group %d does not divide n_routed_experts %d", c.Groups, c.Experts)
	case c.TopKGroups <= 0 || c.TopKGroups > c.Groups:
		return fmt.Errorf("router: topk_group %d must be in [1, n_group %d]", c.TopKGroups, c.Groups)
	case c.TopK > c.TopKGroups*c.GroupSize():
		return fmt.Errorf("router: num_experts_per_tok %d exceeds the %d experts of topk_group %d kept groups of %d",
			c.TopK, c.TopKGroups*c.GroupSize(), c.TopKGroups, c.GroupSize())
	case c.ScoringFunc != Sigmoid && c.ScoringFunc != Softmax:
		return fmt.Errorf("router: scoring_func %q, want %q or %q", c.ScoringFunc, Sigmoid, Softmax)
	case !(c.RoutedScalingFactor > 0) || math.IsInf(float64(c.RoutedScalingFactor), 0):
		return fmt.Errorf("router: routed_scaling_factor %v must be positive and finite", c.RoutedScalingFactor)
	case c.UsesBias() && c.Groups > 1 && c.GroupSize() < 2:
		return fmt.Errorf("router: topk_method %q scores a group by its top-2 experts, but n_routed_experts %d / n_group %d leaves %d per group",
			c.TopKMethod, c.Experts, c.Groups, c.GroupSize())
	}
	return nil
}
