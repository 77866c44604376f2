package router

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3"
)

var propertyConfigs = []Config{
	{Hidden: 24, Experts: 16, TopK: 4, Groups: 4, TopKGroups: 2, TopKMethod: NoAuxTC, ScoringFunc: Sigmoid, NormTopKProb: true, RoutedScalingFactor: 2.5},
	{Hidden: 32, Experts: 64, TopK: 8, Groups: 8, TopKGroups: 4, TopKMethod: NoAuxTC, ScoringFunc: Sigmoid, NormTopKProb: true, RoutedScalingFactor: 2.5},
	{Hidden: 16, Experts: 12, TopK: 6, Groups: 3, TopKGroups: 2, TopKMethod: NoAuxTC, ScoringFunc: Sigmoid, NormTopKProb: true, RoutedScalingFactor: 1},
	{Hidden: 16, Experts: 20, TopK: 3, Groups: 1, TopKGroups: 1, TopKMethod: NoAuxTC, ScoringFunc: Sigmoid, NormTopKProb: false, RoutedScalingFactor: 1.5},
	{Hidden: 16, Experts: 32, TopK: 6, Groups: 4, TopKGroups: 3, TopKMethod: "group_limited_greedy", ScoringFunc: Softmax, NormTopKProb: false, RoutedScalingFactor: 16},
	{Hidden: 16, Experts: 8, TopK: 2, Groups: 1, TopKGroups: 1, TopKMethod: "greedy", ScoringFunc: Softmax, NormTopKProb: true, RoutedScalingFactor: 1},
	{Hidden: 8, Experts: 8, TopK: 8, Groups: 8, TopKGroups: 8, TopKMethod: "greedy", ScoringFunc: Sigmoid, NormTopKProb: true, RoutedScalingFactor: 1},
}

// TestRandomAgainstOracle checks, over many random tokens and
// configurations, that the chosen experts and their order equal the
// oracle's (tokens whose decision margin is below float32 resolution are
// skipped and counted), that no expert lies outside the kept groups, that
// the weights come from the unbiased scores, and that with norm_topk_prob
// they sum to routed_scaling_factor.
func TestRandomAgainstOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for ci, c := range propertyConfigs {
		t.Run(fmt.Sprintf("%d_%s_%s_E%d_G%d_M%d_K%d", ci, c.TopKMethod, c.ScoringFunc, c.Experts, c.Groups, c.TopKGroups, c.TopK), func(t *testing.T) {
			checked, skipped := 0, 0
			for trial := 0; trial < 20; trial++ {
				// A large bias makes biased and unbiased orders differ.
				r := randRouter(rng, c, false, 0.3)
				r.Workers = 1 + trial%3
				T := 1 + rng.IntN(200)
				x := randMatrix(rng, T, c.Hidden, 1.5)
				rt, rec, err := r.Forward(x, false)
				if err != nil {
					t.Fatal(err)
				}
				if rec != nil {
					t.Fatal("inference forward returned a record")
				}
				load := make([]int32, c.Experts)
				w := r.W.(dsv3.Matrix)
				var bias []float32
				if c.UsesBias() {
					bias = r.Bias.Row(0)
				}
				for tk := 0; tk < T; tk++ {
					ids, ws := rt.Token(tk)
					s := oracleScores(c, w, x.Row(tk))
					want, kept, margin := oracleChoice(c, s, bias)
					seen := map[int32]bool{}
					for _, e := range ids {
						load[e]++
						if seen[e] {
							t.Fatalf("token %d chose expert %d twice: %v", tk, e, ids)
						}
						seen[e] = true
					}
					if margin < 1e-5 {
						skipped++
						continue
					}
					checked++
					for j := range ids {
						if int(ids[j]) != want[j] {
							t.Fatalf("token %d: experts %v, oracle %v (margin %g)", tk, ids, want, margin)
						}
						if c.Groups > 1 && !kept[int(ids[j])/c.GroupSize()] {
							t.Fatalf("token %d: expert %d outside the kept groups %v", tk, ids[j], kept)
						}
					}
					ow := oracleWeights(c, s, want)
					var sum float64
					for j := range ws {
						sum += float64(ws[j])
						if math.Abs(float64(ws[j])-ow[j]) > 2e-6*float64(c.RoutedScalingFactor) {
							t.Fatalf("token %d: weights %v, oracle (unbiased scores) %v", tk, ws, ow)
						}
					}
					if c.NormTopKProb && math.Abs(sum-float64(c.RoutedScalingFactor)) > 1e-5*float64(c.RoutedScalingFactor) {
						t.Fatalf("token %d: weights sum to %g, want routed_scaling_factor %g", tk, sum, c.RoutedScalingFactor)
					}
				}
				for e := range load {
					if load[e] != rt.Load[e] {
						t.Fatalf("Load %v, counted %v", rt.Load, load)
					}
				}
			}
			if skipped*50 > checked {
				t.Fatalf("%d tokens checked, %d skipped as near-ties", checked, skipped)
			}
			t.Logf("%d tokens checked, %d near-ties skipped", checked, skipped)
		})
	}
}

