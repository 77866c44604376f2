package alltoall_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/dsv3go/dsv3/alltoall"
)

// runWorld runs fn on every rank of an in-process world and fails the test
// with every rank's error.
func runWorld(t *testing.T, size int, fn func(c alltoall.Comm) error) {
	t.Helper()
	w, err := alltoall.NewWorld(size, alltoall.WorldOptions{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for r, err := range w.Run(fn) {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

func TestInProcessComm(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			runWorld(t, n, func(c alltoall.Comm) error { return commSuite(c, 1<<16) })
		})
	}
}

var testLayouts = []alltoall.Layout{
	{Experts: 16, Ranks: 4, RanksPerNode: 2}, // 2 nodes × 2
	{Experts: 12, Ranks: 6, RanksPerNode: 3}, // 2 nodes × 3
	{Experts: 8, Ranks: 4, RanksPerNode: 1},  // 4 nodes × 1
	{Experts: 8, Ranks: 4, RanksPerNode: 4},  // 1 node
	{Experts: 24, Ranks: 6, RanksPerNode: 2}, // 3 nodes × 2
}

// TestDispatchCombine: rows arrive once per destination rank, grouped by
// source rank, with their metadata; combine(dispatch(x)) with identity
// experts is x times the number of destination ranks; traffic matches a
// per-token count; two-hop equals flat bit for bit.
func TestDispatchCombine(t *testing.T) {
	for li, l := range testLayouts {
		for _, p := range []alltoall.Payload{alltoall.Float32, alltoall.FP8} {
			t.Run(fmt.Sprintf("%dx%d_%v", l.Nodes(), l.RanksPerNode, p), func(t *testing.T) {
				runWorld(t, l.Ranks, func(c alltoall.Comm) error { return dispatchCase(c, l, p, uint64(li)) })
			})
		}
	}
}

// TestExpertParallelMoE: the DeepSeekMoE layer on 4 ranks (2 nodes × 2)
// with an alltoall Dispatcher equals the single-process layer.
func TestExpertParallelMoE(t *testing.T) {
	l := alltoall.Layout{Experts: 16, Ranks: 4, RanksPerNode: 2}
	runWorld(t, 4, func(c alltoall.Comm) error { return moeCase(c, l, 7) })
}
