package alltoall

import (
	"fmt"
	"sync"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// Dispatch makes the Dispatcher a moe.Dispatcher (the method set matches
// moe's interface; this package does not import moe): the DeepSeekMoE
// layer on each rank, built with moe.Options.LocalExperts set to
// Layout.Holds for that rank, runs expert-parallel with no change to the
// layer.
//
// x [T, d] and experts (T×k ids in [0, nExperts), nExperts =
// Layout.Experts) are this rank's tokens. Each token goes once to every
// rank holding one of its experts (DispatchRows, with scale as the
// weights); every rank then runs each of its experts that received rows
// once, over the rows of all ranks in source-rank then token order (the
// same order on every call and for both routes), with row scale[p]·x_t
// for pair p when scale is not nil; and each pair's output row comes back
// to its source, where it is row rowOf[p] of out. The layer weighs and
// sums the pairs itself (it needs each one for the gate gradient), so the
// return path carries one row per pair rather than Combine's one per
// (token, rank).
//
// It is collective: every rank calls it, in the same order, with the same
// k, nExperts and outCols. Bad input on a rank, or an expert that returns
// an error, makes every rank return an error (the failing rank its own
// error, the others one naming it).
func (d *Dispatcher) Dispatch(x dsv3.Matrix, experts []int32, k, nExperts int, scale []float32, outCols int,
	expert func(expert int, in, out dsv3.Matrix, workers int) error) (dsv3.Matrix, []int32, error) {
	var bad error
	switch {
	case nExperts != d.layout.Experts:
		bad = fmt.Errorf("alltoall: dispatch to %d experts, the layout has %d", nExperts, d.layout.Experts)
	case outCols < 0:
		bad = fmt.Errorf("alltoall: dispatch with %d output columns", outCols)
	case expert == nil:
		bad = fmt.Errorf("alltoall: dispatch without an expert function")
	}
	b, err := d.dispatch(x, experts, k, scale, bad)
	if err != nil {
		return dsv3.Matrix{}, nil, err
	}
	ret, runErr := d.runExperts(b, outCols, expert)
	failed, lo, hi, err := agree(d.comm, runErr != nil, float64(outCols))
	switch {
	case err != nil:
		return dsv3.Matrix{}, nil, err
	case runErr != nil:
		return dsv3.Matrix{}, nil, runErr
	case failed >= 0:
		return dsv3.Matrix{}, nil, fmt.Errorf("alltoall: dispatch aborted: an expert failed on rank %d", failed)
	case lo[0] != hi[0]:
		return dsv3.Matrix{}, nil, fmt.Errorf("alltoall: dispatch: the ranks disagree on the output width (%g to %g)", lo[0], hi[0])
	}
	if b.two != nil {
		return d.pairsTwoHop(b, ret, outCols)
	}
	return d.pairsFlat(b, ret, outCols)
}

// runExperts groups the received (row, slot) pairs by local expert (a
// stable counting sort), gathers each expert's input rows, scaled by the
// slot weights, runs the experts as moe.Local does (biggest first; an
// expert with more than its fair share of rows alone with all workers,
// the rest concurrently), and returns the outputs per received row, its
// local slots in slot order.
func (d *Dispatcher) runExperts(b *Batch, outCols int, expert func(int, dsv3.Matrix, dsv3.Matrix, int) error) ([]float32, error) {
	k, n := b.K, len(b.ExpertCounts)
	start := make([]int, n+1)
	for e, c := range b.ExpertCounts {
		start[e+1] = start[e] + c
	}
	P := start[n]
	next := append([]int(nil), start[:n]...)
	src := make([]int32, P)                // expert-sorted row -> i*k+j
	rowOf := make([]int32, len(b.Experts)) // i*k+j -> expert-sorted row
	for q, e := range b.Experts {
		if e >= 0 {
			r := next[int(e)-b.FirstExpert]
			next[int(e)-b.FirstExpert]++
			rowOf[q] = int32(r)
			src[r] = int32(q)
		}
	}
	W := parallel.Workers(d.opt.Workers)
	cols := b.X.Cols
	in := dsv3.NewMatrix(P, cols)
	parallel.For(P, 64, W, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			q := int(src[r])
			c, s, dst := b.Weights[q], b.X.Row(q/k), in.Row(r)
			for j, v := range s {
				dst[j] = c * v
			}
		}
	})
	out := dsv3.NewMatrix(P, outCols)
	var mu sync.Mutex
	var first error
	run := func(e, workers int) {
		err := expert(b.FirstExpert+e, in.Slice(start[e], start[e+1]), out.Slice(start[e], start[e+1]), workers)
		if err != nil {
			mu.Lock()
			if first == nil {
				first = fmt.Errorf("alltoall: rank %d: expert %d: %w", d.comm.Rank(), b.FirstExpert+e, err)
			}
			mu.Unlock()
		}
	}
	sizes := make([]int, n)
	for e := range sizes {
		sizes[e] = start[e+1] - start[e]
	}
	parallel.BySize(sizes, W, run)
	if first != nil {
		return nil, first
	}
	// Outputs in (received row, slot) order for the return path.
	ret := d.scratchF32(sRet, P*outCols)
	pos := 0
	for q, e := range b.Experts {
		if e >= 0 {
			copy(ret[pos*outCols:(pos+1)*outCols], out.Row(int(rowOf[q])))
			pos++
		}
	}
	return ret, nil
}
