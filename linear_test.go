package dsv3

import (
	"math"
	"math/rand/v2"
	"testing"
)

// linear64 is y = x·Wᵀ in float64.
func linear64(x, w []float64, t, in, out int) []float64 {
	y := make([]float64, t*out)
	for i := 0; i < t; i++ {
		for j := 0; j < out; j++ {
			var s float64
			for k := 0; k < in; k++ {
				s += x[i*in+k] * w[j*in+k]
			}
			y[i*out+j] = s
		}
	}
	return y
}

// flat64 returns m's elements row by row in float64.
func flat64(m Matrix) []float64 {
	out := make([]float64, 0, m.Rows*m.Cols)
	for i := 0; i < m.Rows; i++ {
		for _, v := range m.Row(i) {
			out = append(out, float64(v))
		}
	}
	return out
}

// dot64 returns Σ a⊙b over a matrix and a flat float64 slice.
func dot64(a Matrix, b []float64) float64 {
	var s float64
	for i, v := range flat64(a) {
		s += v * b[i]
	}
	return s
}

// gradCheck compares an analytic gradient with central differences of loss
// in each coordinate of p (a float64 copy that loss reads), requiring
// max|fd - got| <= tol · max|fd|.
func gradCheck(t *testing.T, what string, p []float64, got []float64, h, tol float64, loss func() float64) {
	t.Helper()
	fd := make([]float64, len(p))
	for i := range p {
		v := p[i]
		p[i] = v + h
		lp := loss()
		p[i] = v - h
		lm := loss()
		p[i] = v
		fd[i] = (lp - lm) / (2 * h)
	}
	var num, den float64
	for i := range fd {
		num = math.Max(num, math.Abs(fd[i]-got[i]))
		den = math.Max(den, math.Abs(fd[i]))
	}
	if den == 0 || num > tol*den {
		t.Errorf("%s: max |finite difference - backward| = %g, max |finite difference| = %g (tolerance %g relative)", what, num, den, tol)
	}
}

func TestLinearForwardBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	const tok, in, out = 5, 19, 13
	l := NewLinear(out, in, true)
	w := l.W.(Matrix)
	copy(w.Data, randMatrix(r, out, in).Data)
	// x is a strided view, as a slice of a wider activation would be.
	x := randMatrix(r, tok, in+4).View(0, 3, tok, in)
	R := make([]float64, tok*out) // loss = Σ y⊙R
	for i := range R {
		R[i] = r.NormFloat64()
	}

	y, rec := l.Forward(x, true)
	if y.Rows != tok || y.Cols != out || rec == nil {
		t.Fatalf("Forward: %dx%d, record %v", y.Rows, y.Cols, rec)
	}
	x64, w64 := flat64(x), flat64(w)
	if e := relErr(y, linear64(x64, w64, tok, in, out)); e > 1e-5*math.Sqrt(in) {
		t.Errorf("forward relative error %g", e)
	}

	// Backward with a gradient already holding G0: it must add.
	g0 := randMatrix(r, out, in)
	l.Grad.CopyFrom(g0)
	dy := NewMatrix(tok, out)
	for i := range dy.Data {
		dy.Data[i] = float32(R[i])
	}
	dx := l.Backward(rec, dy)
	if dx.Rows != tok || dx.Cols != in {
		t.Fatalf("dx is %dx%d", dx.Rows, dx.Cols)
	}
	dw := make([]float64, out*in)
	for i, v := range flat64(l.Grad) {
		dw[i] = v - float64(g0.Data[i])
	}
	R32 := make([]float64, len(R)) // the loss weights as Backward saw them
	for i := range R {
		R32[i] = float64(float32(R[i]))
	}

	// Finite differences of a float64 forward: tight.
	loss64 := func() float64 {
		y := linear64(x64, w64, tok, in, out)
		var s float64
		for i := range y {
			s += y[i] * R32[i]
		}
		return s
	}
	gradCheck(t, "dL/dx (float64 forward)", x64, flat64(dx), 1e-3, 1e-5, loss64)
	gradCheck(t, "dL/dW (float64 forward)", w64, dw, 1e-3, 1e-5, loss64)

	// Finite differences of Linear.Forward itself, through its float32
	// weight: looser, float32 rounding over a step of 1e-2.
	xp := x.Clone()
	xs := flat64(xp)
	lossLayer := func() float64 {
		for i, v := range xs {
			xp.Data[i] = float32(v)
		}
		for i, v := range w64 {
			w.Data[i] = float32(v)
		}
		y, _ := l.Forward(xp, false)
		return dot64(y, R32)
	}
	gradCheck(t, "dL/dx (Linear.Forward)", xs, flat64(dx), 1e-2, 1e-3, lossLayer)
	gradCheck(t, "dL/dW (Linear.Forward)", w64, dw, 1e-2, 1e-3, lossLayer)
	lossLayer() // put back the unperturbed weight

	// Inference: no record, same output.
	y2, rec2 := l.Forward(x, false)
	if rec2 != nil {
		t.Error("inference Forward returned a record")
	}
	if e := relErr(y2, flat64(y)); e != 0 {
		t.Errorf("inference output differs by %g", e)
	}
}

