package dualpipe

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/dsv3go/dsv3"
)

// BenchmarkGenerateSimulate times building, validating and simulating the
// schedules of Table 2 at DeepSeek-V3's pipeline size (PP=16) and a long
// step (N=64); the metric is ops scheduled per second.
func BenchmarkGenerateSimulate(b *testing.B) {
	for _, v := range Variants {
		b.Run(v.String(), func(b *testing.B) {
			ranks := 16
			if v == DualPipeV {
				ranks = 8
			}
			ops := 0
			for b.Loop() {
				s, err := Generate(v, ranks, 64)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Simulate(s, UnitCosts()); err != nil {
					b.Fatal(err)
				}
				ops = 0
				for _, o := range s.Ops {
					ops += len(o)
				}
			}
			b.ReportMetric(float64(ops)*float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkStep runs one training step of an MLP (every stage d→4d→d,
// tanh) on the executor and, as the baseline, the same micro-batches one
// by one through the whole model on one goroutine. Metrics: tokens/s and
// GFLOP/s (forward 4·tokens·d·4d per stage, backward twice that).
func BenchmarkStep(b *testing.B) {
	const d, rows = 128, 64
	for _, c := range []struct {
		v        Variant
		ranks, n int
	}{{DualPipe, 4, 8}, {DualPipeV, 2, 8}, {OneFOneB, 4, 8}, {ZB1P, 4, 8}} {
		pc := &pipeCase{v: c.v, ranks: c.ranks, n: c.n, d: d, h: 4 * d, rows: rows}
		rng := rand.New(rand.NewSource(1))
		s, err := Generate(c.v, c.ranks, c.n)
		if err != nil {
			b.Fatal(err)
		}
		for range s.Stages() {
			pc.stages = append(pc.stages, mlpStage(rng, d, 4*d))
		}
		for range c.n {
			pc.inputs = append(pc.inputs, randMatrix(rng, rows, d, 1))
			pc.tgt = append(pc.tgt, randMatrix(rng, rows, d, 1))
		}
		flops := float64(s.Stages()*c.n) * 12 * rows * d * 4 * d
		tokens := float64(c.n * rows)
		report := func(b *testing.B) {
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(tokens/sec, "tokens/s")
			b.ReportMetric(flops/sec/1e9, "GFLOP/s")
		}
		name := fmt.Sprintf("%v/P=%d/N=%d", c.v, c.ranks, c.n)
		b.Run(name+"/executor", func(b *testing.B) {
			e := pc.executor(b)
			for b.Loop() {
				if _, err := e.Step(context.Background(), pc.inputs); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
		b.Run(name+"/sequential", func(b *testing.B) {
			loss := mseLoss(pc.tgt)
			model := make([]*LayerStage, len(pc.stages))
			for i, st := range pc.stages {
				model[i] = clone(st)
			}
			for b.Loop() {
				for mb, x := range pc.inputs {
					recs := make([]dsv3.Record, len(model))
					for i, st := range model {
						x, recs[i], _ = st.Forward(x)
					}
					_, dy, _ := loss(mb, x)
					for i := len(model) - 1; i >= 0; i-- {
						dy, _, _ = model[i].Backward(recs[i], dy, false)
					}
				}
			}
			report(b)
		})
	}
}
