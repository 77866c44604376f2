package dsv3

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bf16Value decodes a bfloat16 bit pattern from the format's definition:
// 1 sign bit, 8 exponent bits with bias 127, 7 mantissa bits; exponent 0 is
// subnormal (m/128 · 2^-126), exponent 255 is ±Inf (m = 0) or NaN.
func bf16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>7) & 0xff
	m := float64(h & 0x7f)
	switch e {
	case 0:
		return sign * math.Ldexp(m/128, -126)
	case 255:
		if m == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+m/128, e-127)
}

func TestBF16WidenExhaustive(t *testing.T) {
	all := make([]BF16, 1<<16)
	for i := range all {
		all[i] = BF16(i)
	}
	bulk := make([]float32, len(all))
	Float32sFromBF16(bulk, all)
	for i, h := range all {
		got := h.Float32()
		want := bf16Value(uint16(h))
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) || math.Float32bits(got) != uint32(h)<<16 {
				t.Fatalf("BF16 %#04x (NaN) widened to %#08x", uint16(h), math.Float32bits(got))
			}
		} else if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("BF16 %#04x widened to %v, want %v", uint16(h), got, want)
		}
		if math.Float32bits(bulk[i]) != math.Float32bits(got) {
			t.Fatalf("Float32sFromBF16 disagrees with Float32 at %#04x", i)
		}
	}
}

// refBF16 rounds x to bfloat16 by the definition of round-to-nearest-even:
// of the two bfloat16 values that bracket x (the one nearer zero, and the
// next one away from zero, where the value past the largest finite one is
// 2^128, that is Inf), take the nearer in exact float64 arithmetic, and on a
// tie the one with an even mantissa. NaN becomes a quiet NaN with x's sign.
func refBF16(x float32) uint16 {
	b := math.Float32bits(x)
	if math.IsNaN(float64(x)) {
		return uint16(b>>16)&0x8000 | 0x7fc0
	}
	if math.IsInf(float64(x), 0) {
		return uint16(b >> 16)
	}
	lo := uint16(b >> 16) // toward zero
	hi := lo + 1          // away from zero
	vlo := math.Abs(bf16Value(lo))
	vhi := math.Ldexp(1, 128)
	if hi&0x7fff != 0x7f80 {
		vhi = math.Abs(bf16Value(hi))
	}
	ax := math.Abs(float64(x))
	dlo, dhi := ax-vlo, vhi-ax
	switch {
	case dlo < dhi:
		return lo
	case dhi < dlo:
		return hi
	case lo&1 == 0:
		return lo
	}
	return hi
}

// checkBF16 compares ToBF16(x) with refBF16(x).
func checkBF16(t testing.TB, x float32) {
	got := uint16(ToBF16(x))
	want := refBF16(x)
	if math.IsNaN(float64(x)) {
		// Any quiet NaN of the same sign is right; the payload may be kept.
		if got&0x7f80 != 0x7f80 || got&0x0040 == 0 || got&0x8000 != want&0x8000 {
			t.Fatalf("ToBF16(NaN %#08x) = %#04x, want a quiet NaN with the same sign", math.Float32bits(x), got)
		}
		return
	}
	if got != want {
		t.Fatalf("ToBF16(%v = %#08x) = %#04x, want %#04x", x, math.Float32bits(x), got, want)
	}
}

