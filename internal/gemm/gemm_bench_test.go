package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// benchShapes are the shapes the issue compares: squares (NN, as the
// OpenBLAS peer runs them) and a DeepSeek-V3-sized linear forward, Y = X·Wᵀ
// with 128 tokens, hidden 7168 and 2048 outputs (NT).
var benchShapes = []struct {
	name           string
	m, n, k        int
	transA, transB bool
}{
	{"512", 512, 512, 512, false, false},
	{"1024", 1024, 1024, 1024, false, false},
	{"2048", 2048, 2048, 2048, false, false},
	{"M128_K7168_N2048_NT", 128, 2048, 7168, false, true},
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = rng.Float32() - 0.5
	}
	return s
}

// BenchmarkSgemm reports GFLOP/s (2·M·N·K per call, wall clock) for our
// kernel with one and two workers and for gonum's blas32.Gemm in the same
// run. It also reports GFLOP/cpu-s, the rate per second of CPU time the
// process used: with one worker it is the single-core rate with time stolen
// by other processes left out (the machine this was tuned on was shared),
// with more workers it is the rate per busy core.
func BenchmarkSgemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range benchShapes {
		m, n, k := sh.m, sh.n, sh.k
		a := randSlice(rng, m*k)
		bm := randSlice(rng, k*n)
		c := make([]float32, m*n)
		lda, ldb := k, n
		if sh.transA {
			lda = m
		}
		if sh.transB {
			ldb = k
		}
		flops := 2 * float64(m) * float64(n) * float64(k)
		var cpu0 float64
		start := func() { cpu0, _ = processCPU() }
		report := func(b *testing.B) {
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			if cpu1, ok := processCPU(); ok && cpu1 > cpu0 {
				b.ReportMetric(flops*float64(b.N)/(cpu1-cpu0)/1e9, "GFLOP/cpu-s")
			}
		}
		for _, w := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/%s/workers=%d", sh.name, active.name, w), func(b *testing.B) {
				start()
				for b.Loop() {
					Sgemm(sh.transA, sh.transB, m, n, k, a, lda, bm, ldb, c, n, false, w)
				}
				report(b)
			})
		}
		b.Run(sh.name+"/gonum", func(b *testing.B) {
			ta, tb := blas.NoTrans, blas.NoTrans
			ar, ac, br, bc := m, k, k, n
			if sh.transA {
				ta, ar, ac = blas.Trans, k, m
			}
			if sh.transB {
				tb, br, bc = blas.Trans, n, k
			}
			ga := blas32.General{Rows: ar, Cols: ac, Stride: lda, Data: a}
			gb := blas32.General{Rows: br, Cols: bc, Stride: ldb, Data: bm}
			gc := blas32.General{Rows: m, Cols: n, Stride: n, Data: c}
			start()
			for b.Loop() {
				blas32.Gemm(ta, tb, 1, ga, gb, 0, gc)
			}
			report(b)
		})
	}
}

