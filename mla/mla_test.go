package mla

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/testutil"
	"github.com/dsv3go/dsv3/yarn"
)

// smallConfig is a small MLA with YaRN on (max 64 > original 16), widths
// chosen unequal so that a swapped dimension shows.
func smallConfig(qLora int) Config {
	return Config{
		Hidden: 12, Heads: 3, QLoraRank: qLora, KVLoraRank: 8,
		QKNopeHeadDim: 4, QKRopeHeadDim: 4, VHeadDim: 5, RMSNormEps: 1e-6,
		Rope: yarn.Config{Theta: 10000, Dim: 4, MaxPositionEmbeddings: 64, Scaling: &yarn.Scaling{
			Type: "yarn", Factor: 4, OriginalMaxPositionEmbeddings: 16, BetaFast: 32, BetaSlow: 1, Mscale: 1, MscaleAllDim: 1}},
	}
}

func randMatrix(rng *rand.Rand, rows, cols int, scale float64) dsv3.Matrix {
	m := dsv3.NewMatrix(rows, cols)
	for i := range m.Data {
		m.Data[i] = float32(scale * (2*rng.Float64() - 1))
	}
	return m
}

// perturbNorms gives the norm weights values away from 1.
func perturbNorms(m *MLA, rng *rand.Rand) {
	for _, n := range []*dsv3.RMSNorm{m.QANorm, m.KVANorm} {
		if n == nil {
			continue
		}
		for i := range n.Weight.Data {
			n.Weight.Data[i] = float32(0.5 + rng.Float64())
		}
	}
}

func lossOf(y, r dsv3.Matrix) float64 {
	var l float64
	for i := 0; i < y.Rows; i++ {
		ry := r.Row(i)
		for j, v := range y.Row(i) {
			l += float64(v) * float64(ry[j])
		}
	}
	return l
}

// TestGradientFiniteDifference checks Backward against central differences
// of loss = Σ y ⊙ R for every element of every weight and of the input,
// with and without the query latent, over two sequences at a start
// position where YaRN and the causal mask both matter.
func TestGradientFiniteDifference(t *testing.T) {
	for _, qLora := range []int{10, 0} {
		t.Run(fmt.Sprintf("q_lora_rank=%d", qLora), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(21, uint64(qLora)))
			m, err := New(smallConfig(qLora), WithTraining(3), WithInitStd(0.4))
			if err != nil {
				t.Fatal(err)
			}
			perturbNorms(m, rng)
			s := dsv3.Seq{Count: 2, Len: 4, Start: 13}
			x := randMatrix(rng, 8, 12, 1)
			r := randMatrix(rng, 8, 12, 1)
			loss := func() float64 {
				y, _, err := m.Forward(x, s, false)
				if err != nil {
					t.Fatal(err)
				}
				return lossOf(y, r)
			}
			_, rec, err := m.Forward(x, s, true)
			if err != nil {
				t.Fatal(err)
			}
			dx, err := m.Backward(rec, r)
			if err != nil {
				t.Fatal(err)
			}
			type target struct {
				name string
				v, g dsv3.Matrix
			}
			targets := []target{{"input", x, dx}}
			for _, p := range m.Params() {
				targets = append(targets, target{p.Name, p.Value, p.Grad})
			}
			const h = 2e-3
			for _, tg := range targets {
				var num, den float64
				for i := 0; i < tg.v.Rows; i++ {
					for j := 0; j < tg.v.Cols; j++ {
						x0 := tg.v.At(i, j)
						tg.v.Set(i, j, x0+h)
						lp := loss()
						tg.v.Set(i, j, x0-h)
						lm := loss()
						tg.v.Set(i, j, x0)
						fd := (lp - lm) / (2 * h)
						num = math.Max(num, math.Abs(fd-float64(tg.g.At(i, j))))
						den = math.Max(den, math.Abs(fd))
					}
				}
				if den == 0 || num/den > 2e-3 {
					t.Errorf("%s: max |fd - grad| / max |fd| = %.3g (max |fd| %.3g)", tg.name, num/den, den)
				} else {
					t.Logf("%s: rel err %.3g", tg.name, num/den)
				}
			}
		})
	}
}

