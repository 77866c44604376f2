package router

import (
	"math"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/testutil"
)

// tinyConfig is the router part of ../shared/fixtures/tiny/config.json.
func tinyConfig(t *testing.T) Config {
	var cj struct {
		Hidden       int     `json:"hidden_size"`
		Experts      int     `json:"n_routed_experts"`
		TopK         int     `json:"num_experts_per_tok"`
		Groups       int     `json:"n_group"`
		TopKGroups   int     `json:"topk_group"`
		TopKMethod   string  `json:"topk_method"`
		ScoringFunc  string  `json:"scoring_func"`
		NormTopKProb bool    `json:"norm_topk_prob"`
		Scale        float32 `json:"routed_scaling_factor"`
	}
	testutil.ReadJSON(t, testutil.Fixture(t, "tiny", "config.json"), &cj)
	return Config{Hidden: cj.Hidden, Experts: cj.Experts, TopK: cj.TopK, Groups: cj.Groups, TopKGroups: cj.TopKGroups,
		TopKMethod: cj.TopKMethod, ScoringFunc: cj.ScoringFunc, NormTopKProb: cj.NormTopKProb, RoutedScalingFactor: cj.Scale}
}

// tinyRouter loads layer 1's router from the tiny checkpoint through
// Params() names.
func tinyRouter(t *testing.T, train bool) *Router {
	cfg := tinyConfig(t)
	r, err := New(cfg, train)
	if err != nil {
		t.Fatal(err)
	}
	ck := testutil.Checkpoint(t)
	for _, p := range r.Params() {
		v := testutil.TensorF32(t, ck, "model.layers.1.mlp.gate."+p.Name)
		if err := v.CheckShape(p.Name, p.Value.Rows, p.Value.Cols); err != nil {
			t.Fatal(err)
		}
		p.Value.CopyFrom(v)
	}
	return r
}

// TestTinyLayer1MatchesReference: the reference Gate's chosen experts, in
// order, and its weights within 1e-6.
func TestTinyLayer1MatchesReference(t *testing.T) {
	r := tinyRouter(t, false)
	x := testutil.ExpectedMatrix(t, "gate_layer1_input_seq40")
	var want struct {
		Indices [][]int32   `json:"indices"`
		Weights [][]float64 `json:"weights"`
	}
	testutil.ReadJSON(t, testutil.Fixture(t, "tiny", "expected", "gate_layer1_seq40.json"), &want)
	rt, _, err := r.Forward(x, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Indices) != x.Rows {
		t.Fatalf("fixture has %d tokens, input %d", len(want.Indices), x.Rows)
	}
	var worst float64
	for tk := range want.Indices {
		ids, w := rt.Token(tk)
		for j := range ids {
			if ids[j] != want.Indices[tk][j] {
				t.Fatalf("token %d: experts %v, reference %v", tk, ids, want.Indices[tk])
			}
			worst = math.Max(worst, math.Abs(float64(w[j])-want.Weights[tk][j]))
		}
	}
	t.Logf("max |weight - reference| = %.3g", worst)
	if worst > 1e-6 {
		t.Fatalf("weights differ from the reference by %g > 1e-6", worst)
	}
	// The fixture's expert token counts (manifest) are the routing's load.
	wantLoad := []int32{1, 11, 9, 11, 22, 15, 6, 16, 12, 12, 14, 8, 2, 10, 7, 4}
	for e, n := range rt.Load {
		if n != wantLoad[e] {
			t.Fatalf("load %v, reference %v", rt.Load, wantLoad)
		}
	}
}

// TestTinyLayer1WithoutBiasDiffers guards the fixture test against
// passing with a bias that is ignored: the reference's choice changes for
// most tokens without it (the manifest: 30 of 40).
func TestTinyLayer1WithoutBiasDiffers(t *testing.T) {
	r := tinyRouter(t, false)
	x := testutil.ExpectedMatrix(t, "gate_layer1_input_seq40")
	with, _, err := r.Forward(x, false)
	if err != nil {
		t.Fatal(err)
	}
	r.Bias.Zero()
	without, _, err := r.Forward(x, false)
	if err != nil {
		t.Fatal(err)
	}
	diff := 0
	for tk := 0; tk < x.Rows; tk++ {
		a, _ := with.Token(tk)
		b, _ := without.Token(tk)
		same := true
		for j := range a {
			same = same && a[j] == b[j]
		}
		if !same {
			diff++
		}
	}
	if diff < 20 {
		t.Fatalf("the bias changed the choice of only %d of %d tokens", diff, x.Rows)
	}
}

// TestTinyRouterParamNames checks the checkpoint-relative names.
func TestTinyRouterParamNames(t *testing.T) {
	r, err := New(Config{Hidden: 8, Experts: 4, TopK: 2, Groups: 2, TopKGroups: 1, TopKMethod: NoAuxTC, ScoringFunc: Sigmoid, RoutedScalingFactor: 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	ps := r.Params()
	if len(ps) != 2 || ps[0].Name != "weight" || ps[1].Name != "e_score_correction_bias" {
		t.Fatalf("params %+v", ps)
	}
	if ps[0].Grad.Rows != 4 || ps[0].Grad.Cols != 8 || !ps[1].Grad.Empty() || ps[1].Value.Cols != 4 {
		t.Fatal("param shapes")
	}
	r.Cfg.TopKMethod = "greedy"
	if len(r.Params()) != 1 {
		t.Fatal("greedy router lists a bias")
	}
	var _ dsv3.Weight = ps[0].Value
}
