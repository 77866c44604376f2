package router_test

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/router"
)

// A router over 8 experts in 4 groups: each token may reach 2 groups and
// chooses 2 experts. The bias steers the choice; the weights come from the
// unbiased scores.
func Example() {
	r, err := router.New(router.Config{
		Hidden: 2, Experts: 8, TopK: 2, Groups: 4, TopKGroups: 2,
		TopKMethod: "noaux_tc", ScoringFunc: "sigmoid",
		NormTopKProb: true, RoutedScalingFactor: 2.5,
	}, false)
	if err != nil {
		panic(err)
	}
	w := r.W.(dsv3.Matrix)
	for e := range 8 { // expert e scores x·(e-4, 0)
		w.Set(e, 0, float32(e-4))
	}
	r.Bias.Data[1] = 3 // a large bias lifts expert 1's group and choice
	x, _ := dsv3.MatrixFrom(2, 2, []float32{
		1, 0, // favours the high experts
		-1, 0, // favours the low experts
	})
	rt, _, err := r.Forward(x, false)
	if err != nil {
		panic(err)
	}
	for t := 0; t < rt.Tokens; t++ {
		ids, g := rt.Token(t)
		fmt.Printf("token %d: experts %v weights [%.3f %.3f]\n", t, ids, g[0], g[1])
	}
	fmt.Println("load:", rt.Load, "MaxVio:", router.MaxVio(rt.Load))
	// Output:
	// token 0: experts [1 7] weights [0.119 2.381]
	// token 1: experts [1 0] weights [1.231 1.269]
	// load: [1 2 0 0 0 0 0 1] MaxVio: 3
}