// TestBackwardAccumulates checks that two Backward calls add up and that
// a record from another layer is refused.
func TestBackwardAccumulates(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	m, _ := New(smallConfig(10), WithTraining(1))
	s := dsv3.Seq{Count: 1, Len: 3}
	x := randMatrix(rng, 3, 12, 1)
	r := randMatrix(rng, 3, 12, 1)
	_, rec, _ := m.Forward(x, s, true)
	if _, err := m.Backward(rec, r); err != nil {
		t.Fatal(err)
	}
	once := m.O.Grad.Clone()
	if _, err := m.Backward(rec, r); err != nil {
		t.Fatal(err)
	}
	for i, v := range m.O.Grad.Data {
		if math.Abs(float64(v-2*once.Data[i])) > 1e-6*math.Max(1, math.Abs(float64(v))) {
			t.Fatalf("o_proj gradient after two backward calls: %v, want %v", v, 2*once.Data[i])
		}
	}
	other, _ := New(smallConfig(10), WithTraining(1))
	if _, err := other.Backward(rec, r); err == nil || !strings.Contains(err.Error(), "another layer") {
		t.Errorf("record of another layer: %v", err)
	}
	if _, err := m.Backward(nil, r); err == nil {
		t.Error("nil record accepted")
	}
	if _, err := m.Backward(rec, randMatrix(rng, 3, 11, 1)); err == nil || !strings.Contains(err.Error(), "output gradient") {
		t.Errorf("wrong gradient width: %v", err)
	}
}

// TestSequencesIndependent: several sequences in one Forward give what
// each gives alone.
func TestSequencesIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	m, _ := New(smallConfig(10), WithTraining(2), WithInitStd(0.4))
	x := randMatrix(rng, 15, 12, 1)
	y, _, err := m.Forward(x, dsv3.Seq{Count: 3, Len: 5, Start: 20}, false)
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 3; b++ {
		yb, _, err := m.Forward(x.Slice(5*b, 5*b+5), dsv3.Seq{Count: 1, Len: 5, Start: 20}, false)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			for j, v := range yb.Row(i) {
				// Relative: the GEMM may sum in another order for another
				// batch size (its small-M path), so equal to rounding only.
				w := y.At(5*b+i, j)
				if d := math.Abs(float64(v - w)); d > 1e-5*math.Max(1, math.Abs(float64(w))) {
					t.Fatalf("sequence %d row %d: batched %v, alone %v", b, i, w, v)
				}
			}
		}
	}
}

// TestForwardMatchesFloat64 checks the forward of the small layer against
// a float64 transcription of eqs. 1-11 written here (with the tables'
// rotation done in float64 too).
func TestForwardMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, qLora := range []int{10, 0} {
		cfg := smallConfig(qLora)
		m, _ := New(cfg, WithTraining(4), WithInitStd(0.4))
		perturbNorms(m, rng)
		s := dsv3.Seq{Count: 2, Len: 6, Start: 30}
		x := randMatrix(rng, 12, 12, 1)
		y, _, err := m.Forward(x, s, false)
		if err != nil {
			t.Fatal(err)
		}
		want := reference64(m, x, s)
		var num, den float64
		for i := 0; i < y.Rows; i++ {
			for j, v := range y.Row(i) {
				num = math.Max(num, math.Abs(float64(v)-want[i][j]))
				den = math.Max(den, math.Abs(want[i][j]))
			}
		}
		if num/den > 1e-5 {
			t.Errorf("q_lora_rank %d: rel err %.3g against the float64 transcription", qLora, num/den)
		}
	}
}