// TestBiasSelectsOnly: with a huge bias on one expert, every token chooses
// it, first, yet its weight is its unbiased score.
func TestBiasSelectsOnly(t *testing.T) {
	c := propertyConfigs[0]
	rng := rand.New(rand.NewPCG(3, 4))
	r := randRouter(rng, c, false, 0)
	r.Bias.Data[5] = 100
	x := randMatrix(rng, 50, c.Hidden, 1)
	rt, _, err := r.Forward(x, false)
	if err != nil {
		t.Fatal(err)
	}
	w := r.W.(dsv3.Matrix)
	for tk := 0; tk < x.Rows; tk++ {
		ids, ws := rt.Token(tk)
		if ids[0] != 5 {
			t.Fatalf("token %d: experts %v do not start with the biased expert 5", tk, ids)
		}
		s := oracleScores(c, w, x.Row(tk))
		var tot float64
		for _, e := range ids {
			tot += s[e]
		}
		if want := s[5] / tot * 2.5; math.Abs(float64(ws[0])-want) > 1e-5 {
			t.Fatalf("token %d: weight %g of expert 5, want %g from its unbiased score", tk, ws[0], want)
		}
	}
}

// TestTiesGoToLowerIndex: with all scores equal, the lowest groups and the
// lowest experts win, in index order.
func TestTiesGoToLowerIndex(t *testing.T) {
	for _, c := range propertyConfigs {
		r, err := New(c, false) // zero weight: every score is equal
		if err != nil {
			t.Fatal(err)
		}
		rt, _, err := r.Forward(dsv3.NewMatrix(3, c.Hidden), false)
		if err != nil {
			t.Fatal(err)
		}
		for tk := 0; tk < 3; tk++ {
			ids, ws := rt.Token(tk)
			for j, e := range ids {
				if int(e) != j {
					t.Fatalf("%+v: tied experts chosen as %v, want 0..%d", c, ids, c.TopK-1)
				}
				if c.NormTopKProb && math.Abs(float64(ws[j])-float64(c.RoutedScalingFactor)/float64(c.TopK)) > 1e-6 {
					t.Fatalf("tied weights %v", ws)
				}
			}
		}
	}
	// Equal group scores but different experts: group 1 beats group 2 only
	// through the lower index.
	c := Config{Hidden: 4, Experts: 8, TopK: 2, Groups: 4, TopKGroups: 1, TopKMethod: NoAuxTC, ScoringFunc: Sigmoid, NormTopKProb: true, RoutedScalingFactor: 1}
	r, _ := New(c, false)
	copy(r.Bias.Data, []float32{0, 0, 1, 1, 1, 1, 0, 0})
	rt, _, err := r.Forward(dsv3.NewMatrix(1, 4), false)
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := rt.Token(0); ids[0] != 2 || ids[1] != 3 {
		t.Fatalf("tied groups 1 and 2: chose %v, want [2 3]", ids)
	}
}

