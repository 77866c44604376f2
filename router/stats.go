package router

import "fmt"

// MaxVio returns the maximal violation of a load vector,
// (max_i load_i − mean load) / mean load, the measure of Wang et al.,
// "Auxiliary-Loss-Free Load Balancing Strategy for Mixture-of-Experts"
// (arXiv 2408.15664), which the report's balancing comes from; 0 when no
// token was routed.
func MaxVio[T int32 | int64 | int](load []T) float64 {
	if len(load) == 0 {
		return 0
	}
	var tot, mx float64
	for _, n := range load {
		tot += float64(n)
		mx = max(mx, float64(n))
	}
	if tot == 0 {
		return 0
	}
	mean := tot / float64(len(load))
	return (mx - mean) / mean
}

// Stats accumulates routing statistics over batches: per-expert load,
// MaxVio of the last batch and of the accumulated load, how many tokens
// reach each group, and how many groups (nodes, when groups are placed one
// per node as in DeepSeek-V3) each token reaches.
type Stats struct {
	cfg Config
	// Load is the accumulated per-expert token count.
	Load []int64
	// GroupTokens counts, per group, the tokens with at least one chosen
	// expert in it.
	GroupTokens []int64
	// GroupsReached[n] counts the tokens whose experts lie in n distinct
	// groups (n in [1, min(TopK, Groups)]; index 0 stays 0).
	GroupsReached []int64
	// Tokens and Batches count what was added.
	Tokens, Batches int64
	// BatchMaxVio is the MaxVio of the last batch added.
	BatchMaxVio float64

	seen []int64 // per group: last token id+1 that reached it
}

// NewStats returns empty statistics for cfg.
func NewStats(cfg Config) (*Stats, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Stats{
		cfg:           cfg,
		Load:          make([]int64, cfg.Experts),
		GroupTokens:   make([]int64, cfg.Groups),
		GroupsReached: make([]int64, min(cfg.TopK, cfg.Groups)+1),
		seen:          make([]int64, cfg.Groups),
	}, nil
}

// Add accumulates one batch's routing.
func (st *Stats) Add(rt *Routing) error {
	c := st.cfg
	if rt.K != c.TopK || len(rt.Load) != c.Experts || len(rt.Experts) != rt.Tokens*rt.K {
		return fmt.Errorf("router: stats for %d experts top-%d given a routing of %d experts top-%d", c.Experts, c.TopK, len(rt.Load), rt.K)
	}
	for i, n := range rt.Load {
		st.Load[i] += int64(n)
	}
	gs := c.GroupSize()
	for t := 0; t < rt.Tokens; t++ {
		mark := st.Tokens + int64(t) + 1
		ids := rt.Experts[t*rt.K : (t+1)*rt.K]
		reached := 0
		for _, e := range ids {
			g := int(e) / gs
			if st.seen[g] != mark {
				st.seen[g] = mark
				st.GroupTokens[g]++
				reached++
			}
		}
		st.GroupsReached[reached]++
	}
	st.Tokens += int64(rt.Tokens)
	st.Batches++
	st.BatchMaxVio = MaxVio(rt.Load)
	return nil
}

// MaxVio returns the MaxVio of the load accumulated over all batches.
func (st *Stats) MaxVio() float64 { return MaxVio(st.Load) }

// MeanGroupsReached returns the average number of groups (nodes) a token
// reaches.
func (st *Stats) MeanGroupsReached() float64 {
	if st.Tokens == 0 {
		return 0
	}
	var s float64
	for n, c := range st.GroupsReached {
		s += float64(n) * float64(c)
	}
	return s / float64(st.Tokens)
}
