package fp8x

import (
	"math"
	"math/rand/v2"
	"testing"
)

// others returns the sets to compare with GoSet (all but GoSet itself).
func others(t *testing.T) []*Set {
	var s []*Set
	for _, set := range Sets {
		if set != GoSet {
			s = append(s, set)
		}
	}
	if len(s) == 0 {
		t.Logf("no assembly kernel set on this machine (purego build or no AVX2): nothing to compare")
	}
	return s
}

func TestSetsListed(t *testing.T) {
	if Sets[len(Sets)-1] != GoSet || Active != Sets[0] {
		t.Fatalf("Sets must end with GoSet and Active must be Sets[0]")
	}
	for _, s := range Sets {
		t.Logf("set %s (FMA %dx%d, BF16 %v, GEMV %v)", s.Name, s.MR, s.NR, s.BF16 != nil, s.Gemv != nil)
	}
	t.Logf("AMX: %s", AMX)
}

func sameBits(a, b float32) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func TestDecodeSets(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range others(t) {
		for _, n := range []int{0, 1, 63, 64, 65, 256, 1000, 3*decodeChunkTest + 17} {
			src := make([]byte, n)
			for i := range src {
				src[i] = byte(i*37 + i/256) // every code in every position
			}
			if n == 1000 {
				for i := range src {
					src[i] = byte(r.Uint32())
				}
			}
			got := make([]float32, n+1)
			got[n] = 12345
			want := make([]float32, n)
			s.Decode(got, src)
			decodeGo(want, src)
			for i := range want {
				if !sameBits(got[i], want[i]) {
					t.Fatalf("%s: n=%d code %#02x at %d: %v, want %v", s.Name, n, src[i], i, got[i], want[i])
				}
			}
			if got[n] != 12345 {
				t.Fatalf("%s: n=%d wrote past the end", s.Name, n)
			}
		}
	}
}

const decodeChunkTest = 1 << 14

func TestEncodeSets(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	src := make([]float32, 5000)
	for i := range src {
		switch i % 7 {
		case 0:
			src[i] = math.Float32frombits(r.Uint32())
		default:
			src[i] = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(30)-20)))
		}
	}
	src[1] = float32(math.Inf(1))
	src[2] = float32(math.NaN())
	src[3] = 464
	for _, s := range others(t) {
		for _, sc := range []float32{1, 0.01, 3e-7} {
			got := make([]byte, len(src))
			want := make([]byte, len(src))
			s.EncodeScaled(got, src, sc)
			encodeScaledGo(want, src, sc)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: %g/%g -> %#02x, want %#02x", s.Name, src[i], sc, got[i], want[i])
				}
			}
		}
	}
}

// fmaRef is the FMA micro-kernel for any tile size, in the same summation
// order as the assembly (k in order, each K-block's sum then the scales
// into a tile, the tile into C).
func fmaRef(mr, nr, kb int, a, b, sa, sb, c []float32, ldc int) {
	tile := make([]float32, mr*nr)
	for q := 0; q < kb; q++ {
		for i := 0; i < mr; i++ {
			for j := 0; j < nr; j++ {
				var acc float32
				for k := 0; k < Block; k++ {
					acc = float32(math.FMA(float64(a[(q*Block+k)*mr+i]), float64(b[(q*Block+k)*nr+j]), float64(acc)))
				}
				t := acc * sa[q*mr+i]
				tile[i*nr+j] = float32(math.FMA(float64(t), float64(sb[q*nr+j]), float64(tile[i*nr+j])))
			}
		}
	}
	for i := 0; i < mr; i++ {
		for j := 0; j < nr; j++ {
			c[i*ldc+j] += tile[i*nr+j]
		}
	}
}

func randSlice(r *rand.Rand, n int, integer bool) []float32 {
	s := make([]float32, n)
	for i := range s {
		if integer {
			s[i] = float32(r.IntN(9) - 4)
		} else {
			s[i] = float32(r.NormFloat64())
		}
	}
	return s
}

func TestFMAKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, s := range append(others(t), GoSet) {
		mr, nr := s.MR, s.NR
		for _, integer := range []bool{true, false} {
			for _, kb := range []int{1, 3} {
				a := randSlice(r, kb*Block*mr, integer)
				b := randSlice(r, kb*Block*nr, integer)
				sa := randSlice(r, kb*mr, integer)
				sb := randSlice(r, kb*nr, integer)
				ldc := nr + 5
				c := randSlice(r, mr*ldc, integer)
				want := append([]float32(nil), c...)
				s.FMA(kb, a, b, sa, sb, c, ldc)
				fmaRef(mr, nr, kb, a, b, sa, sb, want, ldc)
				for i := range want {
					if j := i % ldc; j >= nr {
						if c[i] != want[i] {
							t.Fatalf("%s: wrote outside the tile at %d", s.Name, i)
						}
						continue
					}
					if integer && c[i] != want[i] {
						t.Fatalf("%s kb=%d integer data: c[%d] = %v, want %v", s.Name, kb, i, c[i], want[i])
					}
					if d := math.Abs(float64(c[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s kb=%d: c[%d] = %v, want %v", s.Name, kb, i, c[i], want[i])
					}
				}
			}
		}
	}
}

// e4m3Pairs returns n random bfloat16 pairs of E4M3 values (NaN codes
// excluded), with the codes.
func e4m3Pairs(r *rand.Rand, n int, smallInts bool) []uint32 {
	p := make([]uint32, n)
	code := func() byte {
		for {
			c := byte(r.Uint32())
			if smallInts {
				c = []byte{0x00, 0x80, 0x38, 0xB8, 0x40, 0xC0, 0x44, 0xC4, 0x48}[r.IntN(9)] // 0, ±1, ±2, ±3, 4
			}
			if c&0x7F != 0x7F {
				return c
			}
		}
	}
	for i := range p {
		p[i] = uint32(BF16Table[code()]) | uint32(BF16Table[code()])<<16
	}
	return p
}

func TestBF16Kernels(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, s := range others(t) {
		if s.BF16 == nil {
			continue
		}
		mr, nr := s.BMR, s.BNR
		ref := BF16Go(mr, nr)
		for _, ints := range []bool{true, false} {
			for _, kb := range []int{1, 2, 5} {
				a := e4m3Pairs(r, kb*Block/2*mr, ints)
				b := e4m3Pairs(r, kb*Block/2*nr, ints)
				sa := randSlice(r, kb*mr, ints)
				sb := randSlice(r, kb*nr, ints)
				ldc := nr + 3
				c := randSlice(r, mr*ldc, ints)
				want := append([]float32(nil), c...)
				s.BF16(kb, a, b, sa, sb, c, ldc)
				ref(kb, a, b, sa, sb, want, ldc)
				var scale float64
				for _, v := range want {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				for i := range want {
					if i%ldc >= nr {
						if c[i] != want[i] {
							t.Fatalf("%s: wrote outside the tile at %d", s.Name, i)
						}
						continue
					}
					if ints && c[i] != want[i] {
						t.Fatalf("%s kb=%d integer data: c[%d] = %v, want %v", s.Name, kb, i, c[i], want[i])
					}
					// The summation order inside VDPBF16PS is the
					// hardware's: allow float32 rounding relative to the
					// tile's magnitude.
					if d := math.Abs(float64(c[i] - want[i])); d > 1e-6*scale {
						t.Fatalf("%s kb=%d: c[%d] = %v, want %v (tile max %g)", s.Name, kb, i, c[i], want[i], scale)
					}
				}
			}
		}
	}
}

func TestGemvKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, s := range others(t) {
		if s.Gemv == nil {
			continue
		}
		for m := 1; m <= GemvRows; m++ {
			for _, kb := range []int{1, 4} {
				const rows = 7 // multi-row kernels plus a remainder
				ldw := kb*Block + 7
				codes := make([]byte, rows*ldw)
				for i := range codes {
					if codes[i] = byte(r.Uint32()); codes[i]&0x7F == 0x7F {
						codes[i] = 0x80 // -0
					}
				}
				ldx := kb*Block + 9
				x := randSlice(r, m*ldx, false)
				f := randSlice(r, kb*m, false)
				y0 := randSlice(r, rows*m+1, false)
				got, want := append([]float32(nil), y0...), append([]float32(nil), y0...)
				s.Gemv(m, rows, kb, codes, ldw, x, ldx, f, got)
				gemvGo(m, rows, kb, codes, ldw, x, ldx, f, want)
				for i := 0; i < rows*m; i++ {
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s m=%d kb=%d: y[%d] = %v, want %v", s.Name, m, kb, i, got[i], want[i])
					}
				}
				if got[rows*m] != y0[rows*m] {
					t.Fatalf("%s m=%d: wrote past y", s.Name, m)
				}
				// A NaN code poisons exactly its row's outputs.
				codes[ldw+5] = 0x7F
				s.Gemv(m, rows, kb, codes, ldw, x, ldx, f, got)
				for i := 0; i < rows*m; i++ {
					if nan := got[i] != got[i]; nan != (i/m == 1) {
						t.Fatalf("%s m=%d: a NaN weight code in row 1 gave y[%d] = %v", s.Name, m, i, got[i])
					}
				}
			}
		}
	}
}

