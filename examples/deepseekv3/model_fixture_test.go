package deepseekv3

import (
	"fmt"
	"math"
	"sort"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/testutil"
	"github.com/dsv3go/dsv3/mla"
	"github.com/dsv3go/dsv3/mtp"
)

func loadTiny(t *testing.T, prec Precision) *Checkpoint {
	t.Helper()
	ck, err := Load(testutil.Fixture(t, "tiny"), LoadOptions{Precision: prec, MTP: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

func tinyTokens(t *testing.T, name string) []int32 {
	t.Helper()
	var m map[string][]int32
	testutil.ReadJSON(t, testutil.Fixture(t, "tiny", "tokens.json"), &m)
	if m[name] == nil {
		t.Fatalf("tokens.json has no %s", name)
	}
	return m[name]
}

// rowStats compares logits row by row: the strict measure (max |err| /
// max |want|), each row's relative error, and how many rows agree on the
// argmax.
type rowStats struct {
	maxRel, p50, p90, top1 float64
}

func compareRows(got dsv3.Matrix, want []float64) rowStats {
	var st rowStats
	st.maxRel = testutil.MatrixRelErr(got, want)
	rel := make([]float64, got.Rows)
	agree := 0
	for i := 0; i < got.Rows; i++ {
		w := want[i*got.Cols : (i+1)*got.Cols]
		g := got.Row(i)
		var num, den float64
		for j := range w {
			num += (float64(g[j]) - w[j]) * (float64(g[j]) - w[j])
			den += w[j] * w[j]
		}
		rel[i] = math.Sqrt(num / den)
		wa := 0
		for j := range w {
			if w[j] > w[wa] {
				wa = j
			}
		}
		if int(mtp.Argmax(g)) == wa {
			agree++
		}
	}
	sort.Float64s(rel)
	st.p50, st.p90 = rel[len(rel)/2], rel[len(rel)*9/10]
	st.top1 = float64(agree) / float64(got.Rows)
	return st
}

// firstDivergence names the first residual-stream array that differs from
// the reference by more than 1e-4 relative.
func firstDivergence(t *testing.T, out *Output) string {
	names := []string{"hidden_embed_f32_seq40", "hidden_layer0_f32_seq40", "hidden_layer1_f32_seq40", "hidden_layer2_f32_seq40"}
	for i, n := range names {
		want, _ := testutil.Expected(t, n)
		if e := testutil.MatrixRelErr(out.Residual[i], want); e > 1e-4 {
			return fmt.Sprintf("first divergence at %s (rel err %.3g)", n, e)
		}
	}
	want, _ := testutil.Expected(t, "hidden_final_norm_f32_seq40")
	if e := testutil.MatrixRelErr(out.Hidden, want); e > 1e-4 {
		return fmt.Sprintf("first divergence at the final norm (rel err %.3g)", e)
	}
	return "residual stream matches; divergence is in the head"
}

func TestTinyLogitsF32(t *testing.T) {
	ck := loadTiny(t, F32)
	for _, name := range []string{"seq40", "seq200"} {
		toks := tinyTokens(t, name)
		out, err := ck.Forward(toks, dsv3.Seq{Count: 1, Len: len(toks)}, false, name == "seq40")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := testutil.Expected(t, "logits_f32_"+name)
		st := compareRows(out.Logits, want)
		t.Logf("%s f32 logits: max rel %.3g, top1 %.3f", name, st.maxRel, st.top1)
		if st.maxRel > 1e-4 || st.top1 < 1 {
			msg := ""
			if name == "seq40" {
				msg = firstDivergence(t, out)
			}
			t.Errorf("%s: logits max rel err %.3g (want <= 1e-4), top1 agreement %.3f; %s", name, st.maxRel, st.top1, msg)
		}
		mwant, _ := testutil.Expected(t, "mtp_logits_f32_"+name)
		mlg, err := ck.MTPLogits(out.Hidden, toks, dsv3.Seq{Count: 1, Len: len(toks)})
		if err != nil {
			t.Fatal(err)
		}
		ms := compareRows(mlg, mwant)
		t.Logf("%s MTP logits: max rel %.3g, top1 %.3f", name, ms.maxRel, ms.top1)
		if ms.maxRel > 1e-4 || ms.top1 < 1 {
			t.Errorf("%s: MTP logits max rel err %.3g, top1 %.3f", name, ms.maxRel, ms.top1)
		}
	}
}

func TestTinyDecodeMatchesReference(t *testing.T) {
	ck := loadTiny(t, F32)
	toks := tinyTokens(t, "seq40")
	for _, path := range []mla.Path{mla.Absorbed, mla.Naive} {
		st, err := ck.NewState(1, 64)
		if err != nil {
			t.Fatal(err)
		}
		st.Path = path
		lg, _, err := ck.Infer(st, toks[:32], []mla.Span{{Seq: 0, Start: 0, Len: 32}})
		if err != nil {
			t.Fatal(err)
		}
		got := dsv3.NewMatrix(9, lg.Cols)
		copy(got.Row(0), lg.Row(31))
		for i := 32; i < 40; i++ {
			lg, _, err = ck.Infer(st, toks[i:i+1], []mla.Span{{Seq: 0, Start: i, Len: 1}})
			if err != nil {
				t.Fatal(err)
			}
			copy(got.Row(i-31), lg.Row(0))
		}
		want, _ := testutil.Expected(t, "logits_f32_decode_seq40")
		s := compareRows(got, want)
		t.Logf("decode (path %v): max rel %.3g, top1 %.3f", path, s.maxRel, s.top1)
		if s.maxRel > 1e-4 || s.top1 < 1 {
			t.Errorf("path %v: decode logits max rel err %.3g, top1 %.3f", path, s.maxRel, s.top1)
		}
	}
}

func checkStatistical(t *testing.T, what string, got dsv3.Matrix, want []float64, p50, p90, top1 float64) {
	t.Helper()
	s := compareRows(got, want)
	t.Logf("%s: row rel err p50 %.4f p90 %.4f, top1 %.3f", what, s.p50, s.p90, s.top1)
	if s.p50 > p50 || s.p90 > p90 || s.top1 < top1 {
		t.Errorf("%s: p50 %.4f (<= %g), p90 %.4f (<= %g), top1 %.3f (>= %g)", what, s.p50, p50, s.p90, p90, s.top1, top1)
	}
}

func TestTinyLogitsFP8AndBF16(t *testing.T) {
	for _, tc := range []struct {
		prec     Precision
		ref      string
		p50, p90 float64
	}{
		{FP8, "logits_f32_fp8gemm_", 0.03, 0.15},
		{BF16, "logits_bf16_", 0.02, 0.08},
	} {
		ck := loadTiny(t, tc.prec)
		for _, name := range []string{"seq40", "seq200"} {
			toks := tinyTokens(t, name)
			out, err := ck.Forward(toks, dsv3.Seq{Count: 1, Len: len(toks)}, false, false)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := testutil.Expected(t, tc.ref+name)
			checkStatistical(t, string(tc.prec)+" "+name, out.Logits, want, tc.p50, tc.p90, 0.85)
		}
	}
}

// TestTinyGradientsMatchFloat64Reference loads the tiny checkpoint into a
// training model (FP8 weights dequantised) and checks the mean next-token
// cross-entropy of seq40 and its gradients against the float64 autograd of
// the reference.
func TestTinyGradientsMatchFloat64Reference(t *testing.T) {
	cfg, err := LoadConfig(testutil.Fixture(t, "tiny", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg, Options{Train: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.LoadWeights(testutil.Fixture(t, "tiny")); err != nil {
		t.Fatal(err)
	}
	toks := tinyTokens(t, "seq40")
	loss, err := m.TrainStep(toks, 1, len(toks)-1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := testutil.Expected(t, "ce_loss_f64_seq40")
	if math.Abs(loss.Main-want[0]) > 1e-4*math.Abs(want[0]) {
		t.Errorf("loss %.8f, reference %.8f", loss.Main, want[0])
	}
	grads := map[string]dsv3.Matrix{}
	for _, p := range m.Params() {
		grads[p.Name] = p.Grad
	}
	for _, c := range []struct{ array, param string }{
		{"grad_ce_lm_head_f64_seq40", "lm_head.weight"},
		{"grad_ce_norm_f64_seq40", "model.norm.weight"},
		{"grad_ce_layer0_q_a_proj_f64_seq40", "model.layers.0.self_attn.q_a_proj.weight"},
	} {
		w, _ := testutil.Expected(t, c.array)
		if e := testutil.MatrixRelErr(grads[c.param], w); e > 1e-3 {
			t.Errorf("%s: gradient rel err %.3g (want <= 1e-3)", c.param, e)
		} else {
			t.Logf("%s: gradient rel err %.3g", c.param, e)
		}
	}
	man := testutil.TinyManifest(t)
	rows := man.Arrays["grad_ce_embed_tokens_rows_f64_seq40"].Rows
	w, _ := testutil.Expected(t, "grad_ce_embed_tokens_rows_f64_seq40")
	g := grads["model.embed_tokens.weight"]
	sub := dsv3.NewMatrix(len(rows), g.Cols)
	for i, r := range rows {
		copy(sub.Row(i), g.Row(r))
	}
	if e := testutil.MatrixRelErr(sub, w); e > 1e-3 {
		t.Errorf("embedding rows: gradient rel err %.3g", e)
	} else {
		t.Logf("embedding rows %v: gradient rel err %.3g", len(rows), e)
	}
}

// TestTinyMTPBlock checks the MTP module's decoder layer alone (layer 3 of
// the checkpoint) on the fixture's block pair: input = the eh_proj output,
// output = the whole layer before shared_head.norm, positions 0..38.
func TestTinyMTPBlock(t *testing.T) {
	ck := loadTiny(t, F32)
	in := testutil.ExpectedMatrix(t, "mtp_block_input_f32_seq40")
	want, _ := testutil.Expected(t, "mtp_block_output_f32_seq40")
	blk := ck.MTP[0].Block.(*Layer)
	got, _, err := blk.Apply(in, dsv3.Seq{Count: 1, Len: in.Rows}, false)
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.MatrixRelErr(got, want); e > 1e-4 {
		t.Errorf("MTP block output rel err %.3g (want <= 1e-4)", e)
	} else {
		t.Logf("MTP block output rel err %.3g", e)
	}
}
