package fp8

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dsv3go/dsv3"
)

// tileScale is the reference's act_quant scale, written out here.
func tileScale(x []float32, f ScaleFormat) float32 {
	var m float32
	for _, v := range x {
		m = float32(math.Max(float64(m), math.Abs(float64(v))))
	}
	s := float32(math.Max(float64(m), 1e-4)) / 448
	if f == ScalePow2 {
		s = float32(math.Exp2(math.Ceil(math.Log2(float64(s)))))
	}
	return s
}

func TestQuantizeTilesProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, cols := range []int{1, 5, 127, 128, 129, 300} {
		x := randMatrix(r, 6, cols, 3)
		clear(x.Row(1))           // an all-zero row: scale 1e-4/448
		x.Row(2)[0] = 1e30        // one huge value
		for j := range x.Row(3) { // a tiny row below the 1e-4 floor
			x.Row(3)[j] = float32(r.NormFloat64() * 1e-7)
		}
		for _, f := range []ScaleFormat{ScaleF32, ScalePow2} {
			q, err := QuantizeTiles(x, f)
			if err != nil {
				t.Fatal(err)
			}
			d := q.Dequantize()
			for i := 0; i < x.Rows; i++ {
				for tb := 0; tb*BlockSize < cols; tb++ {
					lo, hi := tb*BlockSize, min(cols, (tb+1)*BlockSize)
					want := tileScale(x.Row(i)[lo:hi], f)
					s := q.Scales[i*q.ScaleCols()+tb]
					if s != want {
						t.Fatalf("cols %d format %d: tile (%d, %d) scale %g, want %g", cols, f, i, tb, s, want)
					}
					for j := lo; j < hi; j++ {
						v := x.At(i, j)
						c := q.Codes[i*cols+j]
						if c != ToE4M3(v/s, Saturate) || c.IsNaN() {
							t.Fatalf("tile (%d, %d) code %#02x for %g/%g", i, tb, c, v, s)
						}
						// Round-to-nearest error bound: half a step of the
						// value's binade, at least half a subnormal step.
						bound := math.Max(math.Abs(float64(v))/16, float64(s)/1024) * (1 + 1e-6)
						if e := math.Abs(float64(d.At(i, j) - v)); e > bound {
							t.Fatalf("tile (%d, %d): %g dequantises to %g (error %g > %g)", i, tb, v, d.At(i, j), e, bound)
						}
					}
				}
			}
		}
	}
}

func TestQuantizeNonFinite(t *testing.T) {
	x := dsv3.NewMatrix(2, 130)
	x.Set(0, 3, float32(math.NaN()))
	x.Set(1, 129, float32(math.Inf(-1)))
	x.Set(1, 0, 2)
	q, _ := QuantizeTiles(x, ScaleF32)
	if s := q.Scales[0]; s == s {
		t.Errorf("tile with a NaN: scale %g, want NaN", s)
	}
	if s := q.Scales[3]; !math.IsInf(float64(s), 1) {
		t.Errorf("tile with -Inf: scale %g, want +Inf", s)
	}
	if s := q.Scales[2]; s != 2.0/448 {
		t.Errorf("finite tile beside them: scale %g, want %g", s, 2.0/448)
	}
}

func TestQuantizeWeightProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	w := randMatrix(r, 200, 300, 0.02)
	for i := 128; i < 200; i++ { // block (1, 2) all zero
		clear(w.Row(i)[256:])
	}
	for i := 0; i < 128; i++ { // block (0, 1) tiny, below the activations' floor
		for j := 128; j < 256; j++ {
			w.Set(i, j, w.At(i, j)*1e-6)
		}
	}
	for _, f := range []ScaleFormat{ScaleF32, ScalePow2} {
		b, err := QuantizeWeight(w, f)
		if err != nil {
			t.Fatal(err)
		}
		if s := b.ScaleInv[1*3+2]; s != 1 {
			t.Errorf("all-zero block: scale %g, want 1", s)
		}
		d := b.Dequantize()
		for i := 0; i < w.Rows; i++ {
			for j := 0; j < w.Cols; j++ {
				s := float64(b.ScaleInv[(i/128)*3+j/128])
				v := float64(w.At(i, j))
				bound := math.Max(math.Abs(v)/16, s/1024) * (1 + 1e-6)
				if e := math.Abs(float64(d.At(i, j)) - v); e > bound {
					t.Fatalf("format %d: w(%d, %d) = %g dequantises to %g", f, i, j, v, d.At(i, j))
				}
			}
		}
		if f == ScalePow2 {
			for _, s := range b.ScaleInv {
				if m, _ := math.Frexp(float64(s)); m != 0.5 {
					t.Errorf("power-of-two scale %g", s)
				}
			}
		}
	}
}

// floats decodes fuzz bytes as float32 values.
func floats(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

func FuzzConvert(f *testing.F) {
	for _, v := range []uint32{0, 0x80000000, 0x3A800000, 0x43E80000, 0x43E80001, 0x7F800000, 0x7FC00000, 0x00000001, 0x477FFFFF} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, bits uint32) {
		x := math.Float32frombits(bits)
		sat, non := ToE4M3(x, Saturate), ToE4M3(x, NonSaturate)
		e5s, e5n := ToE5M2(x, Saturate), ToE5M2(x, NonSaturate)
		if finite(x) {
			if sat.IsNaN() || e5s.IsNaN() || e5s.IsInf() {
				t.Fatalf("%g: saturating codes %#02x / %#02x", x, sat, e5s)
			}
			if math.Abs(float64(x)) <= 464 && non != sat {
				t.Fatalf("%g: non-saturating %#02x != saturating %#02x in range", x, non, sat)
			}
			// The code is a nearest value: no grid value is closer.
			got := math.Abs(float64(sat.Float32()) - float64(x))
			for c := 0; c < 256; c++ {
				v := E4M3(c).Float32()
				if finite(v) && math.Abs(float64(v)-float64(x)) < got {
					t.Fatalf("%g -> %g, but %g is closer", x, sat.Float32(), v)
				}
			}
		} else if math.IsNaN(float64(x)) && (!sat.IsNaN() || !non.IsNaN() || !e5s.IsNaN() || !e5n.IsNaN()) {
			t.Fatalf("NaN -> %#02x %#02x %#02x %#02x", sat, non, e5s, e5n)
		}
	})
}

func FuzzQuantize(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 0}, uint8(3))
	f.Add(make([]byte, 4*20), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, cols uint8) {
		v := floats(data)
		c := int(cols)%257 + 1
		rows := len(v) / c
		if rows == 0 {
			return
		}
		x, _ := dsv3.MatrixFrom(rows, c, v[:rows*c])
		allFinite := x.CheckFinite("x") == nil
		for _, f := range []ScaleFormat{ScaleF32, ScalePow2} {
			q, err := QuantizeTiles(x, f)
			if err != nil {
				t.Fatal(err)
			}
			w, err := QuantizeWeight(x, f)
			if err != nil {
				t.Fatal(err)
			}
			if !allFinite {
				continue
			}
			for i, code := range q.Codes {
				if code.IsNaN() {
					t.Fatalf("tiles: NaN code at %d from finite input", i)
				}
			}
			for i, code := range w.Codes {
				if code.IsNaN() {
					t.Fatalf("blocks: NaN code at %d from finite input", i)
				}
			}
			for _, s := range append(q.Scales, w.ScaleInv...) {
				if !finite(s) || s <= 0 {
					t.Fatalf("scale %g from finite input", s)
				}
			}
			// Dequantisation stays finite except within a rounding step of
			// the float32 range, where code·scale may round up to Inf.
			small := true
			for _, x := range v {
				small = small && math.Abs(float64(x)) <= 1e38
			}
			if err := q.Dequantize().CheckFinite("dequantised tiles"); err != nil && small {
				t.Fatal(err)
			}
		}
	})
}