// reference64 is MLA written out in float64, one token, head and key at a
// time.
func reference64(m *MLA, x dsv3.Matrix, s dsv3.Seq) [][]float64 {
	c := m.cfg
	h, dn, dr, dv, dc := c.Heads, c.QKNopeHeadDim, c.QKRopeHeadDim, c.VHeadDim, c.KVLoraRank
	f := m.rope.Frequencies()
	lin := func(w dsv3.Matrix, v []float64) []float64 {
		out := make([]float64, w.Rows)
		for i := range out {
			for j, wv := range w.Row(i) {
				out[i] += float64(wv) * v[j]
			}
		}
		return out
	}
	norm := func(n *dsv3.RMSNorm, v []float64) []float64 {
		var ss float64
		for _, a := range v {
			ss += a * a
		}
		r := 1 / math.Sqrt(ss/float64(len(v))+c.RMSNormEps)
		out := make([]float64, len(v))
		for i, a := range v {
			out[i] = a * r * float64(n.Weight.Data[i])
		}
		return out
	}
	rope := func(v []float64, p int) {
		for i := 0; i < len(v)/2; i++ {
			cs, sn := math.Cos(float64(p)*f[i]), math.Sin(float64(p)*f[i])
			a, b := v[2*i], v[2*i+1]
			v[2*i], v[2*i+1] = a*cs-b*sn, a*sn+b*cs
		}
	}
	row := func(mat dsv3.Matrix, i int) []float64 {
		out := make([]float64, mat.Cols)
		for j, v := range mat.Row(i) {
			out[j] = float64(v)
		}
		return out
	}
	T := x.Rows
	qs, ks, vs, kr := make([][]float64, T), make([][]float64, T), make([][]float64, T), make([][]float64, T)
	for t := 0; t < T; t++ {
		p := s.Start + t%s.Len
		xt := row(x, t)
		if c.QLoraRank > 0 {
			qs[t] = lin(m.QB.W.(dsv3.Matrix), norm(m.QANorm, lin(m.QA.W.(dsv3.Matrix), xt)))
		} else {
			qs[t] = lin(m.Q.W.(dsv3.Matrix), xt)
		}
		for hd := 0; hd < h; hd++ {
			rope(qs[t][hd*(dn+dr)+dn:(hd+1)*(dn+dr)], p)
		}
		kv := lin(m.KVA.W.(dsv3.Matrix), xt)
		kr[t] = kv[dc:]
		rope(kr[t], p)
		kvb := lin(m.KVB.W.(dsv3.Matrix), norm(m.KVANorm, kv[:dc]))
		ks[t], vs[t] = kvb, kvb
	}
	scale := m.rope.SoftmaxScale(dn + dr)
	out := make([][]float64, T)
	for t := 0; t < T; t++ {
		o := make([]float64, h*dv)
		b0 := t - t%s.Len
		for hd := 0; hd < h; hd++ {
			var sc []float64
			mx := math.Inf(-1)
			for j := b0; j <= t; j++ {
				var d float64
				for k := 0; k < dn; k++ {
					d += qs[t][hd*(dn+dr)+k] * ks[j][hd*(dn+dv)+k]
				}
				for k := 0; k < dr; k++ {
					d += qs[t][hd*(dn+dr)+dn+k] * kr[j][k]
				}
				sc = append(sc, d*scale)
				mx = math.Max(mx, d*scale)
			}
			var sum float64
			for i := range sc {
				sc[i] = math.Exp(sc[i] - mx)
				sum += sc[i]
			}
			for i, j := 0, b0; j <= t; i, j = i+1, j+1 {
				for k := 0; k < dv; k++ {
					o[hd*dv+k] += sc[i] / sum * vs[j][hd*(dn+dv)+dn+k]
				}
			}
		}
		out[t] = lin(m.O.W.(dsv3.Matrix), o)
	}
	return out
}

