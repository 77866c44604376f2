package dsv3

import (
	"math"
	"math/rand/v2"
	"testing"
)

// rmsnorm64 is y = x / sqrt(mean(x²) + eps) ⊙ w per row, in float64.
func rmsnorm64(x, w []float64, rows, dim int, eps float64) []float64 {
	y := make([]float64, rows*dim)
	for i := 0; i < rows; i++ {
		var ss float64
		for j := 0; j < dim; j++ {
			ss += x[i*dim+j] * x[i*dim+j]
		}
		inv := 1 / math.Sqrt(ss/float64(dim)+eps)
		for j := 0; j < dim; j++ {
			y[i*dim+j] = x[i*dim+j] * inv * w[j]
		}
	}
	return y
}

func TestRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 21))
	for _, c := range []struct {
		name string
		rows int
		dim  int
		eps  float32
		xs   float64 // scale of x
	}{
		{"unit", 6, 33, 1e-6, 1},
		{"small values, eps matters", 4, 16, 0.01, 0.05},
		{"large eps", 3, 8, 0.5, 1},
		{"wide", 2, 256, 1e-6, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := NewRMSNorm(c.dim, c.eps, true)
			if n.Weight.Rows != 1 || n.Weight.Cols != c.dim || n.Weight.Data[0] != 1 || n.Grad.Cols != c.dim {
				t.Fatalf("NewRMSNorm: %+v", n)
			}
			for i := range n.Weight.Data {
				n.Weight.Data[i] = float32(1 + 0.5*r.NormFloat64())
			}
			x := randMatrix(r, c.rows, c.dim+3).View(0, 1, c.rows, c.dim) // strided
			for i := 0; i < c.rows; i++ {
				for j := range x.Row(i) {
					x.Row(i)[j] *= float32(c.xs)
				}
			}
			eps := float64(c.eps)
			x64, w64 := flat64(x), flat64(n.Weight)
			y, rec := n.Forward(x, true)
			if rec == nil || y.Rows != c.rows || y.Cols != c.dim {
				t.Fatalf("Forward: %dx%d, record %v", y.Rows, y.Cols, rec)
			}
			if e := relErr(y, rmsnorm64(x64, w64, c.rows, c.dim, eps)); e > 2e-6 {
				t.Errorf("forward relative error %g", e)
			}

			R := make([]float64, c.rows*c.dim)
			dy := NewMatrix(c.rows, c.dim)
			for i := range R {
				dy.Data[i] = float32(r.NormFloat64())
				R[i] = float64(dy.Data[i])
			}
			g0 := randMatrix(r, 1, c.dim)
			n.Grad.CopyFrom(g0)
			dx := n.Backward(rec, dy)
			dw := make([]float64, c.dim)
			for j, v := range n.Grad.Data {
				dw[j] = float64(v) - float64(g0.Data[j])
			}

			// Central differences of the float64 forward.
			loss64 := func() float64 {
				y := rmsnorm64(x64, w64, c.rows, c.dim, eps)
				var s float64
				for i := range y {
					s += y[i] * R[i]
				}
				return s
			}
			h := 1e-6 * c.xs
			gradCheck(t, "dL/dx (float64 forward)", x64, flat64(dx), h, 1e-4, loss64)
			gradCheck(t, "dL/dweight (float64 forward)", w64, dw, 1e-6, 1e-4, loss64)

			// Central differences of RMSNorm.Forward itself (float32).
			xp := x.Clone()
			xs := flat64(xp)
			lossLayer := func() float64 {
				for i, v := range xs {
					xp.Data[i] = float32(v)
				}
				for j, v := range w64 {
					n.Weight.Data[j] = float32(v)
				}
				y, _ := n.Forward(xp, false)
				return dot64(y, R)
			}
			gradCheck(t, "dL/dx (RMSNorm.Forward)", xs, flat64(dx), 1e-2*c.xs, 1e-2, lossLayer)
			gradCheck(t, "dL/dweight (RMSNorm.Forward)", w64, dw, 1e-2, 1e-2, lossLayer)
			lossLayer() // put back the unperturbed weight

			if _, rec := n.Forward(x, false); rec != nil {
				t.Error("inference Forward returned a record")
			}
		})
	}
}

func TestRMSNormParams(t *testing.T) {
	n := NewRMSNorm(4, 1e-6, false)
	ps := n.Params()
	if len(ps) != 1 || ps[0].Name != "weight" || ps[0].Value.Cols != 4 || !ps[0].Grad.Empty() || ps[0].Slot != nil {
		t.Fatalf("Params: %+v", ps)
	}
	ps[0].Value.Data[2] = 7 // Value shares the layer's weight
	if n.Weight.Data[2] != 7 {
		t.Error("Param.Value does not share the weight")
	}
	// Inference-built norms still backpropagate dx (no weight gradient).
	x := NewMatrix(2, 4)
	copy(x.Data, []float32{1, 2, 3, 4, -1, 0, 0, 1})
	y, rec := n.Forward(x, true)
	dx := n.Backward(rec, y)
	if dx.CheckFinite("dx") != nil {
		t.Error("dx not finite")
	}
	mustPanic(t, "Forward with the wrong width", func() { n.Forward(NewMatrix(1, 5), false) })
	// An all-zero row stays finite thanks to eps.
	z, _ := n.Forward(NewMatrix(1, 4), false)
	if err := z.CheckFinite("zero row"); err != nil {
		t.Error(err)
	}
}
