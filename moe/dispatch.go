package moe

import (
	"fmt"
	"sync"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// ExpertFunc computes one expert over the rows routed to it: it reads in
// [n, ·] and writes out [n, outCols]. workers is how many goroutines it may
// use for its own GEMMs (the dispatcher may run several experts at once).
// It may keep in (in its backward record); in stays unchanged after
// Dispatch returns.
type ExpertFunc = func(expert int, in, out dsv3.Matrix, workers int) error

// Dispatcher moves token rows to the experts that process them and brings
// the results back: the seam between the MoE layer and its placement of
// experts. The local dispatcher (Local, the default) runs every expert in
// this process; an expert-parallel dispatcher (the alltoall package's)
// sends rows to the ranks that own the experts and back.
//
// The method uses only builtin and dsv3 types, so another package can
// implement it without importing moe (Go interfaces are satisfied
// structurally).
//
// # The contract of Dispatch
//
// x is [T, d]; experts holds the chosen experts of token t at
// experts[t*k : (t+1)*k] (the pair p = t*k + j is "token t, slot j"), ids in
// [0, nExperts). scale, when not nil, has one value per pair, and the row
// an expert receives for pair p is scale[p]·x[p/k] instead of x[p/k].
//
// Dispatch calls expert(e, in, out, workers) once for each expert e it
// runs in this process that received at least one row, possibly
// concurrently for different experts (never twice for one e in one call):
// in holds the rows sent to e (from every rank, for an expert-parallel
// dispatcher), out is where e writes its outputs, row for row. An expert
// that receives no rows is not called. If an expert returns an error,
// Dispatch returns an error wrapping it.
//
// It returns out and rowOf: the result of pair p is row rowOf[p] of out
// ([·, outCols]), for every pair whose expert is run anywhere. out may be
// (and, locally, is) the experts' own output storage: no copy is made.
//
// Order: for the same experts slice, k and nExperts (and the same call
// sequence on every rank), each expert receives its rows in the same order
// every call. The MoE layer relies on it: Backward dispatches the output
// gradient with scale = the gate weights, and each expert's backward pairs
// the rows it receives with the rows of its forward.
//
// The layer calls Dispatch twice per training step and micro-batch (forward
// and backward) and once per inference forward; with several MoE layers or
// micro-batches in flight, every rank must call them in the same order.
type Dispatcher interface {
	Dispatch(x dsv3.Matrix, experts []int32, k, nExperts int, scale []float32, outCols int,
		expert func(expert int, in, out dsv3.Matrix, workers int) error) (out dsv3.Matrix, rowOf []int32, err error)
}

// Local is the in-process Dispatcher: a stable counting sort of the
// (token, slot) pairs by expert (no allocation per token), a parallel
// gather of the rows into one buffer with each expert's rows contiguous,
// and the experts run biggest first. An expert whose rows exceed its fair
// share of the remaining work runs alone with all workers; the rest run
// concurrently, one worker each, taking the next-biggest expert as they
// finish (parallel.Dynamic).
type Local struct {
	// Workers bounds the goroutines (0: GOMAXPROCS).
	Workers int
}

// Dispatch implements Dispatcher.
func (l Local) Dispatch(x dsv3.Matrix, experts []int32, k, nExperts int, scale []float32, outCols int,
	expert func(expert int, in, out dsv3.Matrix, workers int) error) (dsv3.Matrix, []int32, error) {
	T := x.Rows
	P := len(experts)
	switch {
	case k <= 0 || P != T*k:
		return dsv3.Matrix{}, nil, fmt.Errorf("moe: dispatch of %d pairs for %d tokens × %d experts each", P, T, k)
	case scale != nil && len(scale) != P:
		return dsv3.Matrix{}, nil, fmt.Errorf("moe: dispatch scale has %d values, want %d pairs", len(scale), P)
	case nExperts <= 0 || outCols < 0:
		return dsv3.Matrix{}, nil, fmt.Errorf("moe: dispatch to %d experts of %d outputs", nExperts, outCols)
	}
	// Counting sort: start[e] is the first row of expert e.
	start := make([]int, nExperts+1)
	for p, e := range experts {
		if e < 0 || int(e) >= nExperts {
			return dsv3.Matrix{}, nil, fmt.Errorf("moe: pair %d (token %d) routed to expert %d, outside [0, %d)", p, p/k, e, nExperts)
		}
		start[e+1]++
	}
	for e := range nExperts {
		start[e+1] += start[e]
	}
	next := append([]int(nil), start[:nExperts]...)
	rowOf := make([]int32, P)
	src := make([]int32, P) // row -> pair
	for p, e := range experts {
		r := next[e]
		next[e]++
		rowOf[p] = int32(r)
		src[r] = int32(p)
	}
	W := parallel.Workers(l.Workers)
	in := dsv3.NewMatrix(P, x.Cols)
	parallel.For(P, 64, W, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			p := int(src[r])
			d, s := in.Row(r), x.Row(p/k)
			if scale == nil {
				copy(d, s)
				continue
			}
			c := scale[p]
			for j, v := range s {
				d[j] = c * v
			}
		}
	})
	out := dsv3.NewMatrix(P, outCols)
	var mu sync.Mutex
	var first error
	run := func(e, workers int) {
		err := expert(e, in.Slice(start[e], start[e+1]), out.Slice(start[e], start[e+1]), workers)
		if err != nil {
			mu.Lock()
			if first == nil {
				first = fmt.Errorf("moe: expert %d: %w", e, err)
			}
			mu.Unlock()
		}
	}
	sizes := make([]int, nExperts)
	for e := range sizes {
		sizes[e] = start[e+1] - start[e]
	}
	parallel.BySize(sizes, W, run)
	if first != nil {
		return dsv3.Matrix{}, nil, first
	}
	return out, rowOf, nil
}
