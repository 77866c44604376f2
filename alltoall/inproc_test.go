package alltoall_test

import (
	"fmt"
	"strings"
	"sync"
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

// TestInProcessErrors: bad arguments are errors naming what is wrong, and
// a protocol mismatch between ranks (counts or lengths that do not agree)
// fails every rank instead of corrupting or hanging.
func TestInProcessErrors(t *testing.T) {
	if _, err := alltoall.NewWorld(0, alltoall.WorldOptions{}); err == nil {
		t.Error("a world of 0 ranks")
	}
	w, err := alltoall.NewWorld(2, alltoall.WorldOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Comm(2); err == nil || !strings.Contains(err.Error(), "rank 2 of a world of 2") {
		t.Errorf("Comm(2): %v", err)
	}
	c0, _ := w.Comm(0)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{c0.AlltoallV(make([]byte, 4), []int{2, 3}, []int{0, 2}, nil, []int{0, 0}, []int{0, 0}), "send segment 1 is [2, 2+3) outside a 4-byte buffer"},
		{c0.AlltoallV(nil, []int{0}, []int{0}, nil, []int{0, 0}, []int{0, 0}), "1/1 entries, want 2"},
		{alltoall.Send(c0, 2, 0, nil), "peer 2, outside [0, 2)"},
		{alltoall.Recv(c0, 1, alltoall.MaxTag, nil), "tag 16384, outside"},
		{c0.AllReduce(nil, alltoall.Op(7)), "unknown Op(7)"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("error %v, want one saying %q", tc.err, tc.want)
		}
	}
	if _, err := c0.Split(-1, 0); err == nil {
		t.Error("Split with a negative color")
	}
	if w.Err() != nil {
		t.Fatalf("argument errors aborted the world: %v", w.Err())
	}

	// Rank 0 sends 3 bytes where rank 1 expects 2: both fail, on goroutines
	// of our own.
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := w.Comm(r)
			sc, rc := []int{0, 3}, []int{0, 0} // rank 0 sends 3 bytes to rank 1
			if r == 1 {
				sc, rc = []int{0, 0}, []int{2, 0} // which expects 2
			}
			errs[r] = c.AlltoallV(make([]byte, 4), sc, []int{0, 0}, make([]byte, 4), rc, []int{0, 0})
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "rank 0 sends 3 bytes, this rank expects 2") && !strings.Contains(err.Error(), "world aborted") {
			t.Errorf("rank %d: %v", r, err)
		}
	}
	if w.Err() == nil {
		t.Error("a count mismatch did not abort the world")
	}
	if err := c0.AllReduce([]float64{1}, alltoall.Sum); err == nil || !strings.Contains(err.Error(), "world aborted") {
		t.Errorf("an operation after the abort: %v", err)
	}

	// A message longer than its receive fails both ends.
	w2, _ := alltoall.NewWorld(2, alltoall.WorldOptions{})
	errs = w2.Run(func(c alltoall.Comm) error {
		if c.Rank() == 0 {
			return alltoall.Send(c, 1, 4, make([]byte, 5))
		}
		return alltoall.Recv(c, 0, 4, make([]byte, 4))
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "has 5 bytes, the receive expects 4") {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}
