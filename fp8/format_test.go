package fp8

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dsv3go/dsv3/internal/fp8x"
	"github.com/dsv3go/dsv3/internal/testutil"
)

// decodeTable reads the reference's 256 E4M3 values.
func decodeTable(t *testing.T) [256]float32 {
	t.Helper()
	var tab struct {
		Codes []struct {
			Code  int             `json:"code"`
			Value json.RawMessage `json:"value"`
		} `json:"codes"`
	}
	testutil.ReadJSON(t, testutil.Fixture(t, "common", "e4m3_decode_table.json"), &tab)
	if len(tab.Codes) != 256 {
		t.Fatalf("decode table has %d codes, want 256", len(tab.Codes))
	}
	var out [256]float32
	for _, c := range tab.Codes {
		var v float64
		if string(c.Value) == `"nan"` {
			v = math.NaN()
		} else if err := json.Unmarshal(c.Value, &v); err != nil {
			t.Fatalf("code %d: value %s: %v", c.Code, c.Value, err)
		}
		out[c.Code] = float32(v)
	}
	return out
}

func sameFloat(a, b float32) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func TestE4M3DecodeTable(t *testing.T) {
	want := decodeTable(t)
	dst := make([]float32, 256)
	src := make([]E4M3, 256)
	for c := range src {
		src[c] = E4M3(c)
	}
	Float32sFromE4M3(dst, src)
	for c := 0; c < 256; c++ {
		if got := E4M3(c).Float32(); !sameFloat(got, want[c]) {
			t.Errorf("E4M3(%#02x).Float32() = %v, want %v", c, got, want[c])
		}
		if !sameFloat(dst[c], want[c]) {
			t.Errorf("Float32sFromE4M3: code %#02x = %v, want %v", c, dst[c], want[c])
		}
		if E4M3(c).IsNaN() != (want[c] != want[c]) {
			t.Errorf("E4M3(%#02x).IsNaN() = %v", c, E4M3(c).IsNaN())
		}
	}
	// Also against the independent decoder of internal/testutil.
	for c := 0; c < 256; c++ {
		if !sameFloat(testutil.E4M3(byte(c)), want[c]) {
			t.Errorf("testutil.E4M3(%#02x) = %v, fixture says %v", c, testutil.E4M3(byte(c)), want[c])
		}
	}
}

func TestE4M3EncodeCases(t *testing.T) {
	var f struct {
		Cases []struct {
			Bits  string `json:"input_f32_bits"`
			Sat   int    `json:"sat_code"`
			Torch int    `json:"torch_code"`
			Note  string `json:"note"`
		} `json:"cases"`
	}
	testutil.ReadJSON(t, testutil.Fixture(t, "common", "e4m3_encode_cases.json"), &f)
	if len(f.Cases) < 20 {
		t.Fatalf("only %d encode cases", len(f.Cases))
	}
	for _, c := range f.Cases {
		b, err := strconv.ParseUint(c.Bits, 0, 32)
		if err != nil {
			t.Fatal(err)
		}
		x := math.Float32frombits(uint32(b))
		if got := ToE4M3(x, Saturate); int(got) != c.Sat {
			t.Errorf("%s (%s): saturating code %#02x, want %#02x", c.Bits, c.Note, got, c.Sat)
		}
		if got := ToE4M3(x, NonSaturate); int(got) != c.Torch {
			t.Errorf("%s (%s): non-saturating code %#02x, want %#02x", c.Bits, c.Note, got, c.Torch)
		}
		var sat, non [1]E4M3
		E4M3FromFloat32s(sat[:], []float32{x}, Saturate)
		E4M3FromFloat32s(non[:], []float32{x}, NonSaturate)
		if int(sat[0]) != c.Sat || int(non[0]) != c.Torch {
			t.Errorf("%s (%s): bulk codes %#02x/%#02x, want %#02x/%#02x", c.Bits, c.Note, sat[0], non[0], c.Sat, c.Torch)
		}
	}
}

// grid is the sorted non-negative finite values of a format with their
// codes, built from a decode table given by the test.
type grid struct {
	vals  []float32
	codes []uint8
}

func newGrid(dec func(uint8) float32) grid {
	var g grid
	idx := []int{}
	for c := 0; c < 128; c++ {
		v := dec(uint8(c))
		if v != v || math.IsInf(float64(v), 0) {
			continue
		}
		idx = append(idx, c)
	}
	sort.Slice(idx, func(i, j int) bool { return dec(uint8(idx[i])) < dec(uint8(idx[j])) })
	for _, c := range idx {
		g.vals = append(g.vals, dec(uint8(c)))
		g.codes = append(g.codes, uint8(c))
	}
	return g
}