// TestAbsorbedEqualsNaive runs the same prefill and decode steps of two
// sequences through both paths.
func TestAbsorbedEqualsNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	m, _ := New(smallConfig(10), WithTraining(5), WithInitStd(0.4))
	perturbNorms(m, rng)
	caches := map[Path]*Cache{}
	for _, p := range []Path{Absorbed, Naive} {
		caches[p], _ = NewCache(m.Config(), 2, 32)
	}
	steps := []dsv3.Seq{{Count: 2, Len: 7, Start: 0}, {Count: 2, Len: 1, Start: 7}, {Count: 2, Len: 3, Start: 8}, {Count: 2, Len: 1, Start: 11}}
	for _, s := range steps {
		x := randMatrix(rng, s.Count*s.Len, 12, 1)
		ya, err := m.Infer(x, s, caches[Absorbed], Absorbed)
		if err != nil {
			t.Fatal(err)
		}
		yn, err := m.Infer(x, s, caches[Naive], Naive)
		if err != nil {
			t.Fatal(err)
		}
		if e := relMatrix(ya, yn); e > 1e-5 {
			t.Errorf("step %+v: absorbed vs naive rel err %.3g", s, e)
		}
	}
}

// relMatrix returns max|a−b| / max|b|.
func relMatrix(a, b dsv3.Matrix) float64 {
	want := make([]float64, 0, b.Rows*b.Cols)
	for i := 0; i < b.Rows; i++ {
		for _, v := range b.Row(i) {
			want = append(want, float64(v))
		}
	}
	return testutil.MatrixRelErr(a, want)
}

// TestPrefillThenDecode: a prefill of 32 tokens and 8 single-token steps
// give the 40-token prefill's outputs, and the reference's, for the tiny
// checkpoint's layer 0; both paths.
func TestPrefillThenDecode(t *testing.T) {
	m := loadLayer(t, 0, nil)
	x := testutil.ExpectedMatrix(t, "attn_layer0_input_f32_seq40")
	want, _ := testutil.Expected(t, "attn_layer0_output_f32_seq40")
	for _, path := range []Path{Absorbed, Naive} {
		full, _ := NewCache(m.Config(), 1, 40)
		yFull, err := m.Infer(x, dsv3.Seq{Count: 1, Len: 40}, full, path)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := NewCache(m.Config(), 1, 40)
		y := dsv3.NewMatrix(40, x.Cols)
		yp, err := m.Infer(x.Slice(0, 32), dsv3.Seq{Count: 1, Len: 32}, c, path)
		if err != nil {
			t.Fatal(err)
		}
		y.Slice(0, 32).CopyFrom(yp)
		for p := 32; p < 40; p++ {
			ys, err := m.Infer(x.Slice(p, p+1), dsv3.Seq{Count: 1, Len: 1, Start: p}, c, path)
			if err != nil {
				t.Fatal(err)
			}
			y.Slice(p, p+1).CopyFrom(ys)
		}
		if e := relMatrix(y, yFull); e > 1e-5 {
			t.Errorf("%v: prefill 32 + 8 steps vs prefill 40: rel err %.3g", path, e)
		}
		if e := testutil.MatrixRelErr(y, want); e > 1e-5 {
			t.Errorf("%v: prefill 32 + 8 steps vs reference: rel err %.3g", path, e)
		}
		if c.Len(0) != 40 {
			t.Errorf("%v: cache holds %d tokens, want 40", path, c.Len(0))
		}
	}
}

