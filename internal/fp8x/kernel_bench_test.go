package fp8x

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkKernels times the micro-kernels alone on cache-resident panels
// (one goroutine): the ceiling of the blocked GEMM.
func BenchmarkKernels(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const kb = 4
	for _, s := range Sets {
		if s == GoSet {
			continue
		}
		mr, nr := s.MR, s.NR
		a := randSlice(r, kb*Block*mr, false)
		bb := randSlice(r, kb*Block*nr, false)
		sa, sb := randSlice(r, kb*mr, false), randSlice(r, kb*nr, false)
		c := make([]float32, mr*nr)
		b.Run("fma-"+s.Name, func(b *testing.B) {
			for b.Loop() {
				s.FMA(kb, a, bb, sa, sb, c, nr)
			}
			b.ReportMetric(2*float64(mr*nr*kb*Block)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		if s.BF16 != nil {
			mr, nr := s.BMR, s.BNR
			a := e4m3Pairs(r, kb*Block/2*mr, false)
			bb := e4m3Pairs(r, kb*Block/2*nr, false)
			for _, ldc := range []int{nr, 2048} {
				c := make([]float32, mr*ldc)
				b.Run(fmt.Sprintf("bf16-%s/ldc%d", s.Name, ldc), func(b *testing.B) {
					for b.Loop() {
						s.BF16(kb, a, bb, sa, sb, c, ldc)
					}
					b.ReportMetric(2*float64(mr*nr*kb*Block)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// BenchmarkGemvKernel times the GEMV kernel on one cache-resident weight
// row of 7168 codes (one goroutine): the decode-and-FMA ceiling.
func BenchmarkGemvKernel(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	const kb = 56
	codes := make([]byte, kb*Block)
	for i := range codes {
		codes[i] = byte(r.Uint32()) & 0x7E
	}
	for _, s := range Sets {
		if s.Gemv == nil {
			continue
		}
		for _, m := range []int{1, 4, 8} {
			x := randSlice(r, m*kb*Block, false)
			f := randSlice(r, kb*m, false)
			y := make([]float32, m)
			b.Run(s.Name+"/M"+string(rune('0'+m)), func(b *testing.B) {
				for b.Loop() {
					s.Gemv(m, 1, kb, codes, kb*Block, x, kb*Block, f, y)
				}
				b.ReportMetric(float64(len(codes))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gcodes/s")
			})
		}
	}
}
