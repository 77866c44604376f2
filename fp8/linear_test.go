package fp8

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dsv3go/dsv3"
)

// fp8Bound returns, for C = A·Bᵀ with A [m, k] quantised in 1x128 tiles of
// scales sa and B [n, k] in tiles or blocks of scales sb, the exact product
// in float64 and a per-element bound on the error of the FP8 product:
//
//	|Ĉ_ij − C_ij| ≤ Σ_k (u|a|+δa)|b| + (|a|(1+u)+δa)(u|b|+δb)  +  γ_k Σ_k |â||b̂|
//
// with u = 2^-4 (+2^-22 for the division and the dequantising product),
// the relative rounding error of a normal E4M3 value (3 mantissa bits),
// δ = 2^-10·s, half the subnormal spacing of a tile with scale s, and
// γ_k = (k+2)·2^-24 for the float32 sums.
func fp8Bound(a, b dsv3.Matrix, sa, sb func(r, kb int) float64) (exact, bound []float64) {
	const u = 1.0/16 + 1.0/(1<<22)
	m, n, k := a.Rows, b.Rows, a.Cols
	exact, bound = make([]float64, m*n), make([]float64, m*n)
	gamma := float64(k+2) / (1 << 24)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var c, e, mag float64
			for kk := 0; kk < k; kk++ {
				x, w := math.Abs(float64(a.At(i, kk))), math.Abs(float64(b.At(j, kk)))
				c += float64(a.At(i, kk)) * float64(b.At(j, kk))
				da, db := sa(i, kk/BlockSize)/1024, sb(j, kk/BlockSize)/1024
				e += (u*x+da)*w + (x*(1+u)+da)*(u*w+db)
				mag += (x*(1+u) + da) * (w*(1+u) + db)
			}
			exact[i*n+j], bound[i*n+j] = c, e+gamma*mag
		}
	}
	return exact, bound
}

// checkBound fails unless got is within bound of exact everywhere, and
// returns the relative Frobenius error ‖got−exact‖/‖exact‖.
func checkBound(t *testing.T, name string, got dsv3.Matrix, exact, bound []float64) float64 {
	t.Helper()
	var num, den float64
	for i := 0; i < got.Rows; i++ {
		for j, v := range got.Row(i) {
			x := exact[i*got.Cols+j]
			d := math.Abs(float64(v) - x)
			if !(d <= bound[i*got.Cols+j]) {
				t.Fatalf("%s(%d, %d) = %g, exact %g: error %g beyond the FP8 bound %g", name, i, j, v, x, d, bound[i*got.Cols+j])
			}
			num += d * d
			den += x * x
		}
	}
	return math.Sqrt(num / den)
}

// tileScales returns the 1x128 tile scales of x, computed by the test's
// own tileScale.
func tileScales(x dsv3.Matrix, f ScaleFormat) func(r, kb int) float64 {
	nb := blocks(x.Cols)
	s := make([]float64, x.Rows*nb)
	for r := 0; r < x.Rows; r++ {
		row := x.Row(r)
		for kb := 0; kb < nb; kb++ {
			s[r*nb+kb] = float64(tileScale(row[kb*BlockSize:min(len(row), (kb+1)*BlockSize)], f))
		}
	}
	return func(r, kb int) float64 { return s[r*nb+kb] }
}