// TestSpansAtDifferentPositions: sequences at different positions in one
// call give what separate calls give; a rewind (start below the cached
// length) recomputes as a fresh prefill would.
func TestSpansAtDifferentPositions(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	m, _ := New(smallConfig(0), WithTraining(6), WithInitStd(0.4))
	cfg := m.Config()
	xs := []dsv3.Matrix{randMatrix(rng, 9, 12, 1), randMatrix(rng, 4, 12, 1), randMatrix(rng, 6, 12, 1)}
	for _, path := range []Path{Absorbed, Naive} {
		joint, _ := NewCache(cfg, 3, 16)
		alone, _ := NewCache(cfg, 3, 16)
		// Prefill sequence 0 with 6 tokens, sequence 2 with 2.
		if _, err := m.InferSpans(dsv3.NewMatrix(0, 12), []Span{{Seq: 1, Start: 0, Len: 0}}, joint, path); err != nil {
			t.Fatal(err)
		}
		pre := []Span{{Seq: 0, Start: 0, Len: 6}, {Seq: 2, Start: 0, Len: 2}}
		xpre := dsv3.NewMatrix(8, 12)
		xpre.Slice(0, 6).CopyFrom(xs[0].Slice(0, 6))
		xpre.Slice(6, 8).CopyFrom(xs[2].Slice(0, 2))
		if _, err := m.InferSpans(xpre, pre, joint, path); err != nil {
			t.Fatal(err)
		}
		if _, err := m.InferSpans(xs[0].Slice(0, 6), pre[:1], alone, path); err != nil {
			t.Fatal(err)
		}
		if _, err := m.InferSpans(xs[2].Slice(0, 2), pre[1:], alone, path); err != nil {
			t.Fatal(err)
		}
		// Then: sequence 0 gets 3 tokens at 6, sequence 1 a 4-token
		// prefill, sequence 2 one token at 2.
		spans := []Span{{Seq: 0, Start: 6, Len: 3}, {Seq: 1, Start: 0, Len: 4}, {Seq: 2, Start: 2, Len: 1}}
		xj := dsv3.NewMatrix(8, 12)
		xj.Slice(0, 3).CopyFrom(xs[0].Slice(6, 9))
		xj.Slice(3, 7).CopyFrom(xs[1])
		xj.Slice(7, 8).CopyFrom(xs[2].Slice(2, 3))
		yj, err := m.InferSpans(xj, spans, joint, path)
		if err != nil {
			t.Fatal(err)
		}
		r0 := 0
		for i, sp := range spans {
			ya, err := m.InferSpans(xj.Slice(r0, r0+sp.Len), spans[i:i+1], alone, path)
			if err != nil {
				t.Fatal(err)
			}
			if e := relMatrix(yj.Slice(r0, r0+sp.Len), ya); e > 1e-6 {
				t.Errorf("%v span %d: joint vs alone rel err %.3g", path, i, e)
			}
			r0 += sp.Len
		}
		// Rewind sequence 0 to position 4 and run its tokens 4..8 again:
		// the outputs equal the last rows of a fresh 9-token prefill.
		y, err := m.InferSpans(xs[0].Slice(4, 9), []Span{{Seq: 0, Start: 4, Len: 5}}, joint, path)
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := NewCache(cfg, 1, 16)
		yf, err := m.Infer(xs[0], dsv3.Seq{Count: 1, Len: 9}, fresh, path)
		if err != nil {
			t.Fatal(err)
		}
		if e := relMatrix(y, yf.Slice(4, 9)); e > 1e-5 {
			t.Errorf("%v: rewound prefill vs fresh prefill rel err %.3g", path, e)
		}
		// And the training forward of the whole sequence agrees.
		yt, _, err := m.Forward(xs[0], dsv3.Seq{Count: 1, Len: 9}, false)
		if err != nil {
			t.Fatal(err)
		}
		if e := relMatrix(yf, yt); e > 1e-5 {
			t.Errorf("%v: cached prefill vs Forward rel err %.3g", path, e)
		}
	}
}

