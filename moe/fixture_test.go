package moe

import (
	"encoding/binary"
	"math"
	"strconv"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/fp8"
	"github.com/dsv3go/dsv3/internal/safetensors"
	"github.com/dsv3go/dsv3/internal/testutil"
	"github.com/dsv3go/dsv3/router"
)

// tinyConfig is the layer-1 MoE configuration of the tiny checkpoint,
// read from its config.json.
func tinyConfig(t *testing.T) (Config, int) {
	var cj struct {
		Hidden       int     `json:"hidden_size"`
		Inter        int     `json:"intermediate_size"`
		MoEInter     int     `json:"moe_intermediate_size"`
		Shared       int     `json:"n_shared_experts"`
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
	return Config{Hidden: cj.Hidden, Intermediate: cj.MoEInter, SharedExperts: cj.Shared, Router: router.Config{
		Hidden: cj.Hidden, Experts: cj.Experts, TopK: cj.TopK, Groups: cj.Groups, TopKGroups: cj.TopKGroups,
		TopKMethod: cj.TopKMethod, ScoringFunc: cj.ScoringFunc, NormTopKProb: cj.NormTopKProb, RoutedScalingFactor: cj.Scale}}, cj.Inter
}

// load fills every parameter of ps from the checkpoint tensor prefix+name
// (FP8 dequantised by the test helper's own decoder): into Value when the
// layer allocated one, else through the Slot.
func load(t *testing.T, prefix string, ps []dsv3.Param) {
	t.Helper()
	ck := testutil.Checkpoint(t)
	for _, p := range ps {
		v := testutil.TensorF32(t, ck, prefix+p.Name)
		switch {
		case !p.Value.Empty():
			if err := v.CheckShape(p.Name, p.Value.Rows, p.Value.Cols); err != nil {
				t.Fatal(err)
			}
			p.Value.CopyFrom(v)
		case p.Slot != nil:
			*p.Slot = v
		default:
			t.Fatalf("%s: neither value nor slot", p.Name)
		}
	}
}

func checkRel(t *testing.T, what string, got dsv3.Matrix, want []float64, tol float64) {
	t.Helper()
	e := testutil.MatrixRelErr(got, want)
	t.Logf("%s: max rel err %.3g", what, e)
	if e > tol || math.IsNaN(e) {
		t.Errorf("%s: max |err| / max |want| = %.3g > %g", what, e, tol)
	}
}

// TestTinyDenseMLP: layer 0's dense SwiGLU (intermediate_size) against the
// reference module pair, built both with float32 weights and slot-filled.
func TestTinyDenseMLP(t *testing.T) {
	cfg, inter := tinyConfig(t)
	x := testutil.ExpectedMatrix(t, "mlp_layer0_input_f32_seq40")
	want, _ := testutil.Expected(t, "mlp_layer0_output_f32_seq40")
	for _, mode := range []Mode{Float32, Inference} {
		f, err := NewSwiGLU(cfg.Hidden, inter, mode)
		if err != nil {
			t.Fatal(err)
		}
		load(t, "model.layers.0.mlp.", f.Params())
		y, _, err := f.Apply(x, false)
		if err != nil {
			t.Fatal(err)
		}
		checkRel(t, "mlp_layer0 "+mode.String(), y, want, 1e-5)
	}
}

func tinyMoE(t *testing.T, mode Mode) *MoE {
	cfg, _ := tinyConfig(t)
	m, err := New(cfg, Options{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	load(t, "model.layers.1.mlp.", m.Params())
	return m
}

// TestTinyMoE: layer 1's MoE, its shared part and its routed part against
// the reference module pairs.
func TestTinyMoE(t *testing.T) {
	x := testutil.ExpectedMatrix(t, "gate_layer1_input_seq40")
	want, _ := testutil.Expected(t, "moe_layer1_output_f32_seq40")
	wantShared, _ := testutil.Expected(t, "moe_layer1_shared_output_f32_seq40")
	wantRouted, _ := testutil.Expected(t, "moe_layer1_routed_output_f32_seq40")
	for _, mode := range []Mode{Inference, Float32, Training} {
		m := tinyMoE(t, mode)
		for _, train := range []bool{false, true} {
			y, _, err := m.Apply(x, train)
			if err != nil {
				t.Fatal(err)
			}
			checkRel(t, "moe_layer1 "+mode.String(), y, want, 1e-5)
		}
		ys, _, err := m.Shared.Apply(x, false)
		if err != nil {
			t.Fatal(err)
		}
		checkRel(t, "moe_layer1_shared", ys, wantShared, 1e-5)
		m.Shared = nil
		m.Cfg.SharedExperts = 0
		yr, _, err := m.Apply(x, false)
		if err != nil {
			t.Fatal(err)
		}
		checkRel(t, "moe_layer1_routed", yr, wantRouted, 1e-5)
	}
}

// TestTinyMoEGradients: the float64 gradient oracle of loss =
// sum(output ⊙ R) for the layer-1 MoE, expert selection fixed.
func TestTinyMoEGradients(t *testing.T) {
	m := tinyMoE(t, Training)
	x := testutil.ExpectedMatrix(t, "gate_layer1_input_seq40")
	R := testutil.ExpectedMatrix(t, "grad_moe_layer1_R_seq40")
	y, rec, err := m.Apply(x, true)
	if err != nil {
		t.Fatal(err)
	}
	var loss float64
	for i := range y.Data {
		loss += float64(y.Data[i]) * float64(R.Data[i])
	}
	var meta struct {
		Arrays map[string]struct {
			Loss float64 `json:"loss_value"`
		} `json:"arrays"`
	}
	testutil.ReadJSON(t, testutil.Fixture(t, "tiny", "expected", "manifest.json"), &meta)
	if l := meta.Arrays["grad_moe_layer1_input_f64_seq40"].Loss; math.Abs(loss-l) > 1e-4*math.Abs(l) {
		t.Errorf("loss %v, reference %v", loss, l)
	}
	dx, err := m.ApplyBackward(rec, R)
	if err != nil {
		t.Fatal(err)
	}
	grad := func(name string) dsv3.Matrix {
		for _, p := range m.Params() {
			if p.Name == name {
				return p.Grad
			}
		}
		t.Fatalf("no parameter %s", name)
		return dsv3.Matrix{}
	}
	exp := func(name string) []float64 {
		v, _ := testutil.Expected(t, name)
		return v
	}
	checkRel(t, "d input", dx, exp("grad_moe_layer1_input_f64_seq40"), 1e-3)
	checkRel(t, "d gate.weight", grad("gate.weight"), exp("grad_moe_layer1_gate_f64_seq40"), 1e-3)
	for _, p := range []string{"gate_proj", "up_proj", "down_proj"} {
		checkRel(t, "d shared_experts."+p, grad("shared_experts."+p+".weight"), exp("grad_moe_layer1_shared_experts_"+p+"_f64_seq40"), 1e-3)
		checkRel(t, "d experts.4."+p, grad("experts.4."+p+".weight"), exp("grad_moe_layer1_experts_4_"+p+"_f64_seq40"), 1e-3)
	}
	norms := dsv3.NewMatrix(16, 3)
	for e := range 16 {
		for j, p := range []string{"gate_proj", "up_proj", "down_proj"} {
			var s float64
			for _, v := range grad("experts." + strconv.Itoa(e) + "." + p + ".weight").Data {
				s += float64(v) * float64(v)
			}
			norms.Set(e, j, float32(math.Sqrt(s)))
		}
	}
	wantNorms := exp("grad_moe_layer1_experts_norms_f64_seq40")
	checkRel(t, "expert gradient norms", norms, wantNorms, 1e-3)
	for i, v := range wantNorms {
		if (v == 0) != (norms.Data[i] == 0) {
			t.Errorf("expert %d: gradient norm %v, reference %v (zero exactly for unchosen experts)", i/3, norms.Data[i], v)
		}
	}
}

// loadRaw binds every parameter to the checkpoint tensor as stored, the
// way an inference loader does: F8_E4M3 weights as fp8 block weights over
// the file's bytes (with their weight_scale_inv), BF16 weights as
// dsv3.BF16Weight, F32 values copied.
func loadRaw(t *testing.T, prefix string, ps []dsv3.Param) {
	t.Helper()
	ck := testutil.Checkpoint(t)
	for _, p := range ps {
		tn, err := ck.Tensor(prefix + p.Name)
		if err != nil {
			t.Fatal(err)
		}
		switch tn.DType {
		case safetensors.F8E4M3:
			sc, err := ck.Tensor(prefix + p.Name + "_scale_inv")
			if err != nil {
				t.Fatal(err)
			}
			w, err := fp8.BlockWeightFromBytes(tn.Shape[0], tn.Shape[1], tn.Data, sc.Data)
			if err != nil {
				t.Fatal(err)
			}
			*p.Slot = w
		case safetensors.BF16:
			d := make([]dsv3.BF16, tn.NumElements())
			for i := range d {
				d[i] = dsv3.BF16(binary.LittleEndian.Uint16(tn.Data[2*i:]))
			}
			w, err := dsv3.NewBF16Weight(tn.Shape[0], tn.Shape[1], d)
			if err != nil {
				t.Fatal(err)
			}
			*p.Slot = w
		case safetensors.F32:
			v := testutil.TensorF32(t, ck, prefix+p.Name)
			p.Value.CopyFrom(v)
		default:
			t.Fatalf("%s: dtype %s", p.Name, tn.DType)
		}
	}
}

// TestTinyMoEQuantisedWeights: the layer-1 MoE and the layer-0 MLP with
// the checkpoint's FP8 expert weights and BF16 router weight kept as
// stored (one byte a weight) match the reference pairs.
func TestTinyMoEQuantisedWeights(t *testing.T) {
	cfg, inter := tinyConfig(t)
	m, err := New(cfg, Options{Mode: Inference})
	if err != nil {
		t.Fatal(err)
	}
	loadRaw(t, "model.layers.1.mlp.", m.Params())
	if _, ok := m.Experts[4].Gate.W.(*fp8.BlockWeight); !ok {
		t.Fatalf("expert weight is %T, want an fp8 block weight", m.Experts[4].Gate.W)
	}
	if _, ok := m.Gate.W.(*dsv3.BF16Weight); !ok {
		t.Fatalf("router weight is %T, want BF16", m.Gate.W)
	}
	x := testutil.ExpectedMatrix(t, "gate_layer1_input_seq40")
	want, _ := testutil.Expected(t, "moe_layer1_output_f32_seq40")
	for _, w := range []int{1, 2} {
		m.Workers = w
		y, _, err := m.Apply(x, false)
		if err != nil {
			t.Fatal(err)
		}
		checkRel(t, "moe_layer1 with FP8 experts", y, want, 1e-5)
	}
	f, err := NewSwiGLU(cfg.Hidden, inter, Inference)
	if err != nil {
		t.Fatal(err)
	}
	loadRaw(t, "model.layers.0.mlp.", f.Params())
	y, _, err := f.Apply(testutil.ExpectedMatrix(t, "mlp_layer0_input_f32_seq40"), false)
	if err != nil {
		t.Fatal(err)
	}
	wantMLP, _ := testutil.Expected(t, "mlp_layer0_output_f32_seq40")
	checkRel(t, "mlp_layer0 with FP8 weights", y, wantMLP, 1e-5)
}