func TestEncodeSetsMidpoints(t *testing.T) {
	// Every float32 within 64 ulp of each midpoint between adjacent E4M3
	// values, of both signs, plus the specials.
	var src []float32
	for c := 0; c < 0x7E; c++ {
		mid := (E4M3Table[c] + E4M3Table[c+1]) / 2
		for d := -64; d <= 64; d++ {
			f := math.Float32frombits(uint32(int64(math.Float32bits(mid)) + int64(d)))
			src = append(src, f, -f)
		}
	}
	src = append(src, 0, float32(math.Copysign(0, -1)), 448, 464, 465, 1e38, float32(math.Inf(-1)), float32(math.NaN()), 1e-45, -1e-40)
	for _, s := range others(t) {
		got, want := make([]byte, len(src)), make([]byte, len(src))
		s.EncodeScaled(got, src, 1)
		encodeScaledGo(want, src, 1)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: %g (%#08x) -> %#02x, want %#02x", s.Name, src[i], math.Float32bits(src[i]), got[i], want[i])
			}
		}
	}
}

func TestAmaxSets(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, s := range others(t) {
		for _, n := range []int{0, 1, 15, 16, 17, 128, 1000} {
			x := randSlice(r, n, false)
			for _, special := range []float32{0, float32(math.Inf(-1)), float32(math.NaN()), -1e30} {
				if n > 0 && special != 0 {
					x[r.IntN(n)] = special
				}
				got, want := s.Amax(x), amax(x)
				if !sameBits(got, want) {
					t.Fatalf("%s n=%d: amax %v, want %v", s.Name, n, got, want)
				}
			}
		}
	}
}

func TestPackSets(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	const ldw = 300
	codes := make([]byte, 16*ldw)
	for i := range codes {
		codes[i] = byte(r.Uint32()) // every code, NaN included
	}
	for _, s := range others(t) {
		for _, ldd := range []int{12, 16, 32, 37} {
			for rows := 1; rows <= 16 && rows <= ldd; rows++ {
				gotF := randSlice(r, Block*ldd, false)
				wantF := append([]float32(nil), gotF...)
				s.PackF32(gotF, ldd, codes[3:], ldw, rows)
				packF32Go(wantF, ldd, codes[3:], ldw, rows)
				for i := range wantF {
					if !sameBits(gotF[i], wantF[i]) {
						t.Fatalf("%s PackF32 ldd=%d rows=%d: [%d] = %v, want %v", s.Name, ldd, rows, i, gotF[i], wantF[i])
					}
				}
				gotP := make([]uint32, Block/2*ldd)
				for i := range gotP {
					gotP[i] = r.Uint32()
				}
				wantP := append([]uint32(nil), gotP...)
				s.PackPairs(gotP, ldd, codes[5:], ldw, rows)
				packPairsGo(wantP, ldd, codes[5:], ldw, rows)
				for i := range wantP {
					if gotP[i] != wantP[i] {
						t.Fatalf("%s PackPairs ldd=%d rows=%d: [%d] = %#08x, want %#08x", s.Name, ldd, rows, i, gotP[i], wantP[i])
					}
				}
			}
		}
	}
}
