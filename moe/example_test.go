package moe_test

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/moe"
	"github.com/dsv3go/dsv3/router"
)

// A small DeepSeekMoE layer: 4 routed experts (top-2) and 1 shared expert
// on 2 features. Expert e computes (e+1)·silu(x)⊙x and the shared expert
// silu(x)⊙x, so each output row is (1 + Σ g·(e+1))·silu(x)⊙x.
func Example() {
	m, err := moe.New(moe.Config{
		Hidden: 2, Intermediate: 2, SharedExperts: 1,
		Router: router.Config{Hidden: 2, Experts: 4, TopK: 2, Groups: 2, TopKGroups: 1,
			TopKMethod: "noaux_tc", ScoringFunc: "sigmoid", NormTopKProb: true, RoutedScalingFactor: 1},
	}, moe.Options{Mode: moe.Float32})
	if err != nil {
		panic(err)
	}
	eye := func(m dsv3.Matrix, c float32) { m.Set(0, 0, c); m.Set(1, 1, c) }
	for e := range 4 { // expert e scores x0·(e-1.5)
		m.Gate.W.(dsv3.Matrix).Set(e, 0, float32(e)-1.5)
	}
	for e, f := range m.Experts {
		eye(f.Gate.W.(dsv3.Matrix), 1)
		eye(f.Up.W.(dsv3.Matrix), 1)
		eye(f.Down.W.(dsv3.Matrix), float32(e+1))
	}
	for _, l := range []*dsv3.Linear{m.Shared.Gate, m.Shared.Up, m.Shared.Down} {
		eye(l.W.(dsv3.Matrix), 1)
	}
	x, _ := dsv3.MatrixFrom(2, 2, []float32{
		2, 1, // favours experts 2 and 3
		-2, 1, // favours experts 0 and 1
	})
	y, rec, err := m.Apply(x, true)
	if err != nil {
		panic(err)
	}
	rt := moe.Routing(rec)
	for t := range 2 {
		ids, g := rt.Token(t)
		fmt.Printf("token %d: experts %v gates [%.3f %.3f] output [%.4f %.4f]\n", t, ids, g[0], g[1], y.At(t, 0), y.At(t, 1))
	}
	// Output:
	// token 0: experts [3 2] gates [0.566 0.434] output [16.0861 3.3379]
	// token 1: experts [0 1] gates [0.566 0.434] output [1.1607 1.7796]
}