// expect returns the round-to-nearest-even code of a non-negative finite f
// within the grid's range (f <= max): the nearer neighbour, at a tie the
// one with an even code (an even mantissa).
func (g grid) expect(f float32) uint8 {
	i := sort.Search(len(g.vals), func(i int) bool { return g.vals[i] >= f })
	if g.vals[i] == f || i == 0 {
		return g.codes[i]
	}
	lo, hi := float64(g.vals[i-1]), float64(g.vals[i])
	switch d := float64(f); {
	case d-lo < hi-d:
		return g.codes[i-1]
	case d-lo > hi-d:
		return g.codes[i]
	}
	if g.codes[i-1]%2 == 0 {
		return g.codes[i-1]
	}
	return g.codes[i]
}

// walk checks enc against want for every float32 within ±2 ulp of each
// midpoint between adjacent grid values (and of every grid value), for both
// signs; with all it also walks every float32 from 0 up to the largest grid
// value.
func (g grid) walk(t *testing.T, name string, enc func(float32) uint8, all bool) {
	t.Helper()
	check := func(f float32) bool {
		want := g.expect(f)
		if got := enc(f); got != want {
			t.Errorf("%s(%g = %#08x) = %#02x, want %#02x", name, f, math.Float32bits(f), got, want)
			return false
		}
		if got := enc(-f); got != want|0x80 {
			t.Errorf("%s(%g) = %#02x, want %#02x", name, -f, got, want|0x80)
			return false
		}
		return true
	}
	max := g.vals[len(g.vals)-1]
	for i := 0; i < len(g.vals); i++ {
		points := []float32{g.vals[i]}
		if i+1 < len(g.vals) {
			points = append(points, (g.vals[i]+g.vals[i+1])/2) // exact: one more bit
		}
		for _, p := range points {
			b := math.Float32bits(p)
			for d := -2; d <= 2; d++ {
				if int64(b)+int64(d) < 0 {
					continue
				}
				f := math.Float32frombits(uint32(int64(b) + int64(d)))
				if f <= max && !check(f) {
					return
				}
			}
		}
	}
	if !all {
		return
	}
	// Every float32 in (mid[i-1], mid[i]) must give code i; the midpoints
	// themselves were checked above. The intervals are shared out between
	// goroutines.
	type span struct {
		lo, hi uint32
		code   uint8
	}
	var spans []span
	for i := range g.vals {
		lo, hi := uint32(0), math.Float32bits(max)
		if i > 0 {
			lo = math.Float32bits((g.vals[i-1]+g.vals[i])/2) + 1
		}
		if i+1 < len(g.vals) {
			hi = math.Float32bits((g.vals[i]+g.vals[i+1])/2) - 1
		}
		for ; hi-lo > 1<<24; lo += 1 << 24 {
			spans = append(spans, span{lo, lo + 1<<24 - 1, g.codes[i]})
		}
		spans = append(spans, span{lo, hi, g.codes[i]})
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(spans) {
					return
				}
				sp := spans[i]
				for b := sp.lo; b <= sp.hi; b++ {
					if got := enc(math.Float32frombits(b)); got != sp.code {
						t.Errorf("%s(%#08x) = %#02x, want %#02x", name, b, got, sp.code)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestE4M3RoundingWalk(t *testing.T) {
	tab := decodeTable(t)
	g := newGrid(func(c uint8) float32 { return tab[c] })
	if len(g.vals) != 127 || g.vals[126] != 448 {
		t.Fatalf("E4M3 grid has %d values up to %v", len(g.vals), g.vals[len(g.vals)-1])
	}
	// The exhaustive walk (about 1.1e9 values) runs once: not in -short,
	// not under the race detector, and not in the purego build, whose
	// scalar encoder is the same code.
	all := !testing.Short() && !raceEnabled && fp8x.Active != fp8x.GoSet
	for _, m := range []Mode{Saturate, NonSaturate} {
		g.walk(t, "ToE4M3", func(f float32) uint8 { return uint8(ToE4M3(f, m)) }, all && m == Saturate)
	}
	// The bulk path on a stretch of every float32 around each midpoint.
	var src []float32
	for i := 0; i+1 < len(g.vals); i++ {
		b := math.Float32bits((g.vals[i] + g.vals[i+1]) / 2)
		for d := -40; d <= 40; d++ {
			if int64(b)+int64(d) >= 0 {
				src = append(src, math.Float32frombits(uint32(int64(b)+int64(d))))
			}
		}
	}
	dst := make([]E4M3, len(src))
	E4M3FromFloat32s(dst, src, Saturate)
	for i, f := range src {
		if want := g.expect(f); uint8(dst[i]) != want {
			t.Fatalf("E4M3FromFloat32s: %#08x -> %#02x, want %#02x", math.Float32bits(f), dst[i], want)
		}
	}
}

func TestE4M3Overflow(t *testing.T) {
	for _, c := range []struct {
		f        float32
		sat, non E4M3
	}{
		{448, 0x7E, 0x7E},
		{464, 0x7E, 0x7E},
		{math.Float32frombits(math.Float32bits(464) - 1), 0x7E, 0x7E},
		{math.Float32frombits(math.Float32bits(464) + 1), 0x7E, 0x7F},
		{1e30, 0x7E, 0x7F},
		{math.MaxFloat32, 0x7E, 0x7F},
		{float32(math.Inf(1)), 0x7E, 0x7F},
		{float32(math.Inf(-1)), 0xFE, 0xFF},
		{-500, 0xFE, 0xFF},
		{float32(math.NaN()), 0x7F, 0x7F},
		{float32(math.Copysign(math.NaN(), -1)), 0xFF, 0xFF},
	} {
		if got := ToE4M3(c.f, Saturate); got != c.sat {
			t.Errorf("ToE4M3(%v, Saturate) = %#02x, want %#02x", c.f, got, c.sat)
		}
		if got := ToE4M3(c.f, NonSaturate); got != c.non {
			t.Errorf("ToE4M3(%v, NonSaturate) = %#02x, want %#02x", c.f, got, c.non)
		}
	}
}

// e5m2Def decodes an E5M2 code from the format's definition, written here
// independently of the package.
func e5m2Def(c uint8) float64 {
	sign := 1.0
	if c&0x80 != 0 {
		sign = -1
	}
	exp, man := int(c>>2)&31, float64(c&3)
	switch {
	case exp == 31 && man == 0:
		return sign * math.Inf(1)
	case exp == 31:
		return math.NaN()
	case exp == 0:
		return sign * man / 4 * math.Pow(2, -14)
	}
	return sign * (1 + man/4) * math.Pow(2, float64(exp-15))
}

func TestE5M2(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := e5m2Def(uint8(c))
		got := E5M2(c).Float32()
		if math.IsNaN(want) != E5M2(c).IsNaN() || math.IsInf(want, 0) != E5M2(c).IsInf() {
			t.Errorf("E5M2(%#02x): IsNaN %v IsInf %v, value %v", c, E5M2(c).IsNaN(), E5M2(c).IsInf(), want)
		}
		if !math.IsNaN(want) && (float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want)) {
			t.Errorf("E5M2(%#02x).Float32() = %v, want %v", c, got, want)
		}
	}
	g := newGrid(func(c uint8) float32 { return float32(e5m2Def(c)) })
	if len(g.vals) != 124 || g.vals[123] != MaxE5M2 {
		t.Fatalf("E5M2 grid has %d values up to %v", len(g.vals), g.vals[len(g.vals)-1])
	}
	g.walk(t, "ToE5M2", func(f float32) uint8 { return uint8(ToE5M2(f, Saturate)) }, false)
	g.walk(t, "ToE5M2", func(f float32) uint8 { return uint8(ToE5M2(f, NonSaturate)) }, false)
	mid := float32(61440) // between 57344 and 65536 (which would be Inf)
	for _, c := range []struct {
		f        float32
		sat, non E5M2
	}{
		{57344, 0x7B, 0x7B},
		{math.Float32frombits(math.Float32bits(mid) - 1), 0x7B, 0x7B},
		{mid, 0x7B, 0x7C}, // tie: the even neighbour is 2^16, i.e. Inf
		{1e6, 0x7B, 0x7C},
		{float32(math.Inf(1)), 0x7B, 0x7C},
		{float32(math.Inf(-1)), 0xFB, 0xFC},
		{-1e6, 0xFB, 0xFC},
	} {
		if got := ToE5M2(c.f, Saturate); got != c.sat {
			t.Errorf("ToE5M2(%v, Saturate) = %#02x, want %#02x", c.f, got, c.sat)
		}
		if got := ToE5M2(c.f, NonSaturate); got != c.non {
			t.Errorf("ToE5M2(%v, NonSaturate) = %#02x, want %#02x", c.f, got, c.non)
		}
	}
	for _, m := range []Mode{Saturate, NonSaturate} {
		if c := ToE5M2(float32(math.NaN()), m); !c.IsNaN() {
			t.Errorf("ToE5M2(NaN, %d) = %#02x, not NaN", m, c)
		}
	}
	// Bulk conversions agree with the scalar ones.
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 4096)
	for i := range src {
		src[i] = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-24)))
	}
	dst := make([]E5M2, len(src))
	back := make([]float32, len(src))
	for _, m := range []Mode{Saturate, NonSaturate} {
		E5M2FromFloat32s(dst, src, m)
		Float32sFromE5M2(back, dst)
		for i, f := range src {
			if dst[i] != ToE5M2(f, m) || !sameFloat(back[i], dst[i].Float32()) {
				t.Fatalf("bulk E5M2 of %v: %#02x/%v", f, dst[i], back[i])
			}
		}
	}
}