// TestToBF16Sweep rounds every float32 whose low 16 bits sit at or next to
// a rounding boundary (exact, just above, just below the tie, the tie
// itself, and the extremes), for all 65536 upper halves: every sign,
// exponent (subnormals, ±Inf, NaN, the overflow to Inf above the largest
// bfloat16) and mantissa.
func TestToBF16Sweep(t *testing.T) {
	lows := []uint32{0x0000, 0x0001, 0x3fff, 0x7ffe, 0x7fff, 0x8000, 0x8001, 0xbfff, 0xfffe, 0xffff}
	r := rand.New(rand.NewPCG(7, 8))
	for hi := uint32(0); hi < 1<<16; hi++ {
		for _, lo := range lows {
			checkBF16(t, math.Float32frombits(hi<<16|lo))
		}
		checkBF16(t, math.Float32frombits(hi<<16|r.Uint32()&0xffff))
	}
	// Named cases, by hand.
	for _, c := range []struct {
		x    float32
		want uint16
	}{
		{1, 0x3f80},
		{1 + 1.0/256, 0x3f80},             // tie, 1 is even
		{1 + 3.0/256, 0x3f82},             // tie, 1+2/128 is even
		{1 + 1.0/256 + 1.0/65536, 0x3f81}, // just above the tie
		{-(1 + 1.0/256), 0xbf80},
		{math.MaxFloat32, 0x7f80},                  // overflows to Inf
		{math.Float32frombits(0x7f7f7fff), 0x7f7f}, // just below the overflow tie: the largest bfloat16
		{math.Float32frombits(0x7f7f8000), 0x7f80}, // the tie above the largest bfloat16 goes to even: Inf
		{-math.MaxFloat32, 0xff80},                 // -Inf
		{math.Float32frombits(0x00000001), 0x0000}, // the smallest subnormal rounds to 0
		{math.Float32frombits(0x00008000), 0x0000}, // tie between 0 and the smallest bfloat16 subnormal
		{math.Float32frombits(0x00018000), 0x0002}, // tie, to even
		{math.Float32frombits(0x007fffff), 0x0080}, // largest subnormal rounds up to the smallest normal
		{float32(math.Inf(1)), 0x7f80},
		{float32(math.Copysign(0, -1)), 0x8000},
	} {
		if got := uint16(ToBF16(c.x)); got != c.want {
			t.Errorf("ToBF16(%v) = %#04x, want %#04x", c.x, got, c.want)
		}
	}
	// NaNs whose payload lives only in the low half must not become Inf.
	for _, b := range []uint32{0x7f800001, 0xff800001, 0x7fc00000, 0x7fffffff, 0xffc00000} {
		checkBF16(t, math.Float32frombits(b))
	}
}

func TestBF16Bulk(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	src := make([]float32, 1000)
	for i := range src {
		src[i] = math.Float32frombits(r.Uint32())
	}
	dst := make([]BF16, len(src))
	BF16FromFloat32s(dst, src)
	for i, v := range src {
		if dst[i] != ToBF16(v) {
			t.Fatalf("BF16FromFloat32s[%d] = %#04x, ToBF16 = %#04x", i, dst[i], ToBF16(v))
		}
		if got := RoundBF16(v); math.Float32bits(got) != math.Float32bits(ToBF16(v).Float32()) {
			t.Fatalf("RoundBF16(%v) = %v", v, got)
		}
	}
}

// FuzzToBF16 checks that ToBF16 is the definition's rounding: the nearest
// bfloat16, within half an ulp of x, ties to even.
func FuzzToBF16(f *testing.F) {
	for _, b := range []uint32{0, 0x3f808000, 0x3f818000, 0x7f7f8000, 0x7f7fffff, 0x7f800000, 0x7f800001, 0x80000001, 0x00008000, 0xff7f8000} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b uint32) {
		x := math.Float32frombits(b)
		checkBF16(t, x)
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return
		}
		r := float64(ToBF16(x).Float32())
		if math.IsInf(r, 0) {
			// Overflow only at or beyond the largest bfloat16 plus half its ulp.
			if math.Abs(float64(x)) < math.Ldexp(2-1.0/128, 127)+math.Ldexp(1, 127-8) {
				t.Fatalf("ToBF16(%v) overflowed", x)
			}
			return
		}
		// Half an ulp of the result's binade (2^-8 relative to its leading
		// bit, with subnormals sharing the 2^-126 binade).
		e := math.Ilogb(math.Abs(float64(x)))
		if x == 0 || e < -126 {
			e = -126
		}
		if d := math.Abs(float64(x) - r); d > math.Ldexp(1, e-8) {
			t.Fatalf("ToBF16(%v) = %v is %g away, more than half an ulp", x, r, d)
		}
	})
}

// f16Value decodes an IEEE half from its definition: bias 15, 10 mantissa
// bits, subnormals m/1024 · 2^-14.
func f16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return sign * math.Ldexp(m/1024, -14)
	case 31:
		if m == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

