package mla

import (
	"fmt"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/fp8"
	"github.com/dsv3go/dsv3/internal/safetensors"
	"github.com/dsv3go/dsv3/internal/testutil"
	"github.com/dsv3go/dsv3/yarn"
)

// tinyConfig reads the tiny fixture checkpoint's config.json.
func tinyConfig(t testing.TB) Config {
	t.Helper()
	var j struct {
		Hidden      int     `json:"hidden_size"`
		Heads       int     `json:"num_attention_heads"`
		QLora       int     `json:"q_lora_rank"`
		KVLora      int     `json:"kv_lora_rank"`
		Nope        int     `json:"qk_nope_head_dim"`
		Rope        int     `json:"qk_rope_head_dim"`
		V           int     `json:"v_head_dim"`
		Eps         float64 `json:"rms_norm_eps"`
		Theta       float64 `json:"rope_theta"`
		MaxPos      int     `json:"max_position_embeddings"`
		RopeScaling *struct {
			Type         string  `json:"type"`
			Factor       float64 `json:"factor"`
			Orig         int     `json:"original_max_position_embeddings"`
			BetaFast     float64 `json:"beta_fast"`
			BetaSlow     float64 `json:"beta_slow"`
			Mscale       float64 `json:"mscale"`
			MscaleAllDim float64 `json:"mscale_all_dim"`
		} `json:"rope_scaling"`
	}
	testutil.ReadJSON(t, testutil.Fixture(t, "tiny", "config.json"), &j)
	c := Config{
		Hidden: j.Hidden, Heads: j.Heads, QLoraRank: j.QLora, KVLoraRank: j.KVLora,
		QKNopeHeadDim: j.Nope, QKRopeHeadDim: j.Rope, VHeadDim: j.V, RMSNormEps: j.Eps,
		Rope: yarn.Config{Theta: j.Theta, Dim: j.Rope, MaxPositionEmbeddings: j.MaxPos},
	}
	if s := j.RopeScaling; s != nil {
		c.Rope.Scaling = &yarn.Scaling{Type: s.Type, Factor: s.Factor, OriginalMaxPositionEmbeddings: s.Orig,
			BetaFast: s.BetaFast, BetaSlow: s.BetaSlow, Mscale: s.Mscale, MscaleAllDim: s.MscaleAllDim}
	}
	return c
}

// loadLayer builds layer n of the tiny checkpoint, binding every weight
// through Params() names: FP8 weights dequantised to float32 by the test
// oracle, or bound as they are by bind when it is not nil.
func loadLayer(t testing.TB, n int, bind func(name string) dsv3.Weight, opts ...Option) *MLA {
	t.Helper()
	m, err := New(tinyConfig(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ck := testutil.Checkpoint(t)
	prefix := fmt.Sprintf("model.layers.%d.self_attn.", n)
	for _, p := range m.Params() {
		name := prefix + p.Name
		if p.Slot != nil && bind != nil {
			if w := bind(name); w != nil {
				*p.Slot = w
				continue
			}
		}
		w := testutil.TensorF32(t, ck, name)
		switch {
		case !p.Value.Empty():
			if err := w.CheckShape(name, p.Value.Rows, p.Value.Cols); err != nil {
				t.Fatal(err)
			}
			p.Value.CopyFrom(w)
		case p.Slot != nil:
			*p.Slot = w
		default:
			t.Fatalf("%s: no place to bind", name)
		}
	}
	return m
}

// TestFixtureAttention checks the training/prefill forward of layers 0 and
// 1 against the reference module outputs, and the inference paths (both)
// over a fresh cache.
func TestFixtureAttention(t *testing.T) {
	for _, layer := range []int{0, 1} {
		m := loadLayer(t, layer, nil)
		x := testutil.ExpectedMatrix(t, fmt.Sprintf("attn_layer%d_input_f32_seq40", layer))
		want, _ := testutil.Expected(t, fmt.Sprintf("attn_layer%d_output_f32_seq40", layer))
		s := dsv3.Seq{Count: 1, Len: x.Rows, Start: 0}
		y, _, err := m.Forward(x, s, false)
		if err != nil {
			t.Fatal(err)
		}
		if e := testutil.MatrixRelErr(y, want); e > 1e-5 {
			t.Errorf("layer %d forward: rel err %.3g > 1e-5", layer, e)
		} else {
			t.Logf("layer %d forward: rel err %.3g", layer, e)
		}
		for _, path := range []Path{Absorbed, Naive} {
			c, err := NewCache(m.Config(), 1, 64)
			if err != nil {
				t.Fatal(err)
			}
			y, err := m.Infer(x, s, c, path)
			if err != nil {
				t.Fatal(err)
			}
			if e := testutil.MatrixRelErr(y, want); e > 1e-5 {
				t.Errorf("layer %d %v prefill: rel err %.3g > 1e-5", layer, path, e)
			}
		}
	}
}

// TestFixtureCache checks the cached latents and RoPE'd keys of layer 0
// against the reference's absorb-path caches.
func TestFixtureCache(t *testing.T) {
	m := loadLayer(t, 0, nil)
	x := testutil.ExpectedMatrix(t, "attn_layer0_input_f32_seq40")
	c, err := NewCache(m.Config(), 1, 40)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Infer(x, dsv3.Seq{Count: 1, Len: 40}, c, Absorbed); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		name string
		got  dsv3.Matrix
	}{{"mla_layer0_kv_cache_f32_seq40", c.Latent(0)}, {"mla_layer0_pe_cache_f32_seq40", c.RopeKey(0)}} {
		want, shape := testutil.Expected(t, a.name)
		if err := a.got.CheckShape(a.name, shape[0], shape[1]); err != nil {
			t.Fatal(err)
		}
		if e := testutil.MatrixRelErr(a.got, want); e > 1e-5 {
			t.Errorf("%s: rel err %.3g > 1e-5", a.name, e)
		} else {
			t.Logf("%s: rel err %.3g", a.name, e)
		}
	}
}

// TestFixtureGradients checks Backward against the fixture's float64
// gradients of loss = sum(output ⊙ R) for layer 0.
func TestFixtureGradients(t *testing.T) {
	m := loadLayer(t, 0, nil, WithTraining(1))
	x := testutil.ExpectedMatrix(t, "attn_layer0_input_f32_seq40")
	r := testutil.ExpectedMatrix(t, "grad_attn_layer0_R_seq40")
	_, rec, err := m.Forward(x, dsv3.Seq{Count: 1, Len: 40}, true)
	if err != nil {
		t.Fatal(err)
	}
	dx, err := m.Backward(rec, r)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got dsv3.Matrix) {
		want, _ := testutil.Expected(t, name)
		if e := testutil.MatrixRelErr(got, want); e > 1e-3 {
			t.Errorf("%s: rel err %.3g > 1e-3", name, e)
		} else {
			t.Logf("%s: rel err %.3g", name, e)
		}
	}
	check("grad_attn_layer0_input_f64_seq40", dx)
	grads := map[string]dsv3.Matrix{}
	for _, p := range m.Params() {
		grads[p.Name] = p.Grad
	}
	for _, n := range []string{"q_a_proj", "q_a_layernorm", "q_b_proj", "kv_a_proj_with_mqa", "kv_a_layernorm", "kv_b_proj", "o_proj"} {
		g, ok := grads[n+".weight"]
		if !ok || g.Empty() {
			t.Fatalf("no gradient for %s.weight", n)
		}
		check("grad_attn_layer0_"+n+"_f64_seq40", g)
	}
}

