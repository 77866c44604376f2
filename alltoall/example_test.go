package alltoall_test

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/alltoall"
	"github.com/dsv3go/dsv3/moe"
)

// Four in-process ranks in two nodes of two hold 8 experts, two each. Every
// rank dispatches two tokens with two experts each along the two-hop route
// and combines the rows it received unchanged (identity experts): each
// token comes back multiplied by the number of ranks it went to.
func Example() {
	l := alltoall.Layout{Experts: 8, Ranks: 4, RanksPerNode: 2}
	w, err := alltoall.NewWorld(l.Ranks, alltoall.WorldOptions{})
	if err != nil {
		panic(err)
	}
	lines := make([]string, l.Ranks)
	errs := w.Run(func(c alltoall.Comm) error {
		d, err := alltoall.NewDispatcher(c, l, alltoall.Options{Route: alltoall.TwoHop})
		if err != nil {
			return err
		}
		r := c.Rank()
		x, _ := dsv3.MatrixFrom(2, 1, []float32{float32(10*r + 1), float32(10*r + 2)})
		experts := []int32{
			0, 1, // token 0: both experts on rank 0
			int32(2 * r), int32(2*r+5) % 8, // token 1: experts on two ranks
		}
		b, err := d.DispatchRows(x, experts, 2, nil)
		if err != nil {
			return err
		}
		out, err := d.Combine(b, b.X)
		if err != nil {
			return err
		}
		from := make([]int, l.Ranks)
		for s := range from {
			from[s] = b.From[s+1] - b.From[s]
		}
		lines[r] = fmt.Sprintf("rank %d: rows received from each rank %v, combined tokens %v", r, from, out.Data)
		return nil
	})
	for _, err := range errs {
		if err != nil {
			panic(err)
		}
	}
	for _, s := range lines {
		fmt.Println(s)
	}
	// Output:
	// rank 0: rows received from each rank [2 1 2 1], combined tokens [1 4]
	// rank 1: rows received from each rank [0 1 0 1], combined tokens [11 24]
	// rank 2: rows received from each rank [1 0 1 0], combined tokens [21 44]
	// rank 3: rows received from each rank [0 1 0 1], combined tokens [31 64]
}

// A DeepSeekMoE layer runs expert-parallel by giving each rank's layer a
// Dispatcher and only the experts its rank holds (here on an in-process
// world; under MPI, use MPIWorld's communicator, build tag mpi).
func ExampleDispatcher_Dispatch() {
	cfg := moe.Config{ /* hidden_size, moe_intermediate_size, router ... */ }
	l := alltoall.Layout{Experts: cfg.Router.Experts, Ranks: 4, RanksPerNode: 2}
	w, _ := alltoall.NewWorld(l.Ranks, alltoall.WorldOptions{})
	w.Run(func(c alltoall.Comm) error {
		layer, err := moe.New(cfg, moe.Options{Mode: moe.Inference,
			LocalExperts: func(e int) bool { return l.Holds(c.Rank(), e) }})
		if err != nil {
			return err
		}
		// ... load the router, the shared experts and this rank's experts ...
		d, err := alltoall.NewDispatcher(c, l, alltoall.Options{Route: alltoall.TwoHop, Payload: alltoall.FP8})
		if err != nil {
			return err
		}
		layer.Dispatcher = d
		x := dsv3.NewMatrix(16, cfg.Hidden) // this rank's tokens
		_, _, err = layer.Apply(x, false)
		return err
	})
}
