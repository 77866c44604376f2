package fp8

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dsv3go/dsv3"
)

func randMatrix(r *rand.Rand, rows, cols int, scale float64) dsv3.Matrix {
	m := dsv3.NewMatrix(rows, cols)
	for i := range m.Data {
		m.Data[i] = float32(r.NormFloat64() * scale)
	}
	return m
}

// refFP8 is the FP8 GEMM in float64 from the definitions: code values
// (decoded by this test from the format's definition) times both scales.
func refFP8(a *Tiles, w *BlockWeight) []float64 {
	y := make([]float64, a.Rows*w.Out)
	for i := 0; i < a.Rows; i++ {
		for j := 0; j < w.Out; j++ {
			var sum float64
			for kb := 0; kb*BlockSize < w.In; kb++ {
				var d float64
				for k := kb * BlockSize; k < min(w.In, (kb+1)*BlockSize); k++ {
					d += defE4M3[a.Codes[i*a.Cols+k]] * defE4M3[w.Codes[j*w.In+k]]
				}
				sum += d * float64(a.Scales[i*a.ScaleCols()+kb]) * float64(w.ScaleInv[(j/BlockSize)*blocks(w.In)+kb])
			}
			y[i*w.Out+j] = sum
		}
	}
	return y
}

// refWeightOnly is x·dequant(W)ᵀ in float64.
func refWeightOnly(x dsv3.Matrix, w *BlockWeight) []float64 {
	y := make([]float64, x.Rows*w.Out)
	for i := 0; i < x.Rows; i++ {
		for j := 0; j < w.Out; j++ {
			var sum float64
			for k := 0; k < w.In; k++ {
				sum += float64(x.At(i, k)) * defE4M3[w.Codes[j*w.In+k]] * float64(w.ScaleInv[(j/BlockSize)*blocks(w.In)+k/BlockSize])
			}
			y[i*w.Out+j] = sum
		}
	}
	return y
}

// defE4M3 is e4m3Def for every code.
var defE4M3 = func() (t [256]float64) {
	for c := range t {
		t[c] = e4m3Def(byte(c))
	}
	return t
}()

// e4m3Def decodes an E4M3 code from the format's definition.
func e4m3Def(c byte) float64 {
	s := 1.0
	if c&0x80 != 0 {
		s = -1
	}
	e, m := int(c>>3)&15, float64(c&7)
	if e == 15 && m == 7 {
		return math.NaN()
	}
	if e == 0 {
		return s * m / 8 * math.Pow(2, -6)
	}
	return s * (1 + m/8) * math.Pow(2, float64(e-7))
}

// relErr is max|got-want| / max|want|.
func relErr(got dsv3.Matrix, want []float64) float64 {
	var num, den float64
	for i := 0; i < got.Rows; i++ {
		for j, v := range got.Row(i) {
			w := want[i*got.Cols+j]
			num = math.Max(num, math.Abs(float64(v)-w))
			den = math.Max(den, math.Abs(w))
		}
	}
	return num / den
}

var gemmSizes = [][3]int{
	{1, 1, 1}, {1, 200, 256}, {2, 130, 129}, {5, 257, 300}, {8, 64, 7},
	{9, 200, 256}, {13, 33, 300}, {40, 128, 256}, {41, 300, 385}, {100, 129, 640},
}

func TestGEMMRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sizes := gemmSizes
	if raceEnabled || testing.Short() {
		sizes = sizes[:6]
	}
	for _, sz := range sizes {
		m, n, k := sz[0], sz[1], sz[2]
		x := randMatrix(r, m, k, 1)
		wf := randMatrix(r, n, k, 0.05)
		// Blocks of very different magnitudes, so that a scale applied to
		// the wrong block shows.
		for i := 0; i < n; i++ {
			for j := 0; j < k; j++ {
				wf.Data[i*k+j] *= float32(math.Pow(4, float64((i/BlockSize+2*(j/BlockSize))%5)))
			}
		}
		w, err := QuantizeWeight(wf, ScaleF32)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []ScaleFormat{ScaleF32, ScalePow2} {
			a, err := QuantizeTiles(x, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, workers := range []int{1, 2, 3} {
				y := randMatrix(r, m, n, 1)
				y0 := y.Clone()
				if err := MulT(y, a, w, true, workers); err != nil {
					t.Fatal(err)
				}
				want := refFP8(a, w)
				for i := range want {
					want[i] += float64(y0.Data[i])
				}
				if e := relErr(y, want); !(e < 2e-6) {
					t.Errorf("FP8 GEMM %dx%dx%d format %d workers %d (acc): relative error %.3g", m, n, k, f, workers, e)
				}
			}
		}
		y := dsv3.NewMatrix(m, n)
		for i := range y.Data {
			y.Data[i] = float32(math.NaN()) // must be overwritten
		}
		w.Workers = 2
		w.MulT(y, x, false)
		if e := relErr(y, refWeightOnly(x, w)); !(e < 2e-6) {
			t.Errorf("weight-only %dx%dx%d: relative error %.3g", m, n, k, e)
		}
		// ActQuant is QuantizeTiles followed by MulT.
		a, _ := QuantizeTiles(x, ScalePow2)
		ActQuant{W: w, Scale: ScalePow2}.MulT(y, x, false)
		if e := relErr(y, refFP8(a, w)); !(e < 2e-6) {
			t.Errorf("ActQuant %dx%dx%d: relative error %.3g", m, n, k, e)
		}
	}
}

// TestGEMMStridedViews multiplies views whose strides exceed their widths.
func TestGEMMStridedViews(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	big := randMatrix(r, 30, 400, 1)
	x := big.View(3, 7, 20, 260)
	w, _ := QuantizeWeight(randMatrix(r, 150, 260, 0.1), ScaleF32)
	ybig := dsv3.NewMatrix(25, 170)
	y := ybig.View(2, 5, 20, 150)
	w.MulT(y, x, false)
	if e := relErr(y, refWeightOnly(x.Clone(), w)); !(e < 2e-6) {
		t.Errorf("strided weight-only: relative error %.3g", e)
	}
	for i := 0; i < ybig.Rows; i++ {
		for j := 0; j < ybig.Cols; j++ {
			if (i < 2 || i >= 22 || j < 5 || j >= 155) && ybig.At(i, j) != 0 {
				t.Fatalf("write outside the view at (%d, %d)", i, j)
			}
		}
	}
}

func TestGEMMErrors(t *testing.T) {
	w, _ := QuantizeWeight(dsv3.NewMatrix(4, 8), ScaleF32)
	a := NewTiles(2, 8)
	if err := MulT(dsv3.NewMatrix(2, 5), a, w, false, 0); err == nil {
		t.Error("MulT into a 2x5 output of a [4, 8] weight: no error")
	}
	if err := MulT(dsv3.NewMatrix(2, 4), NewTiles(2, 9), w, false, 0); err == nil {
		t.Error("MulT with 9-column activations: no error")
	}
	bad := &Tiles{Rows: 2, Cols: 8, Codes: make([]E4M3, 15), Scales: make([]float32, 2)}
	if err := MulT(dsv3.NewMatrix(2, 4), bad, w, false, 0); err == nil {
		t.Error("MulT with short codes: no error")
	}
	if _, err := BlockWeightFromBytes(4, 8, make([]byte, 31), make([]byte, 4)); err == nil {
		t.Error("BlockWeightFromBytes with 31 weight bytes: no error")
	}
	if _, err := BlockWeightFromBytes(200, 8, make([]byte, 1600), make([]byte, 4)); err == nil {
		t.Error("BlockWeightFromBytes with a [1, 1] scale for [200, 8]: no error")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("MulT with a mismatched shape did not panic")
			}
		}()
		w.MulT(dsv3.NewMatrix(2, 4), dsv3.NewMatrix(2, 7), false)
	}()
}
