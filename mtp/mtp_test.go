package mtp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dsv3go/dsv3"
)

// mixBlock is a small causal Block for tests: y_i = x_i + W·mean_{j<=i} x_j
// within each sequence, so that the sequence layout matters.
type mixBlock struct{ lin *dsv3.Linear }

type mixRecord struct {
	s   dsv3.Seq
	rec dsv3.Record
}

func (b *mixBlock) Forward(x dsv3.Matrix, s dsv3.Seq, train bool) (dsv3.Matrix, dsv3.Record) {
	m := causalMean(x, s)
	y, r := b.lin.Forward(m, train)
	for i := 0; i < y.Rows; i++ {
		for j, v := range x.Row(i) {
			y.Row(i)[j] += v
		}
	}
	return y, &mixRecord{s: s, rec: r}
}

func causalMean(x dsv3.Matrix, s dsv3.Seq) dsv3.Matrix {
	m := dsv3.NewMatrix(x.Rows, x.Cols)
	for b := 0; b < s.Count; b++ {
		acc := make([]float32, x.Cols)
		for i := 0; i < s.Len; i++ {
			r := b*s.Len + i
			for j, v := range x.Row(r) {
				acc[j] += v
				m.Row(r)[j] = acc[j] / float32(i+1)
			}
		}
	}
	return m
}

func (b *mixBlock) Backward(rec dsv3.Record, dy dsv3.Matrix) dsv3.Matrix {
	r := rec.(*mixRecord)
	dm := b.lin.Backward(r.rec, dy)
	dx := dy.Clone()
	s := r.s
	for bb := 0; bb < s.Count; bb++ {
		acc := make([]float32, dy.Cols)
		for i := s.Len - 1; i >= 0; i-- {
			row := bb*s.Len + i
			for j, v := range dm.Row(row) {
				acc[j] += v / float32(i+1)
				dx.Row(row)[j] += acc[j]
			}
		}
	}
	return dx
}

func (b *mixBlock) Params() []dsv3.Param {
	return dsv3.PrefixParams("mix.", b.lin.Params())
}

const (
	hid   = 8
	vocab = 11
)

func fill(rng *rand.Rand, m dsv3.Matrix, scale float32) {
	for i := range m.Data {
		m.Data[i] = float32(rng.NormFloat64()) * scale
	}
}

func randomNorm(rng *rand.Rand, n *dsv3.RMSNorm) {
	for i := range n.Weight.Data {
		n.Weight.Data[i] = 1 + 0.3*float32(rng.NormFloat64())
	}
}

// newChain builds a D-depth chain with random weights.
func newChain(t *testing.T, rng *rand.Rand, d int) *Chain {
	t.Helper()
	sh := Shared{Embed: dsv3.NewEmbedding(vocab, hid, true), Head: dsv3.NewLinear(vocab, hid, true)}
	fill(rng, sh.Embed.Weight, 1)
	fill(rng, sh.Head.W.(dsv3.Matrix), 0.5)
	c := &Chain{Shared: sh, Lambda: 0.3}
	for k := 0; k < d; k++ {
		blk := &mixBlock{lin: dsv3.NewLinear(hid, hid, true)}
		fill(rng, blk.lin.W.(dsv3.Matrix), 0.4)
		m, err := New(Config{Hidden: hid, Eps: 1e-6}, blk, true)
		if err != nil {
			t.Fatal(err)
		}
		fill(rng, m.EhProj.W.(dsv3.Matrix), 0.3)
		randomNorm(rng, m.Enorm)
		randomNorm(rng, m.Hnorm)
		randomNorm(rng, m.HeadNorm)
		c.Modules = append(c.Modules, m)
	}
	return c
}