// TestGroupScoreTopTwo: a group with one very high expert loses to a group
// with two good experts when scored by the top-2 sum (with bias), and wins
// when scored by the maximum (no bias).
func TestGroupScoreTopTwo(t *testing.T) {
	for _, method := range []string{NoAuxTC, "group_limited_greedy"} {
		c := Config{Hidden: 4, Experts: 6, TopK: 1, Groups: 2, TopKGroups: 1, TopKMethod: method, ScoringFunc: Sigmoid, NormTopKProb: true, RoutedScalingFactor: 1}
		r, _ := New(c, false)
		w := r.W.(dsv3.Matrix)
		// Logits for x = e0: group 0 = {4, -4, -4}, group 1 = {2, 2, 2}.
		for i, v := range []float32{4, -4, -4, 2, 2, 2} {
			w.Set(i, 0, v)
		}
		x := dsv3.NewMatrix(1, 4)
		x.Set(0, 0, 1)
		rt, _, err := r.Forward(x, false)
		if err != nil {
			t.Fatal(err)
		}
		want := int32(3)
		if method != NoAuxTC {
			want = 0
		}
		if ids, _ := rt.Token(0); ids[0] != want {
			t.Fatalf("%s: chose %v, want %d", method, ids, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	good := propertyConfigs[0]
	cases := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Hidden = 0 }, "hidden_size 0"},
		{func(c *Config) { c.Experts = 0 }, "n_routed_experts 0"},
		{func(c *Config) { c.TopK = 17 }, "num_experts_per_tok 17"},
		{func(c *Config) { c.TopK = 0 }, "num_experts_per_tok 0"},
		{func(c *Config) { c.Groups = 3 }, "n_group 3 does not divide n_routed_experts 16"},
		{func(c *Config) { c.Groups = 0 }, "n_group 0"},
		{func(c *Config) { c.TopKGroups = 5 }, "topk_group 5"},
		{func(c *Config) { c.TopKGroups = 1; c.TopK = 5 }, "num_experts_per_tok 5 exceeds the 4 experts of topk_group 1"},
		{func(c *Config) { c.ScoringFunc = "relu" }, `scoring_func "relu"`},
		{func(c *Config) { c.RoutedScalingFactor = 0 }, "routed_scaling_factor 0"},
		{func(c *Config) { c.RoutedScalingFactor = float32(math.NaN()) }, "routed_scaling_factor NaN"},
		{func(c *Config) { c.Groups = 16; c.TopKGroups = 4 }, "top-2"},
	}
	for _, tc := range cases {
		c := good
		tc.mod(&c)
		_, err := New(c, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %+v: error %v, want one containing %q", c, err, tc.want)
		}
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestForwardErrors(t *testing.T) {
	c := propertyConfigs[0]
	rng := rand.New(rand.NewPCG(5, 6))
	r := randRouter(rng, c, true, 0.1)
	x := randMatrix(rng, 40, c.Hidden, 1)
	check := func(name string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, want)
		}
	}
	_, _, err := r.Forward(randMatrix(rng, 3, c.Hidden+1, 1), false)
	check("width", err, "want 3x24")
	xn := x.Clone()
	xn.Set(7, 3, float32(math.NaN()))
	_, _, err = r.Forward(xn, true)
	check("NaN input", err, "at (7, 3)")
	xn.Set(7, 3, float32(math.Inf(1)))
	_, _, err = r.Forward(xn, true)
	check("Inf input", err, "non-finite")
	// A NaN in the weight makes NaN scores.
	w := r.W.(dsv3.Matrix)
	w.Set(9, 2, float32(math.NaN()))
	_, _, err = r.Forward(x, false)
	check("NaN score", err, "NaN affinity score for token 0, expert 9")
	w.Set(9, 2, 0)
	r.Bias.Data[1] = float32(math.NaN())
	_, _, err = r.Forward(x, false)
	check("NaN bias", err, "e_score_correction_bias")
	r.Bias.Data[1] = 0
	r.W = dsv3.NewMatrix(c.Experts+1, c.Hidden)
	_, _, err = r.Forward(x, false)
	check("weight shape", err, "weight shape [17, 24]")
	r.W = nil
	_, _, err = r.Forward(x, false)
	check("missing weight", err, "weight is not set")
	r.W = w
	r.Cfg.TopK = 100
	_, _, err = r.Forward(x, false)
	check("bad config", err, "num_experts_per_tok 100")
	r.Cfg = c

	_, rec, err := r.Forward(x, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Backward(rec, make([]float32, 3))
	check("dWeights length", err, "dWeights has 3 values")
	_, err = r.Backward(nil, nil)
	check("nil record", err, "record of a training Forward")
	_, err = r.SeqBalanceLoss(rec, 7, 1e-3)
	check("sequence length", err, "sequence length 7 does not divide the 40 tokens")
	_, err = r.SeqBalanceLoss("x", 8, 1e-3)
	check("bad record", err, "record of a training Forward")
	r.W = dsv3.Weight(bf16Of(w))
	_, err = r.Backward(rec, nil)
	check("bf16 backward", err, "float32 weight")
}

func bf16Of(m dsv3.Matrix) *dsv3.BF16Weight {
	d := make([]dsv3.BF16, len(m.Data))
	dsv3.BF16FromFloat32s(d, m.Data)
	w, err := dsv3.NewBF16Weight(m.Rows, m.Cols, d)
	if err != nil {
		panic(err)
	}
	return w
}

// TestBF16Weight: a router holding the checkpoint's BF16 weight chooses as
// one holding the same values widened to float32.
func TestBF16Weight(t *testing.T) {
	c := propertyConfigs[1]
	rng := rand.New(rand.NewPCG(7, 8))
	r := randRouter(rng, c, false, 0.1)
	b := bf16Of(r.W.(dsv3.Matrix))
	r.W = b.Float32()
	x := randMatrix(rng, 64, c.Hidden, 1)
	want, _, err := r.Forward(x, false)
	if err != nil {
		t.Fatal(err)
	}
	r.W = b
	got, _, err := r.Forward(x, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Experts {
		if got.Experts[i] != want.Experts[i] || math.Abs(float64(got.Weights[i]-want.Weights[i])) > 1e-6 {
			t.Fatalf("pair %d: BF16 (%d, %g), float32 (%d, %g)", i, got.Experts[i], got.Weights[i], want.Experts[i], want.Weights[i])
		}
	}
}
