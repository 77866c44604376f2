package moe

import (
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/fp8"
	"github.com/dsv3go/dsv3/internal/gemm"
	"github.com/dsv3go/dsv3/internal/parallel"
	"github.com/dsv3go/dsv3/router"
)

// benchConfig is a DeepSeek-V3-shaped layer at reduced width: hidden 2048,
// 64 routed experts of width 512 in 8 groups (4 kept), top-6, 1 shared.
var benchConfig = Config{Hidden: 2048, Intermediate: 512, SharedExperts: 1, Router: router.Config{Hidden: 2048, Experts: 64, TopK: 6,
	Groups: 8, TopKGroups: 4, TopKMethod: router.NoAuxTC, ScoringFunc: router.Sigmoid, NormTopKProb: true, RoutedScalingFactor: 2.5}}

const benchTokens = 2048

// flopsPerToken is the forward's multiply-adds ×2: the router GEMM and
// three GEMMs for each of the K routed experts and the shared expert.
func flopsPerToken(c Config) float64 {
	return 2*float64(c.Router.Experts*c.Hidden) + 6*float64(c.Hidden*c.Intermediate)*float64(c.Router.TopK+c.SharedExperts)
}

func benchMoE(b *testing.B, mode Mode, quant bool) (*MoE, dsv3.Matrix) {
	rng := rand.New(rand.NewPCG(1, 1))
	m := randomMoE(rng, benchConfig, mode)
	if quant {
		for _, f := range m.Experts {
			for _, l := range []*dsv3.Linear{f.Gate, f.Up, f.Down} {
				q, err := fp8.QuantizeWeight(l.W.(dsv3.Matrix), fp8.ScaleF32)
				if err != nil {
					b.Fatal(err)
				}
				l.W = q
			}
		}
	}
	return m, randInput(rng, benchTokens, benchConfig.Hidden)
}

// startCPU resets the timer and returns the CPU time so far; pass it to
// reportTokens.
func startCPU(b *testing.B) float64 {
	b.ResetTimer()
	return cpuSeconds()
}

// reportTokens reports tokens/s and GFLOP/s over wall time, and the CPU
// seconds per op and GFLOP per CPU-second, which stay meaningful when other
// processes share the cores.
func reportTokens(b *testing.B, passes, cpu0 float64) {
	sec := b.Elapsed().Seconds()
	flop := passes * flopsPerToken(benchConfig) * float64(benchTokens*b.N)
	b.ReportMetric(float64(benchTokens*b.N)/sec, "tokens/s")
	b.ReportMetric(flop/sec/1e9, "GFLOP/s")
	if cpu := cpuSeconds() - cpu0; cpu0 > 0 && cpu > 0 {
		b.ReportMetric(cpu/float64(b.N), "cpu-s/op")
		b.ReportMetric(flop/cpu/1e9, "GFLOP/cpu-s")
	}
}

// BenchmarkForward: inference forward of 2048 tokens, float32 experts.
func BenchmarkForward(b *testing.B) {
	m, x := benchMoE(b, Float32, false)
	cpu0 := startCPU(b)
	for range b.N {
		if _, _, err := m.Apply(x, false); err != nil {
			b.Fatal(err)
		}
	}
	reportTokens(b, 1, cpu0)
}

// BenchmarkForwardFP8: the same with FP8 block-quantised expert weights
// (weight-only product: float32 activations).
func BenchmarkForwardFP8(b *testing.B) {
	m, x := benchMoE(b, Float32, true)
	cpu0 := startCPU(b)
	for range b.N {
		if _, _, err := m.Apply(x, false); err != nil {
			b.Fatal(err)
		}
	}
	reportTokens(b, 1, cpu0)
}

// BenchmarkForwardBackward: training forward and backward (float32), with
// GFLOP/s counted as 3× the forward's.
func BenchmarkForwardBackward(b *testing.B) {
	m, x := benchMoE(b, Training, false)
	dy := randMatrix(rand.New(rand.NewPCG(2, 2)), benchTokens, benchConfig.Hidden, 1)
	cpu0 := startCPU(b)
	for range b.N {
		_, rec, err := m.Apply(x, true)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.ApplyBackward(rec, dy); err != nil {
			b.Fatal(err)
		}
	}
	reportTokens(b, 3, cpu0)
}