func TestLinearWithinFP8Bound(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	cases := []struct{ m, in, out int }{{7, 40, 9}, {50, 300, 130}, {130, 129, 257}}
	if raceEnabled || testing.Short() {
		cases = cases[:2]
	}
	for _, c := range cases {
		for _, pow2 := range []bool{false, true} {
			f := ScaleF32
			if pow2 {
				f = ScalePow2
			}
			eng := &Linear{InputScale: f, GradScale: f, WeightScale: f, Workers: 2}
			x := randMatrix(r, c.m, c.in, 1)
			w := randMatrix(r, c.out, c.in, 0.1)
			for i := 0; i < c.out; i++ { // blocks of different magnitudes
				for j := 0; j < c.in; j++ {
					w.Data[i*c.in+j] *= float32(1 + 3*((i/128+j/128)%2))
				}
			}
			dy := randMatrix(r, c.m, c.out, 0.5)
			l := &dsv3.Linear{W: w, Grad: dsv3.NewMatrix(c.out, c.in), Engine: eng}
			y, rec := l.Forward(x, true)
			dx := l.Backward(rec, dy)
			wq, _ := QuantizeWeight(w, f)
			wScale := func(r, kb int) float64 { return float64(wq.ScaleInv[(r/BlockSize)*blocks(c.in)+kb]) }
			wtScale := func(r, kb int) float64 { return wScale(kb*BlockSize, r/BlockSize) } // Wᵀ's blocks

			exact, bound := fp8Bound(x, w, tileScales(x, f), wScale)
			ey := checkBound(t, "y", y, exact, bound)
			wt := transpose(w)
			exact, bound = fp8Bound(dy, wt, tileScales(dy, f), wtScale)
			edx := checkBound(t, "dx", dx, exact, bound)
			dyt, xt := transpose(dy), transpose(x)
			exact, bound = fp8Bound(dyt, xt, tileScales(dyt, f), tileScales(xt, f))
			edw := checkBound(t, "dW", l.Grad, exact, bound)
			t.Logf("%dx%d->%d pow2=%v: relative errors y %.3g, dx %.3g, dW %.3g", c.m, c.in, c.out, pow2, ey, edx, edw)
			// Typical (not worst-case) FP8 error of random data: a few percent.
			for _, e := range []float64{ey, edx, edw} {
				if e > 0.06 {
					t.Errorf("relative error %.3g above 6%%", e)
				}
			}
		}
	}
}

// TestLinearIsTheFP8Scheme checks each GEMM against the scheme spelled out
// with the package's quantisers and a float64 sum of dequantised values:
// only float32 rounding separates them.
func TestLinearIsTheFP8Scheme(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	m, in, out := 33, 200, 140
	x, w, dy := randMatrix(r, m, in, 1), randMatrix(r, out, in, 0.1), randMatrix(r, m, out, 1)
	eng := &Linear{InputScale: ScalePow2}
	y := dsv3.NewMatrix(m, out)
	rec := eng.Forward(y, x, w, true)
	dx, dw := dsv3.NewMatrix(m, in), dsv3.NewMatrix(out, in)
	dw.Data[5] = 1 // Wgrad accumulates
	eng.Backward(rec, dy, dx, w, dw)

	deq := func(a dsv3.Matrix, f ScaleFormat) dsv3.Matrix { q, _ := QuantizeTiles(a, f); return q.Dequantize() }
	wq, _ := QuantizeWeight(w, ScaleF32)
	wd := wq.Dequantize()
	// Products inside each 128-wide block of the reduction, summed in float64.
	mul := func(a, b dsv3.Matrix) []float64 { // a·bᵀ
		c := make([]float64, a.Rows*b.Rows)
		for i := 0; i < a.Rows; i++ {
			for j := 0; j < b.Rows; j++ {
				var s float64
				for k := 0; k < a.Cols; k++ {
					s += float64(a.At(i, k)) * float64(b.At(j, k))
				}
				c[i*b.Rows+j] = s
			}
		}
		return c
	}
	if e := relErr(y, mul(deq(x, ScalePow2), wd)); e > 1e-6 {
		t.Errorf("Fprop: relative error %.3g from Q(x)·Q(W)ᵀ", e)
	}
	if e := relErr(dx, mul(deq(dy, ScaleF32), transpose(wd))); e > 1e-6 {
		t.Errorf("Dgrad: relative error %.3g from Q(dy)·Q(W)", e)
	}
	want := mul(deq(transpose(dy), ScaleF32), deq(transpose(x), ScalePow2))
	want[5]++
	if e := relErr(dw, want); e > 1e-6 {
		t.Errorf("Wgrad: relative error %.3g from 1 + Q(dyᵀ)·Q(xᵀ)ᵀ", e)
	}
}