// ref64 is eqs. 21-25 in float64, written independently of the package:
// per sequence, per depth, per position.
func ref64(c *Chain, h0 dsv3.Matrix, tokens []int32, s dsv3.Seq) float64 {
	d := len(c.Modules)
	f64 := func(m dsv3.Matrix) [][]float64 {
		out := make([][]float64, m.Rows)
		for i := range out {
			out[i] = make([]float64, m.Cols)
			for j := range out[i] {
				out[i][j] = float64(m.At(i, j))
			}
		}
		return out
	}
	rms := func(x []float64, w dsv3.Matrix) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		r := 1 / math.Sqrt(ss/float64(len(x))+1e-6)
		y := make([]float64, len(x))
		for j := range x {
			y[j] = x[j] * r * float64(w.Data[j])
		}
		return y
	}
	matvec := func(w [][]float64, x []float64) []float64 {
		y := make([]float64, len(w))
		for i := range w {
			for j := range x {
				y[i] += w[i][j] * x[j]
			}
		}
		return y
	}
	emb := f64(c.Shared.Embed.Weight)
	head := f64(c.Shared.Head.W.(dsv3.Matrix))
	var total float64
	counts := make([]int, d+1)
	sums := make([]float64, d+1)
	for b := 0; b < s.Count; b++ {
		prev := make([][]float64, s.Len)
		for i := range prev {
			prev[i] = f64(h0.Slice(b*s.Len+i, b*s.Len+i+1))[0]
		}
		for k := 1; k <= d; k++ {
			m := c.Modules[k-1]
			eh := f64(m.EhProj.W.(dsv3.Matrix))
			w := f64(m.Block.(*mixBlock).lin.W.(dsv3.Matrix))
			lk := s.Len - k
			x := make([][]float64, lk)
			for i := 0; i < lk; i++ {
				cat := append(rms(emb[tokens[b*s.Len+i+k]], m.Enorm.Weight), rms(prev[i], m.Hnorm.Weight)...)
				x[i] = matvec(eh, cat)
			}
			cur := make([][]float64, lk)
			acc := make([]float64, hid)
			for i := 0; i < lk; i++ {
				mean := make([]float64, hid)
				for j := range acc {
					acc[j] += x[i][j]
					mean[j] = acc[j] / float64(i+1)
				}
				mv := matvec(w, mean)
				cur[i] = make([]float64, hid)
				for j := range mv {
					cur[i][j] = x[i][j] + mv[j]
				}
				if t := i + k + 1; t < s.Len {
					logits := matvec(head, rms(cur[i], m.HeadNorm.Weight))
					mx := math.Inf(-1)
					for _, v := range logits {
						mx = math.Max(mx, v)
					}
					var z float64
					for _, v := range logits {
						z += math.Exp(v - mx)
					}
					sums[k] += mx + math.Log(z) - logits[tokens[b*s.Len+t]]
					counts[k]++
				}
			}
			prev = cur
		}
	}
	for k := 1; k <= d; k++ {
		total += sums[k] / float64(counts[k])
	}
	return total * float64(c.Lambda) / float64(d)
}

func batch(rng *rand.Rand, s dsv3.Seq) (dsv3.Matrix, []int32) {
	h0 := dsv3.NewMatrix(s.Count*s.Len, hid)
	fill(rng, h0, 1)
	tokens := make([]int32, s.Count*s.Len)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(vocab))
	}
	return h0, tokens
}

func TestChainLossMatchesFloat64Equations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range []int{1, 2, 3} {
		c := newChain(t, rng, d)
		s := dsv3.Seq{Count: 3, Len: 7}
		h0, tokens := batch(rng, s)
		res, err := c.Forward(h0, tokens, s, false)
		if err != nil {
			t.Fatal(err)
		}
		want := ref64(c, h0, tokens, s)
		if math.Abs(res.Loss-want) > 1e-5*math.Abs(want) {
			t.Errorf("D=%d: loss %v, float64 equations %v", d, res.Loss, want)
		}
		for k, lg := range res.Logits {
			if lg.Rows != s.Count*(s.Len-k-1) || lg.Cols != vocab {
				t.Errorf("D=%d depth %d: logits %dx%d", d, k+1, lg.Rows, lg.Cols)
			}
		}
	}
}

