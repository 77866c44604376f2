package dualpipe_test

import (
	"context"
	"fmt"
	"math/rand"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/dualpipe"
)

// The DualPipe order of every rank for 4 ranks and 8 micro-batches, in the
// fixture's compact labels: F forward, B full backward, Bi input-only
// backward, W deferred weight gradient, F&B an overlapped pair;
// <direction>.<micro-batch>.
func ExampleNewDualPipe() {
	s, err := dualpipe.NewDualPipe(4, 8)
	if err != nil {
		panic(err)
	}
	for r := range s.Ranks {
		fmt.Println(r, s.Held(r), s.Labels(r))
	}
	_, err = dualpipe.NewDualPipe(4, 6)
	fmt.Println(err)
	// Output:
	// 0 [0 3] [F0.0 F0.1 F0.2 F1.0 Bi1.0 W1.0 F1.1 F0.3&B1.1 F1.2&B0.0 B1.2 F1.3&B0.1 B1.3 Bi0.2 W0.2 Bi0.3 W0.3]
	// 1 [1 2] [F0.0 F1.0 F0.1 F1.1 F0.2 B1.0 F1.2&B0.0 F0.3&B1.1 F1.3&B0.1 B1.2 B0.2 Bi1.3 Bi0.3 W1.3 W0.3]
	// 2 [2 1] [F1.0 F0.0 F1.1 F0.1 F1.2 B0.0 F0.2&B1.0 F1.3&B0.1 F0.3&B1.1 B0.2 B1.2 Bi0.3 Bi1.3 W0.3 W1.3]
	// 3 [3 0] [F1.0 F1.1 F1.2 F0.0 Bi0.0 W0.0 F0.1 F1.3&B0.1 F0.2&B1.0 B0.2 F0.3&B1.1 B0.3 Bi1.2 W1.2 Bi1.3 W1.3]
	// dualpipe: DualPipe needs N >= 2P micro-batches, got N=6 for P=4 (want >= 8)
}

// Table 2 of the report for 8 pipeline stages and 20 micro-batches with
// unit costs: the formulas next to the simulated schedules.
func ExampleCompare() {
	rows, err := dualpipe.Compare(8, 20, dualpipe.UnitCosts())
	if err != nil {
		panic(err)
	}
	for _, r := range rows {
		tl := r.Timeline
		fmt.Printf("%-9s %-18s formula %2g  simulated %2g..%2g  makespan %3g  params %d×  activations %d  devices %d\n",
			r.Variant.Title(), r.Formula, r.FormulaBubble, tl.MinBubble(), tl.MaxBubble(), tl.Makespan,
			r.ParamsPerDevice, r.PeakActivations, r.Devices)
	}
	// Output:
	// 1F1B      (PP-1)(F+B)        formula 21  simulated 21..21  makespan  81  params 1×  activations 8  devices 8
	// ZB1P      (PP-1)(F+B-2W)     formula  7  simulated  7.. 7  makespan  67  params 1×  activations 8  devices 8
	// DualPipe  (PP/2-1)(F&B+B-3W) formula  6  simulated  6.. 6  makespan  66  params 2×  activations 9  devices 8
	// DualPipeV (PP/2-1)(F&B+B-3W) formula  6  simulated  6.. 6  makespan 126  params 2×  activations 9  devices 4
}

// A two-stage linear model trained one step with DualPipe on 2 ranks: each
// rank holds both stages (one copy per direction), and after the step both
// copies of a stage hold the summed gradient.
func ExampleExecutor() {
	rng := rand.New(rand.NewSource(1))
	randM := func(r, c int) dsv3.Matrix {
		m := dsv3.NewMatrix(r, c)
		for i := range m.Data {
			m.Data[i] = float32(rng.NormFloat64())
		}
		return m
	}
	weights := []dsv3.Matrix{randM(4, 4), randM(4, 4)}
	stage := func(st int) dualpipe.Stage {
		l := dsv3.NewLinear(4, 4, true)
		l.W = weights[st].Clone()
		return dualpipe.Layers(l)
	}
	s, err := dualpipe.NewDualPipe(2, 4)
	if err != nil {
		panic(err)
	}
	e := &dualpipe.Executor{
		Schedule: s,
		Chunks:   [][]dualpipe.Stage{{stage(0), stage(1)}, {stage(1), stage(0)}},
		// The loss is the sum of the outputs: dL/dy = 1.
		Loss: func(mb int, y dsv3.Matrix) (float64, dsv3.Matrix, error) {
			var sum float64
			dy := dsv3.NewMatrix(y.Rows, y.Cols)
			for i := range y.Data {
				sum += float64(y.Data[i])
				dy.Data[i] = 1
			}
			return sum, dy, nil
		},
	}
	inputs := []dsv3.Matrix{randM(2, 4), randM(2, 4), randM(2, 4), randM(2, 4)}
	losses, err := e.Step(context.Background(), inputs)
	if err != nil {
		panic(err)
	}
	// The same model on one goroutine: y = x·W0ᵀ·W1ᵀ, loss = sum(y).
	same := true
	for mb, x := range inputs {
		h, y := dsv3.NewMatrix(2, 4), dsv3.NewMatrix(2, 4)
		dsv3.MatMulT(h, x, weights[0], false)
		dsv3.MatMulT(y, h, weights[1], false)
		var sum float64
		for _, v := range y.Data {
			sum += float64(v)
		}
		same = same && sum == losses[mb]
	}
	fmt.Printf("losses %.3f, equal to the sequential model's: %v\n", losses, same)
	g0, g1 := e.Chunks[0][0].Params()[0].Grad, e.Chunks[1][1].Params()[0].Grad
	fmt.Println("stage 0's two gradient copies equal after the step:", fmt.Sprint(g0.Data) == fmt.Sprint(g1.Data))
	// Output:
	// losses [-28.223 -4.036 9.065 -22.093], equal to the sequential model's: true
	// stage 0's two gradient copies equal after the step: true
}