// gemmsOnly runs the forward's GEMMs alone, with the layer's shapes,
// expert loads and schedule: what Forward would cost if everything outside
// the GEMMs were free.
func gemmsOnly(b *testing.B, quant bool) {
	m, x := benchMoE(b, Float32, quant)
	rt, _, err := m.Gate.Forward(x, false)
	if err != nil {
		b.Fatal(err)
	}
	c := benchConfig
	H, I, T, E := c.Hidden, c.Intermediate, benchTokens, c.Router.Experts
	W := parallel.Workers(0)
	rows := func(e int) int { return int(rt.Load[e]) }
	in := make([]dsv3.Matrix, E)
	gate, up, out := make([]dsv3.Matrix, E), make([]dsv3.Matrix, E), make([]dsv3.Matrix, E)
	order := []int{}
	for e := range E {
		in[e], gate[e], up[e], out[e] = dsv3.NewMatrix(rows(e), H), dsv3.NewMatrix(rows(e), I), dsv3.NewMatrix(rows(e), I), dsv3.NewMatrix(rows(e), H)
		if rows(e) > 0 {
			order = append(order, e)
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return rows(order[i]) > rows(order[j]) })
	gw := m.Gate.W.(dsv3.Matrix)
	sh := m.Shared
	sx, sg, su, sy, sc := dsv3.NewMatrix(T, H), dsv3.NewMatrix(T, I), dsv3.NewMatrix(T, I), dsv3.NewMatrix(T, H), dsv3.NewMatrix(T, E)
	run := func(e, w int) {
		f := m.Experts[e]
		project(f.Gate, gate[e], in[e], false, false, w)
		project(f.Up, up[e], in[e], false, false, w)
		project(f.Down, out[e], gate[e], false, false, w)
	}
	cpu0 := startCPU(b)
	for range b.N {
		gemm.Sgemm(false, true, T, E, H, x.Data, x.Stride, gw.Data, gw.Stride, sc.Data, sc.Stride, false, W)
		project(sh.Gate, sg, sx, false, false, W)
		project(sh.Up, su, sx, false, false, W)
		project(sh.Down, sy, sg, false, false, W)
		remaining, i := T*c.Router.TopK, 0
		for ; i < len(order) && W > 1 && rows(order[i])*W > remaining; i++ {
			run(order[i], W)
			remaining -= rows(order[i])
		}
		rest := order[i:]
		parallel.Dynamic(len(rest), W, func(j int) { run(rest[j], 1) })
	}
	reportTokens(b, 1, cpu0)
}

// BenchmarkForwardGEMMsOnly and BenchmarkForwardFP8GEMMsOnly: the
// forward's GEMMs alone (float32 and FP8 expert weights).
func BenchmarkForwardGEMMsOnly(b *testing.B)    { gemmsOnly(b, false) }
func BenchmarkForwardFP8GEMMsOnly(b *testing.B) { gemmsOnly(b, true) }

// BenchmarkSgemm2048 is the library GEMM on a square 2048 problem, the
// reference for the layer's GEMM efficiency.
func BenchmarkSgemm2048(b *testing.B) {
	const n = 2048
	rng := rand.New(rand.NewPCG(3, 3))
	a, w, c := randMatrix(rng, n, n, 1), randMatrix(rng, n, n, 1), dsv3.NewMatrix(n, n)
	cpu0 := startCPU(b)
	for range b.N {
		gemm.Sgemm(false, true, n, n, n, a.Data, a.Stride, w.Data, w.Stride, c.Data, c.Stride, false, 0)
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := cpuSeconds() - cpu0; cpu0 > 0 && cpu > 0 {
		b.ReportMetric(2*n*n*n*float64(b.N)/cpu/1e9, "GFLOP/cpu-s")
	}
}