func TestLinearBF16AndParams(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 12))
	const tok, in, out = 3, 8, 6
	l := NewLinear(out, in, false)
	ps := l.Params()
	if len(ps) != 1 || ps[0].Name != "weight" || ps[0].Slot != &l.W || ps[0].Value.Rows != out || !ps[0].Grad.Empty() {
		t.Fatalf("Params: %+v", ps)
	}
	// A loader puts a BF16 weight in the slot.
	data := make([]BF16, out*in)
	for i := range data {
		data[i] = ToBF16(float32(r.NormFloat64()))
	}
	bw, _ := NewBF16Weight(out, in, data)
	*ps[0].Slot = bw
	if l.W != Weight(bw) {
		t.Fatal("Slot does not point at the layer's weight")
	}
	x := randMatrix(r, tok, in)
	y, rec := l.Forward(x, false)
	w64 := make([]float64, len(data))
	for i, v := range data {
		w64[i] = bf16Value(uint16(v))
	}
	if e := relErr(y, linear64(flat64(x), w64, tok, in, out)); e > 1e-5*math.Sqrt(in) || rec != nil {
		t.Errorf("BF16 forward relative error %g, record %v", e, rec)
	}
	if p := l.Params()[0]; !p.Value.Empty() {
		t.Error("Params reports a float32 Value for a BF16 weight")
	}
	_, rec = l.Forward(x, true)
	mustPanic(t, "Backward through a BF16 weight", func() { l.Backward(rec, NewMatrix(tok, out)) })
	mustPanic(t, "Forward with the wrong width", func() { l.Forward(NewMatrix(2, in+1), false) })
}

// engine64 is a LinearEngine that computes in float64 and records its calls.
type engine64 struct {
	fwd, bwd int
	sawW     Matrix
}

func (e *engine64) Forward(y, x, w Matrix, train bool) Record {
	e.fwd++
	e.sawW = w
	yy := linear64(flat64(x), flat64(w), x.Rows, x.Cols, w.Rows)
	for i := range y.Data {
		y.Data[i] = float32(yy[i])
	}
	if !train {
		return nil
	}
	return x
}

func (e *engine64) Backward(rec Record, dy, dx, w, dw Matrix) {
	e.bwd++
	x := rec.(Matrix)
	MatMul(dx, dy, w, false)
	if !dw.Empty() {
		MatTMul(dw, dy, x, true)
	}
}

func TestLinearEngine(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	l := NewLinear(4, 5, true)
	copy(l.W.(Matrix).Data, randMatrix(r, 4, 5).Data)
	e := &engine64{}
	l.Engine = e
	x := randMatrix(r, 3, 5)
	y, rec := l.Forward(x, true)
	if e.fwd != 1 || &e.sawW.Data[0] != &l.W.(Matrix).Data[0] {
		t.Fatal("Forward did not go through the engine with the master weight")
	}
	if err := relErr(y, linear64(flat64(x), flat64(l.W.(Matrix)), 3, 5, 4)); err > 1e-6 {
		t.Errorf("engine output lost: %g", err)
	}
	dy := randMatrix(r, 3, 4)
	dx := l.Backward(rec, dy)
	if e.bwd != 1 || dx.Rows != 3 || dx.Cols != 5 {
		t.Fatalf("Backward through the engine: %d calls, dx %dx%d", e.bwd, dx.Rows, dx.Cols)
	}
	if l.Grad.CheckFinite("grad") != nil || l.Grad.Data[0] == 0 {
		t.Error("engine Backward did not fill Grad")
	}
	if _, rec := l.Forward(x, false); rec != nil {
		t.Error("inference Forward through the engine returned a record")
	}
}