func TestCacheBytesPerToken(t *testing.T) {
	cfg := DeepSeekV3()
	if got := CacheValuesPerToken(cfg); got != 576 {
		t.Errorf("CacheValuesPerToken(DeepSeek-V3) = %d, want 576 (512 latent + 64 rope)", got)
	}
	if got := CacheBytesPerToken(cfg); got != 2304 {
		t.Errorf("CacheBytesPerToken(DeepSeek-V3) = %d, want 2304 (576 float32)", got)
	}
	c, err := NewCache(cfg, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bytes() != 2*10*2304 {
		t.Errorf("Cache.Bytes = %d, want %d", c.Bytes(), 2*10*2304)
	}
}

// TestBadInput checks the errors at the public boundary.
func TestBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	cfg := smallConfig(10)
	m, _ := New(cfg, WithTraining(1))
	c, _ := NewCache(cfg, 2, 8)
	x := randMatrix(rng, 3, 12, 1)
	expect := func(what string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", what, err, want)
		}
	}
	_, _, err := m.Forward(randMatrix(rng, 3, 11, 1), dsv3.Seq{Count: 1, Len: 3}, false)
	expect("forward width", err, "want 3x12")
	_, _, err = m.Forward(x, dsv3.Seq{Count: 2, Len: 3}, false)
	expect("forward rows", err, "want 6x12")
	_, err = m.Infer(randMatrix(rng, 3, 13, 1), dsv3.Seq{Count: 1, Len: 3}, c, Absorbed)
	expect("infer width", err, "want 3x12")
	_, err = m.Infer(x, dsv3.Seq{Count: 1, Len: 3, Start: 2}, c, Absorbed)
	expect("start beyond cached length", err, "beyond the 0 tokens cached")
	if _, err := m.Infer(x, dsv3.Seq{Count: 1, Len: 3}, c, Absorbed); err != nil {
		t.Fatal(err)
	}
	_, err = m.Infer(randMatrix(rng, 6, 12, 1), dsv3.Seq{Count: 1, Len: 6, Start: 3}, c, Naive)
	expect("beyond capacity", err, "exceed the cache capacity 8")
	_, err = m.Infer(x, dsv3.Seq{Count: 3, Len: 1, Start: 0}, c, Naive)
	expect("sequence out of range", err, "out of range")
	_, err = m.InferSpans(randMatrix(rng, 2, 12, 1), []Span{{Seq: 0, Start: 3, Len: 1}, {Seq: 0, Start: 4, Len: 1}}, c, Naive)
	expect("duplicate sequence", err, "appears twice")
	_, err = m.Infer(x, dsv3.Seq{Count: 1, Len: 3}, c, Path(9))
	expect("unknown path", err, "unknown attention path")
	other := cfg
	other.KVLoraRank = 6
	oc, _ := NewCache(other, 1, 8)
	_, err = m.Infer(x, dsv3.Seq{Count: 1, Len: 3}, oc, Absorbed)
	expect("mismatched cache", err, "kv_lora_rank 8")
	_, err = m.Infer(x, dsv3.Seq{Count: 1, Len: 3}, nil, Absorbed)
	expect("nil cache", err, "nil cache")
	if c.Len(0) != 3 || c.Len(1) != 0 {
		t.Errorf("failed calls changed the cache: lengths %d, %d", c.Len(0), c.Len(1))
	}
	// Weights: not loaded, wrong shape, quantised in training.
	inf, _ := New(cfg)
	_, _, err = inf.Forward(x, dsv3.Seq{Count: 1, Len: 3}, false)
	expect("unloaded", err, "is not loaded")
	m2, _ := New(cfg, WithTraining(1))
	m2.KVB.W = dsv3.NewMatrix(27, 7)
	_, _, err = m2.Forward(x, dsv3.Seq{Count: 1, Len: 3}, false)
	expect("wrong shape", err, "kv_b_proj.weight has shape [27, 7], want [27, 8]")
	m3, _ := New(cfg, WithTraining(1))
	w := m3.O.W.(dsv3.Matrix)
	bf := make([]dsv3.BF16, len(w.Data))
	dsv3.BF16FromFloat32s(bf, w.Data)
	m3.O.W, _ = dsv3.NewBF16Weight(w.Rows, w.Cols, bf)
	_, _, err = m3.Forward(x, dsv3.Seq{Count: 1, Len: 3}, true)
	expect("quantised training", err, "o_proj.weight is a *dsv3.BF16Weight")
	// Config errors name the field.
	bad := cfg
	bad.KVLoraRank = 0
	_, err = New(bad)
	expect("config", err, "kv_lora_rank = 0")
	bad = cfg
	bad.Rope.Dim = 6
	_, err = New(bad)
	expect("config rope", err, "qk_rope_head_dim = 4")
	bad = cfg
	bad.Rope.Scaling = &yarn.Scaling{Type: "yarn", Factor: 0.5, OriginalMaxPositionEmbeddings: 16, BetaFast: 32, BetaSlow: 1}
	_, err = New(bad)
	expect("config yarn", err, "rope_scaling.factor")
	if _, err := NewCache(cfg, 0, 4); err == nil {
		t.Error("cache of 0 sequences accepted")
	}
	if err := c.Truncate(0, 5); err == nil {
		t.Error("truncate beyond the cached length accepted")
	}
}

