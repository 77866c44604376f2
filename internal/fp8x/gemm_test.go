package fp8x

import (
	"math"
	"math/rand/v2"
	"testing"
)

// quantized returns a random rows×k matrix quantised with group g (1 for
// 1x128 tiles, 128 for 128x128 blocks) plus its float32 source.
func quantized(r *rand.Rand, rows, k, g int, edge bool) (*Q, []float32) {
	x := make([]float32, rows*k)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Pow(3, float64(r.IntN(5)-2)))
	}
	q := &Q{Codes: make([]byte, rows*k), Stride: k, ScaleStride: Blocks(k), Group: g}
	q.Scales = make([]float32, Blocks(rows)*Blocks(k))
	if g == 1 {
		q.Scales = make([]float32, rows*Blocks(k))
		QuantizeRows(rows, k, x, k, q.Codes, k, q.Scales, Blocks(k), false)
	} else {
		QuantizeBlocks(rows, k, x, k, q.Codes, k, q.Scales, Blocks(k), false)
	}
	if edge {
		// Signed zeros, subnormal codes and saturated codes.
		for i := range q.Codes {
			switch r.IntN(8) {
			case 0:
				q.Codes[i] = 0x80
			case 1:
				q.Codes[i] = byte(r.IntN(8)) | byte(r.IntN(2))<<7
			case 2:
				q.Codes[i] = 0x7E | byte(r.IntN(2))<<7
			}
		}
	}
	return q, x
}

func maxRel(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		num = math.Max(num, math.Abs(float64(got[i]-want[i])))
		den = math.Max(den, math.Abs(float64(want[i])))
	}
	if den == 0 {
		return num
	}
	return num / den
}

var sizes = [][3]int{{1, 1, 1}, {1, 70, 300}, {3, 129, 128}, {8, 200, 256}, {9, 31, 129}, {12, 32, 128}, {13, 33, 385}, {40, 300, 256}, {100, 130, 513}}

func TestGemmSetsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	sz := sizes
	if raceEnabled || testing.Short() {
		sz = sz[:6]
	}
	for _, sz := range sz {
		m, n, k := sz[0], sz[1], sz[2]
		for _, edge := range []bool{false, true} {
			a, af := quantized(r, m, k, 1, edge)
			b, _ := quantized(r, n, k, Block, edge)
			bt, _ := quantized(r, n, k, 1, edge) // 1x128 tiles on both sides (Wgrad)
			ldc := n + 3
			for _, s := range others(t) {
				for _, blocked := range []bool{false, true} {
					for _, c := range []struct {
						name string
						run  func(s *Set, y []float32)
					}{
						{"GemmQ", func(s *Set, y []float32) {
							if blocked {
								s.GemmBlocked(m, n, k, nil, 0, a, b, y, ldc, true, 2)
							} else {
								s.GemmQ(m, n, k, a, b, y, ldc, true, 2)
							}
						}},
						{"GemmQ 1x128 B", func(s *Set, y []float32) {
							if blocked {
								s.GemmBlocked(m, n, k, nil, 0, a, bt, y, ldc, true, 2)
							} else {
								s.GemmQ(m, n, k, a, bt, y, ldc, true, 2)
							}
						}},
						{"GemmW", func(s *Set, y []float32) {
							if blocked {
								s.GemmBlocked(m, n, k, af, k, nil, b, y, ldc, true, 2)
							} else {
								s.GemmW(m, n, k, af, k, b, y, ldc, true, 2)
							}
						}},
					} {
						init := randSlice(r, m*ldc, false)
						got := append([]float32(nil), init...)
						want := append([]float32(nil), init...)
						c.run(s, got)
						c.run(GoSet, want)
						if e := maxRel(got, want); !(e < 1e-5) {
							t.Errorf("%s %s %dx%dx%d edge=%v blocked=%v: relative difference %.3g from Go", s.Name, c.name, m, n, k, edge, blocked, e)
						}
						for i := 0; i < m; i++ {
							for j := n; j < ldc; j++ {
								if got[i*ldc+j] != init[i*ldc+j] {
									t.Fatalf("%s %s: wrote outside C at (%d, %d)", s.Name, c.name, i, j)
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestGemmNaNPropagates(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	m, n, k := 20, 70, 300
	a, _ := quantized(r, m, k, 1, false)
	b, _ := quantized(r, n, k, Block, false)
	b.Codes[5*k+200] = 0xFF // weight row 5 has a NaN
	a.Codes[3*k+7] = 0x7F   // activation row 3 has a NaN
	for _, s := range Sets {
		for _, mm := range []int{m, 4} {
			y := make([]float32, mm*n)
			s.GemmQ(mm, n, k, a, b, y, n, false, 2)
			for i := 0; i < mm; i++ {
				for j := 0; j < n; j++ {
					nan := y[i*n+j] != y[i*n+j]
					if nan != (i == 3 || j == 5) {
						t.Fatalf("%s m=%d: y(%d, %d) = %v", s.Name, mm, i, j, y[i*n+j])
					}
				}
			}
		}
	}
}

// TestGemmExact checks the bfloat16 and float32 paths bit for bit where
// every sum is exact: codes of small integers and power-of-two scales.
func TestGemmExact(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	m, n, k := 30, 64, 384
	mk := func(rows, g int) *Q {
		q := &Q{Codes: make([]byte, rows*k), Stride: k, ScaleStride: Blocks(k), Group: g, Scales: make([]float32, (rows+g-1)/g*Blocks(k))}
		for i := range q.Codes {
			q.Codes[i] = []byte{0x00, 0x80, 0x38, 0xB8, 0x40, 0xC0, 0x44, 0xC4}[r.IntN(8)]
		}
		for i := range q.Scales {
			q.Scales[i] = float32(math.Ldexp(1, r.IntN(6)-3))
		}
		return q
	}
	a, b := mk(m, 1), mk(n, Block)
	want := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for kk := 0; kk < k; kk++ {
				s += float64(E4M3Table[a.Codes[i*k+kk]]*E4M3Table[b.Codes[j*k+kk]]) * float64(a.scale(i, kk/Block)*b.scale(j, kk/Block))
			}
			want[i*n+j] = float32(s)
		}
	}
	for _, s := range Sets {
		got := make([]float32, m*n)
		s.GemmQ(m, n, k, a, b, got, n, false, 2)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: y[%d] = %v, want exactly %v", s.Name, i, got[i], want[i])
			}
		}
	}
}