// bindFP8 returns a binder that keeps the checkpoint's F8_E4M3 weights as
// fp8.BlockWeight (one byte a weight, decoded on the fly).
func bindFP8(t testing.TB) func(string) dsv3.Weight {
	ck := testutil.Checkpoint(t)
	return func(name string) dsv3.Weight {
		tn, err := ck.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if tn.DType != safetensors.F8E4M3 {
			return nil
		}
		sc, err := ck.Tensor(name + "_scale_inv")
		if err != nil {
			t.Fatal(err)
		}
		w, err := fp8.BlockWeightFromBytes(tn.Shape[0], tn.Shape[1], tn.Data, sc.Data)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
}

// TestFixtureFP8Weights runs both layers with the checkpoint's FP8 weights
// kept quantised: the forward and both cached paths match the reference
// (which multiplies by the dequantised weights) within 1e-5.
func TestFixtureFP8Weights(t *testing.T) {
	for _, layer := range []int{0, 1} {
		m := loadLayer(t, layer, bindFP8(t))
		if _, ok := m.KVB.W.(*fp8.BlockWeight); !ok {
			t.Fatalf("kv_b_proj bound as %T, want *fp8.BlockWeight", m.KVB.W)
		}
		x := testutil.ExpectedMatrix(t, fmt.Sprintf("attn_layer%d_input_f32_seq40", layer))
		want, _ := testutil.Expected(t, fmt.Sprintf("attn_layer%d_output_f32_seq40", layer))
		s := dsv3.Seq{Count: 1, Len: 40}
		y, _, err := m.Forward(x, s, false)
		if err != nil {
			t.Fatal(err)
		}
		if e := testutil.MatrixRelErr(y, want); e > 1e-5 {
			t.Errorf("layer %d FP8 forward: rel err %.3g > 1e-5", layer, e)
		}
		for _, path := range []Path{Absorbed, Naive} {
			c, _ := NewCache(m.Config(), 1, 40)
			y, err := m.Infer(x.Slice(0, 30), dsv3.Seq{Count: 1, Len: 30}, c, path)
			if err != nil {
				t.Fatal(err)
			}
			full := dsv3.NewMatrix(40, x.Cols)
			full.Slice(0, 30).CopyFrom(y)
			for p := 30; p < 40; p++ {
				y, err := m.Infer(x.Slice(p, p+1), dsv3.Seq{Count: 1, Len: 1, Start: p}, c, path)
				if err != nil {
					t.Fatal(err)
				}
				full.Slice(p, p+1).CopyFrom(y)
			}
			if e := testutil.MatrixRelErr(full, want); e > 1e-5 {
				t.Errorf("layer %d FP8 %v prefill 30 + 10 steps: rel err %.3g > 1e-5", layer, path, e)
			}
		}
		if _, _, err := m.Forward(x, s, true); err == nil {
			t.Errorf("layer %d: training through FP8 weights accepted", layer)
		}
	}
}