// opaqueWeight hides a float32 weight behind MulT alone, so that the
// absorbed path must dequantise it through MulT.
type opaqueWeight struct{ w dsv3.Matrix }

func (o *opaqueWeight) Dims() (int, int)                { return o.w.Dims() }
func (o *opaqueWeight) MulT(y, x dsv3.Matrix, acc bool) { o.w.MulT(y, x, acc) }

// TestQuantisedWeights runs inference with BF16 weights and with an opaque
// weight, both paths, against the same values in float32.
func TestQuantisedWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 12))
	m, _ := New(smallConfig(10), WithTraining(7), WithInitStd(0.4))
	// Round every projection to BF16 so that both forms hold the same
	// values.
	for _, p := range m.Params() {
		if p.Slot != nil {
			for i, v := range p.Value.Data {
				p.Value.Data[i] = dsv3.RoundBF16(v)
			}
		}
	}
	x := randMatrix(rng, 5, 12, 1)
	s := dsv3.Seq{Count: 1, Len: 5}
	want, _, err := m.Forward(x, s, false)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := New(smallConfig(10))
	for i, p := range q.Params() {
		src := m.Params()[i]
		if p.Slot == nil {
			p.Value.CopyFrom(src.Value)
			continue
		}
		bf := make([]dsv3.BF16, len(src.Value.Data))
		dsv3.BF16FromFloat32s(bf, src.Value.Data)
		w, err := dsv3.NewBF16Weight(src.Value.Rows, src.Value.Cols, bf)
		if err != nil {
			t.Fatal(err)
		}
		*p.Slot = w
	}
	for round, kvb := range []dsv3.Weight{q.KVB.W, &opaqueWeight{m.KVB.W.(dsv3.Matrix)}} {
		q.KVB.W = kvb
		for _, path := range []Path{Absorbed, Naive} {
			c, _ := NewCache(q.Config(), 1, 8)
			y, err := q.Infer(x, s, c, path)
			if err != nil {
				t.Fatal(err)
			}
			if e := relMatrix(y, want); e > 1e-5 {
				t.Errorf("round %d %v: quantised weights vs float32 rel err %.3g", round, path, e)
			}
		}
	}
}

// TestParams checks the checkpoint names and shapes.
func TestParams(t *testing.T) {
	m, _ := New(DeepSeekV3())
	want := map[string][2]int{
		"q_a_proj.weight":           {1536, 7168},
		"q_a_layernorm.weight":      {1, 1536},
		"q_b_proj.weight":           {128 * 192, 1536},
		"kv_a_proj_with_mqa.weight": {576, 7168},
		"kv_a_layernorm.weight":     {1, 512},
		"kv_b_proj.weight":          {128 * 256, 512},
		"o_proj.weight":             {7168, 128 * 128},
	}
	ps := m.Params()
	if len(ps) != len(want) {
		t.Fatalf("%d params, want %d", len(ps), len(want))
	}
	for _, p := range ps {
		if _, ok := want[p.Name]; !ok {
			t.Errorf("unexpected param %q", p.Name)
		}
		if p.Slot == nil && p.Value.Empty() {
			t.Errorf("%s: neither a slot nor a value", p.Name)
		}
		if p.Slot != nil && !p.Value.Empty() {
			t.Errorf("%s: inference layer allocated a float32 weight", p.Name)
		}
		if !p.Grad.Empty() {
			t.Errorf("%s: inference layer has a gradient", p.Name)
		}
	}
	direct := smallConfig(0)
	md, _ := New(direct, WithTraining(1))
	var names []string
	for _, p := range md.Params() {
		names = append(names, p.Name)
		if p.Grad.Rows != p.Value.Rows || p.Grad.Cols != p.Value.Cols {
			t.Errorf("%s: gradient %dx%d for value %dx%d", p.Name, p.Grad.Rows, p.Grad.Cols, p.Value.Rows, p.Value.Cols)
		}
	}
	if got := strings.Join(names, " "); got != "q_proj.weight kv_a_proj_with_mqa.weight kv_a_layernorm.weight kv_b_proj.weight o_proj.weight" {
		t.Errorf("q_lora_rank 0 params: %s", got)
	}
	// Training init: normal with the configured deviation.
	mt, _ := New(DeepSeekV3Small(), WithTraining(9), WithInitStd(0.02))
	var ss float64
	n := 0
	for _, v := range mt.KVB.W.(dsv3.Matrix).Data {
		ss += float64(v) * float64(v)
		n++
	}
	if sd := math.Sqrt(ss / float64(n)); math.Abs(sd-0.02) > 0.001 {
		t.Errorf("initial kv_b_proj standard deviation %.4f, want 0.02", sd)
	}
}