func TestF16(t *testing.T) {
	// Widening, exhaustively against the definition.
	all := make([]F16, 1<<16)
	for i := range all {
		all[i] = F16(i)
	}
	wide := make([]float32, len(all))
	Float32sFromF16(wide, all)
	for i, v := range wide {
		want := f16Value(uint16(i))
		if math.IsNaN(want) != math.IsNaN(float64(v)) || !math.IsNaN(want) && (float64(v) != want || math.Signbit(want) != math.Signbit(float64(v))) {
			t.Fatalf("F16 %#04x widened to %v, want %v", i, v, want)
		}
	}
	// Rounding spot checks, hand-derived: ties to even, overflow, subnormals.
	for _, c := range []struct {
		x    float64
		want uint16
	}{
		{1, 0x3c00},
		{1 + math.Ldexp(1, -11), 0x3c00},                      // tie: 1 is even
		{1 + 3*math.Ldexp(1, -11), 0x3c02},                    // tie: to the even 1+2^-9
		{1 + math.Ldexp(1, -11) + math.Ldexp(1, -20), 0x3c01}, // above the tie
		{-2.5, 0xc100},
		{65504, 0x7bff},                  // largest half
		{65519.99, 0x7bff},               // below the overflow tie
		{65520, 0x7c00},                  // the tie above 65504 goes to even: Inf
		{1e6, 0x7c00},                    // overflow
		{math.Ldexp(1, -24), 0x0001},     // smallest subnormal
		{math.Ldexp(1, -25), 0x0000},     // tie between 0 and it: 0
		{3 * math.Ldexp(1, -25), 0x0002}, // tie: to even
		{math.Ldexp(1, -26), 0x0000},
		{math.Copysign(0, -1), 0x8000},
		{math.Inf(-1), 0xfc00},
	} {
		if got := ToF16(float32(c.x)).Bits(); got != c.want {
			t.Errorf("ToF16(%v) = %#04x, want %#04x", c.x, got, c.want)
		}
	}
	if h := ToF16(float32(math.NaN())); !h.IsNaN() {
		t.Errorf("ToF16(NaN) = %#04x", h.Bits())
	}
	r := rand.New(rand.NewPCG(2, 2))
	src := make([]float32, 500)
	for i := range src {
		src[i] = float32(r.NormFloat64() * 1000)
	}
	dst := make([]F16, len(src))
	F16FromFloat32s(dst, src)
	for i, v := range src {
		if dst[i] != ToF16(v) {
			t.Fatalf("F16FromFloat32s[%d] differs from ToF16", i)
		}
		// The nearest half: no other half is closer.
		got := f16Value(dst[i].Bits())
		for _, nb := range []uint16{dst[i].Bits() - 1, dst[i].Bits() + 1} {
			if nv := f16Value(nb); !math.IsNaN(nv) && !math.IsInf(nv, 0) && math.Abs(nv-float64(v)) < math.Abs(got-float64(v)) {
				t.Fatalf("ToF16(%v) = %v, but %v is nearer", v, got, nv)
			}
		}
	}
}

func TestBF16Weight(t *testing.T) {
	if _, err := NewBF16Weight(3, 4, make([]BF16, 11)); err == nil {
		t.Error("NewBF16Weight accepted 11 values for 3x4")
	}
	if _, err := NewBF16Weight(-1, 4, nil); err == nil {
		t.Error("NewBF16Weight accepted a negative size")
	}
	r := rand.New(rand.NewPCG(3, 3))
	// Out > the 256 rows MulT widens at a time, and not a multiple of it.
	for _, sz := range [][3]int{{5, 300, 37}, {1, 1, 1}, {17, 256, 64}, {3, 513, 9}} {
		m, out, in := sz[0], sz[1], sz[2]
		data := make([]BF16, out*in)
		for i := range data {
			data[i] = ToBF16(float32(r.NormFloat64()))
		}
		w, err := NewBF16Weight(out, in, data)
		if err != nil {
			t.Fatal(err)
		}
		if o, i := w.Dims(); o != out || i != in {
			t.Fatalf("Dims %d, %d", o, i)
		}
		x := randMatrix(r, m, in)
		// y is a strided view inside a larger matrix, prefilled for acc.
		big := randMatrix(r, m+2, out+5)
		bigBefore := big.Clone()
		y := big.View(1, 2, m, out)
		before := y.Clone()
		for _, acc := range []bool{false, true} {
			y.CopyFrom(before)
			w.MulT(y, x, acc)
			want := make([]float64, m*out)
			for i := 0; i < m; i++ {
				for j := 0; j < out; j++ {
					var s float64
					for k := 0; k < in; k++ {
						s += float64(x.At(i, k)) * bf16Value(uint16(data[j*in+k]))
					}
					if acc {
						s += float64(before.At(i, j))
					}
					want[i*out+j] = s
				}
			}
			if e := relErr(y, want); e > 1e-5*math.Sqrt(float64(in)) {
				t.Errorf("%dx%d·(%dx%d)ᵀ acc=%v: relative error %g", m, in, out, in, acc, e)
			}
		}
		// The view's surroundings are untouched.
		checkOutside(t, big, bigBefore, 1, 2, m, out)
		wf := w.Float32()
		for i, v := range wf.Data {
			if float64(v) != bf16Value(uint16(data[i])) {
				t.Fatalf("Float32()[%d] = %v", i, v)
			}
		}
	}
}
