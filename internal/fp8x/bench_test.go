package fp8x

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/dsv3go/dsv3/internal/gemm"
)

// benchShapes are the brief's shapes: y[M,N] = A[M,K]·Wᵀ.
var benchShapes = []struct{ m, n, k int }{
	{2048, 2048, 2048},
	{512, 2048, 7168},
}

var benchWorkers = 2

func BenchmarkGemm(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range benchShapes {
		m, n, k := sh.m, sh.n, sh.k
		a, af := quantized(r, m, k, 1, false)
		w, wf := quantized(r, n, k, Block, false)
		c := make([]float32, m*n)
		flops := 2 * float64(m) * float64(n) * float64(k)
		report := func(b *testing.B, weightBytes float64) {
			s := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(flops/s/1e9, "GFLOP/s")
			b.ReportMetric(weightBytes/s/1e9, "GB/s")
		}
		name := fmt.Sprintf("M%d_N%d_K%d", m, n, k)
		b.Run(name+"/sgemm-f32", func(b *testing.B) {
			for b.Loop() {
				gemm.Sgemm(false, true, m, n, k, af, k, wf, k, c, n, false, benchWorkers)
			}
			report(b, 4*float64(n*k))
		})
		for _, s := range Sets {
			if s == GoSet {
				continue
			}
			b.Run(name+"/fp8-"+s.Name, func(b *testing.B) {
				for b.Loop() {
					s.GemmQ(m, n, k, a, w, c, n, false, benchWorkers)
				}
				report(b, float64(n*k))
			})
			b.Run(name+"/weightonly-"+s.Name, func(b *testing.B) {
				for b.Loop() {
					s.GemmW(m, n, k, af, k, w, c, n, false, benchWorkers)
				}
				report(b, float64(n*k))
			})
		}
	}
}

func BenchmarkGemv(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, k = 18432, 7168
	w, wf := quantized(r, n, k, Block, false)
	for _, m := range []int{1, 4, 8} {
		a, af := quantized(r, m, k, 1, false)
		c := make([]float32, m*n)
		report := func(b *testing.B, weightBytes float64) {
			s := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(2*float64(m)*n*k/s/1e9, "GFLOP/s")
			b.ReportMetric(weightBytes/s/1e9, "GB/s")
		}
		name := fmt.Sprintf("M%d_N%d_K%d", m, n, k)
		b.Run(name+"/sgemm-f32", func(b *testing.B) {
			for b.Loop() {
				gemm.Sgemm(false, true, m, n, k, af, k, wf, k, c, n, false, benchWorkers)
			}
			report(b, 4*n*k)
		})
		for _, s := range Sets {
			if s == GoSet {
				continue
			}
			b.Run(name+"/fp8-"+s.Name, func(b *testing.B) {
				for b.Loop() {
					s.GemmQ(m, n, k, a, w, c, n, false, benchWorkers)
				}
				report(b, n*k)
			})
			b.Run(name+"/weightonly-"+s.Name, func(b *testing.B) {
				for b.Loop() {
					s.GemmW(m, n, k, af, k, w, c, n, false, benchWorkers)
				}
				report(b, n*k)
			})
		}
	}
}

func init() {
	if w := os.Getenv("FP8_BENCH_WORKERS"); w != "" {
		benchWorkers, _ = strconv.Atoi(w)
	}
}