// DeepSeekV3Small is a narrower configuration for tests of allocation.
func DeepSeekV3Small() Config {
	c := DeepSeekV3()
	c.Hidden, c.Heads, c.QLoraRank = 256, 4, 128
	return c
}

// TestBlockedAttention forces query blocks of a few rows and checks that
// forward, backward and both inference paths give what one block gives.
func TestBlockedAttention(t *testing.T) {
	run := func() (y, dx, gq dsv3.Matrix, yi [2]dsv3.Matrix) {
		rng := rand.New(rand.NewPCG(13, 13))
		m, _ := New(smallConfig(10), WithTraining(8), WithInitStd(0.4))
		s := dsv3.Seq{Count: 2, Len: 9, Start: 3}
		x := randMatrix(rng, 18, 12, 1)
		r := randMatrix(rng, 18, 12, 1)
		y, rec, err := m.Forward(x, s, true)
		if err != nil {
			t.Fatal(err)
		}
		if dx, err = m.Backward(rec, r); err != nil {
			t.Fatal(err)
		}
		for i, path := range []Path{Absorbed, Naive} {
			c, _ := NewCache(m.Config(), 1, 16)
			if _, err := m.Infer(x.Slice(0, 5), dsv3.Seq{Count: 1, Len: 5}, c, path); err != nil {
				t.Fatal(err)
			}
			if yi[i], err = m.Infer(x.Slice(5, 9), dsv3.Seq{Count: 1, Len: 4, Start: 5}, c, path); err != nil {
				t.Fatal(err)
			}
		}
		return y, dx, m.QB.Grad.Clone(), yi
	}
	y1, dx1, g1, yi1 := run()
	defer func(b int) { scratchBudget = b }(scratchBudget)
	scratchBudget = 13 // one or a few rows per block
	y2, dx2, g2, yi2 := run()
	for _, c := range []struct {
		name string
		a, b dsv3.Matrix
	}{{"forward", y2, y1}, {"input gradient", dx2, dx1}, {"q_b_proj gradient", g2, g1}, {"absorbed", yi2[0], yi1[0]}, {"naive", yi2[1], yi1[1]}} {
		if e := relMatrix(c.a, c.b); e > 1e-6 {
			t.Errorf("%s: blocked vs unblocked rel err %.3g", c.name, e)
		}
	}
}

// TestExpNeg checks the softmax's exponential against math.Exp.
func TestExpNeg(t *testing.T) {
	var worst float64
	for i := 0; i <= 1000000; i++ {
		x := float32(expMin * float64(i) / 1000000)
		want := math.Exp(float64(x))
		worst = math.Max(worst, math.Abs(float64(expNeg(x))-want)/want)
	}
	if worst > 2e-7 {
		t.Errorf("expNeg: worst relative error %.3g on [%d, 0]", worst, expMin)
	}
	if expNeg(-100) != 0 || expNeg(0) != 1 {
		t.Errorf("expNeg(-100) = %v, expNeg(0) = %v", expNeg(-100), expNeg(0))
	}
	if e := math.Abs(float64(expNeg(1e-6)) - math.Exp(1e-6)); e > 2e-7 {
		t.Errorf("expNeg(1e-6) off by %.3g", e)
	}
}
