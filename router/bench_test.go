package router

import (
	"math/rand/v2"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/gemm"
)

// v3Config is DeepSeek-V3's router shape.
var v3Config = Config{Hidden: 7168, Experts: 256, TopK: 8, Groups: 8, TopKGroups: 4, TopKMethod: NoAuxTC, ScoringFunc: Sigmoid, NormTopKProb: true, RoutedScalingFactor: 2.5}

// BenchmarkForwardV3 routes 4096 tokens with DeepSeek-V3's router shape
// (256 experts, 8 groups, 4 kept, top-8, hidden 7168). The score GEMM is
// 15 GFLOP of the work.
func BenchmarkForwardV3(b *testing.B) {
	benchForward(b, v3Config, 4096)
}

// BenchmarkSelectV3 is the part of Forward after the score GEMM: sigmoid,
// group scores, top-k and weights for 4096 tokens.
func BenchmarkSelectV3(b *testing.B) {
	c := v3Config
	const T = 4096
	rng := rand.New(rand.NewPCG(1, 1))
	logits := randMatrix(rng, T, c.Experts, 1)
	bias := randMatrix(rng, 1, c.Experts, 0.1).Row(0)
	s := dsv3.NewMatrix(T, c.Experts)
	ids := make([]int32, T*c.TopK)
	w := make([]float32, T*c.TopK)
	b.ResetTimer()
	for range b.N {
		s.CopyFrom(logits)
		sc := newScratch(c)
		for t := range T {
			row := s.Row(t)
			score(c.ScoringFunc, row)
			sc.choose(c, row, bias, ids[t*c.TopK:(t+1)*c.TopK])
			weigh(c, row, ids[t*c.TopK:(t+1)*c.TopK], w[t*c.TopK:(t+1)*c.TopK])
		}
	}
	b.ReportMetric(float64(T*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkScoreGEMMV3 is the score GEMM alone, for comparison.
func BenchmarkScoreGEMMV3(b *testing.B) {
	c := v3Config
	const T = 4096
	rng := rand.New(rand.NewPCG(1, 1))
	x := randMatrix(rng, T, c.Hidden, 1)
	w := randMatrix(rng, c.Experts, c.Hidden, 0.01)
	s := dsv3.NewMatrix(T, c.Experts)
	b.ResetTimer()
	for range b.N {
		gemm.Sgemm(false, true, T, c.Experts, c.Hidden, x.Data, x.Stride, w.Data, w.Stride, s.Data, s.Stride, false, 0)
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(2*float64(T)*float64(c.Experts)*float64(c.Hidden)*float64(b.N)/sec/1e9, "GFLOP/s")
	b.ReportMetric(float64(T*b.N)/sec, "tokens/s")
}

// BenchmarkForwardBackwardV3 adds Backward (two more GEMMs of the same size).
func BenchmarkForwardBackwardV3(b *testing.B) {
	c := v3Config
	const T = 4096
	rng := rand.New(rand.NewPCG(1, 1))
	r := randRouter(rng, c, true, 0.1)
	x := randMatrix(rng, T, c.Hidden, 1)
	dw := make([]float32, T*c.TopK)
	for i := range dw {
		dw[i] = float32(rng.NormFloat64())
	}
	b.ResetTimer()
	for range b.N {
		_, rec, err := r.Forward(x, true)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Backward(rec, dw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(T*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func benchForward(b *testing.B, c Config, T int) {
	rng := rand.New(rand.NewPCG(1, 1))
	r := randRouter(rng, c, false, 0.1)
	x := randMatrix(rng, T, c.Hidden, 1)
	b.ResetTimer()
	for range b.N {
		if _, _, err := r.Forward(x, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(T*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