// lossAt evaluates the chain's loss in inference mode.
func lossAt(t *testing.T, c *Chain, h0 dsv3.Matrix, tokens []int32, s dsv3.Seq) float64 {
	res, err := c.Forward(h0, tokens, s, false)
	if err != nil {
		t.Fatal(err)
	}
	return res.Loss
}

// TestChainGradientsFiniteDifference checks every gradient of L_MTP: each
// module's parameters, the shared embedding and head, and the depth-0
// states, against central differences.
func TestChainGradientsFiniteDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	c := newChain(t, rng, 2)
	s := dsv3.Seq{Count: 2, Len: 6}
	h0, tokens := batch(rng, s)
	res, err := c.Forward(h0, tokens, s, true)
	if err != nil {
		t.Fatal(err)
	}
	dh0, err := c.Backward(res)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		name  string
		value dsv3.Matrix
		grad  dsv3.Matrix
	}
	var targets []target
	for k, m := range c.Modules {
		for _, p := range m.Params() {
			targets = append(targets, target{name: fmt.Sprintf("%s@depth%d", p.Name, k+1), value: p.Value, grad: p.Grad})
		}
	}
	targets = append(targets,
		target{"embed_tokens", c.Shared.Embed.Weight, c.Shared.Embed.Grad},
		target{"head", c.Shared.Head.W.(dsv3.Matrix), c.Shared.Head.Grad},
		target{"h0", h0, dh0})
	const step = 1e-2
	for _, tg := range targets {
		var maxErr, maxG float64
		for i := range tg.value.Data {
			old := tg.value.Data[i]
			tg.value.Data[i] = old + step
			lp := lossAt(t, c, h0, tokens, s)
			tg.value.Data[i] = old - step
			lm := lossAt(t, c, h0, tokens, s)
			tg.value.Data[i] = old
			fd := (lp - lm) / (2 * step)
			g := float64(tg.grad.Data[i])
			maxErr = math.Max(maxErr, math.Abs(fd-g))
			maxG = math.Max(maxG, math.Abs(g))
		}
		if maxG == 0 {
			t.Errorf("%s: gradient is all zero", tg.name)
			continue
		}
		if maxErr > 1e-2*maxG {
			t.Errorf("%s: max |fd - grad| = %.3g, max |grad| = %.3g", tg.name, maxErr, maxG)
		}
	}
}

func TestChainErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	c := newChain(t, rng, 2)
	s := dsv3.Seq{Count: 1, Len: 2}
	h0, tokens := batch(rng, s)
	if _, err := c.Forward(h0, tokens, s, false); err == nil {
		t.Error("sequence as short as the depth accepted")
	}
	s = dsv3.Seq{Count: 1, Len: 5}
	h0, tokens = batch(rng, s)
	tokens[3] = vocab + 4
	if _, err := c.Forward(h0, tokens, s, false); err == nil {
		t.Error("token outside the vocabulary accepted")
	}
	if _, err := c.Backward(&Result{}); err == nil {
		t.Error("Backward without a training record accepted")
	}
	if _, err := New(Config{Hidden: 0}, &mixBlock{}, false); err == nil {
		t.Error("zero hidden size accepted")
	}
	if _, err := (&Chain{}).Forward(h0, tokens, s, false); err == nil {
		t.Error("empty chain accepted")
	}
}

func TestModuleParamNames(t *testing.T) {
	m, err := New(Config{Hidden: 4, Eps: 1e-6}, &mixBlock{lin: dsv3.NewLinear(4, 4, false)}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"enorm.weight", "hnorm.weight", "eh_proj.weight", "shared_head.norm.weight", "mix.weight"}
	ps := m.Params()
	if len(ps) != len(want) {
		t.Fatalf("%d params, want %d", len(ps), len(want))
	}
	for i, p := range ps {
		if p.Name != want[i] {
			t.Errorf("param %d: %q, want %q", i, p.Name, want[i])
		}
	}
	if ps[2].Value.Rows != 4 || ps[2].Value.Cols != 8 {
		t.Errorf("eh_proj is %dx%d, want 4x8", ps[2].Value.Rows, ps[2].Value.Cols)
	}
}