// BenchmarkSgemv reports GFLOP/s and the weight stream in GB/s for one
// decoded token through a linear layer (M=1, Y = x·Wᵀ, W 2048×7168 = 58 MB,
// larger than L3, so it is memory-bound), and the same shape stored K×N.
func BenchmarkSgemv(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	const n, k = 2048, 7168
	x := randSlice(rng, k)
	w := randSlice(rng, n*k)
	y := make([]float32, n)
	for _, f := range []struct {
		name   string
		transB bool
		ldb    int
	}{{"NT", true, k}, {"NN", false, n}} {
		for _, wk := range []int{1, 2} {
			b.Run(fmt.Sprintf("M1_K7168_N2048_%s/%s/workers=%d", f.name, active.name, wk), func(b *testing.B) {
				for b.Loop() {
					Sgemm(false, f.transB, 1, n, k, x, k, w, f.ldb, y, n, false, wk)
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(2*n*k/sec/1e9, "GFLOP/s")
				b.ReportMetric(4*n*k/sec/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkMicroKernel measures each set's full register tile on packed
// panels that sit in cache: the ceiling the blocked driver can approach.
func BenchmarkMicroKernel(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, ks := range kernelSets {
		k := ks.kc
		a := randSlice(rng, ks.mr*k)
		bp := randSlice(rng, ks.nr*k)
		c := make([]float32, ks.mr*ks.nr)
		kern := ks.micro[ks.mr]
		b.Run(fmt.Sprintf("%s/%dx%d/k=%d", ks.name, ks.mr, ks.nr, k), func(b *testing.B) {
			for b.Loop() {
				kern(k, &a[0], &bp[0], &c[0], ks.nr, 1)
			}
			b.ReportMetric(2*float64(ks.mr*ks.nr*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSgemmForms times the three training products on a small
// DeepSeek-V3-style layer (2048 tokens = 8 sequences of 256, hidden 256,
// 512 outputs): forward Y = X·Wᵀ (NT), input gradient dX = dY·W (NN) and
// weight gradient dW += dYᵀ·X (TN).
func BenchmarkSgemmForms(b *testing.B) {
	const tokens, in, out = 2048, 256, 512
	rng := rand.New(rand.NewPCG(4, 4))
	x, w, dy := randSlice(rng, tokens*in), randSlice(rng, out*in), randSlice(rng, tokens*out)
	y, dx, dw := make([]float32, tokens*out), make([]float32, tokens*in), make([]float32, out*in)
	flops := 2 * float64(tokens*in*out)
	for _, f := range []struct {
		name string
		run  func(workers int)
	}{
		{"forward_NT", func(wk int) { Sgemm(false, true, tokens, out, in, x, in, w, in, y, out, false, wk) }},
		{"input_grad_NN", func(wk int) { Sgemm(false, false, tokens, in, out, dy, out, w, in, dx, in, false, wk) }},
		{"weight_grad_TN", func(wk int) { Sgemm(true, false, out, in, tokens, dy, out, x, in, dw, in, true, wk) }},
	} {
		for _, wk := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/%s/workers=%d", f.name, active.name, wk), func(b *testing.B) {
				cpu0, _ := processCPU()
				for b.Loop() {
					f.run(wk)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				if cpu1, ok := processCPU(); ok && cpu1 > cpu0 {
					b.ReportMetric(flops*float64(b.N)/(cpu1-cpu0)/1e9, "GFLOP/cpu-s")
				}
			})
		}
	}
}

// BenchmarkSgemmSmallM times the forward product Y = X·Wᵀ for a handful of
// tokens (m = 2..8, as each routed expert sees in DeepSeek-V3 MoE prefill)
// through the small-M path and through the blocked driver (which packs all
// of W on every call), with an expert-sized weight (W 704×2048 = 5.8 MB)
// and a dense-layer-sized one (2048×7168 = 58 MB). It reports GFLOP/s and
// the weight stream in GB/s.
func BenchmarkSgemmSmallM(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, sh := range []struct{ n, k int }{{704, 2048}, {2048, 7168}} {
		n, k := sh.n, sh.k
		w := randSlice(rng, n*k)
		x := randSlice(rng, 8*k)
		y := make([]float32, 8*n)
		for _, m := range []int{2, 4, 6, 8} {
			for _, path := range []string{"small", "blocked"} {
				for _, wk := range []int{1, 2} {
					b.Run(fmt.Sprintf("M%d_K%d_N%d/%s/%s/workers=%d", m, k, n, active.name, path, wk), func(b *testing.B) {
						forceBlocked = path == "blocked"
						defer func() { forceBlocked = false }()
						for b.Loop() {
							Sgemm(false, true, m, n, k, x, k, w, k, y, n, false, wk)
						}
						sec := b.Elapsed().Seconds() / float64(b.N)
						b.ReportMetric(2*float64(m*n*k)/sec/1e9, "GFLOP/s")
						b.ReportMetric(4*float64(n*k)/sec/1e9, "GB/s")
					})
				}
			}
		}
	}
}
