package alltoall

import (
	"fmt"
	"math"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// Combine is the reverse of the dispatch that made b: y holds one result
// row per received row ([b.X.Rows, c], in b.X's order), and every rank gets
// back, for each token it dispatched, the sum of the rows its destination
// ranks returned: out [T, c], out_t = Σ_{ranks r holding experts of t}
// y_r(t). The rows are not weighted here; whoever computes y applies the
// gate weights (a rank serving slots j of a token returns
// Σ_j g_j · FFN_j(x), which makes out_t the routed part of eq. 12).
//
// The sum is taken per node first (from zero, over the node's ranks in
// rank order) and then over the nodes' partial sums in node order (from
// zero), in both routes: TwoHop adds within the node on the forwarder and
// crosses the inter-node link once per (token, node), and Flat gives the
// same floating-point result bit for bit. It is collective; a bad y on any
// rank makes every rank return an error.
func (d *Dispatcher) Combine(b *Batch, y dsv3.Matrix) (dsv3.Matrix, error) {
	var bad error
	switch {
	case b == nil || b.d != d:
		bad = fmt.Errorf("alltoall: Combine of a batch this dispatcher did not make")
	default:
		bad = y.CheckShape("alltoall: combined rows", b.X.Rows, y.Cols)
	}
	cols := float64(y.Cols)
	if bad == nil && b.X.Rows == 0 {
		cols = math.NaN() // nothing to send: no vote on the width
	}
	failed, lo, hi, err := agree(d.comm, bad != nil, cols)
	switch {
	case err != nil:
		return dsv3.Matrix{}, err
	case bad != nil:
		return dsv3.Matrix{}, bad
	case failed >= 0:
		return dsv3.Matrix{}, fmt.Errorf("alltoall: combine aborted: rank %d had bad input", failed)
	case lo[0] != hi[0] && !math.IsInf(hi[0], -1):
		return dsv3.Matrix{}, fmt.Errorf("alltoall: combine: the ranks disagree on the row width (%g to %g values)", lo[0], hi[0])
	}
	width := y.Cols
	if !math.IsInf(hi[0], -1) {
		width = int(hi[0])
	}
	var data []float32
	if y.Rows > 0 {
		if !y.Contiguous() {
			y = y.Clone()
		}
		data = y.Data[:y.Rows*y.Cols]
	}
	if b.two != nil {
		return d.combineTwoHop(b, data, width)
	}
	return d.combineFlat(b, data, width)
}

func (d *Dispatcher) combineFlat(b *Batch, y []float32, cols int) (dsv3.Matrix, error) {
	p := b.flat
	c, l := d.comm, d.layout
	R := c.Size()
	nOut := p.sendOff[R]
	recv := d.scratchF32(sBack, nOut*cols)
	if err := alltoallRows(c, bytesOfF32(y), p.recvCnt, bytesOfF32(recv), p.sendCnt, 4*cols); err != nil {
		return dsv3.Matrix{}, err
	}
	d.countBack(p.recvCnt, 4*cols)
	// Positions of each token's rows, in rank order, and their nodes.
	start, pos := invert(b.tokens, p.sendTok)
	rankOf := make([]int32, nOut)
	for r := range R {
		for i := p.sendOff[r]; i < p.sendOff[r+1]; i++ {
			rankOf[i] = int32(r)
		}
	}
	out := dsv3.NewMatrix(b.tokens, cols)
	parallel.For(b.tokens, 8, d.opt.Workers, func(lo, hi int) {
		partial := make([]float32, cols)
		for t := lo; t < hi; t++ {
			dst := out.Row(t)
			qs := pos[start[t]:start[t+1]]
			for a := 0; a < len(qs); {
				clear(partial)
				n := l.Node(int(rankOf[qs[a]]))
				for ; a < len(qs) && l.Node(int(rankOf[qs[a]])) == n; a++ {
					q := int(qs[a])
					addTo(partial, recv[q*cols:(q+1)*cols])
				}
				addTo(dst, partial)
			}
		}
	})
	return out, nil
}

// countBack counts rows sent back to the ranks (flat).
func (d *Dispatcher) countBack(rows []int, rowBytes int) {
	me := d.comm.Rank()
	for s, n := range rows {
		if s != me {
			d.count(d.layout.Node(s), int64(n*rowBytes), 0, false)
		}
	}
}

// pairsFlat brings each (token, slot) pair's own result row back to its
// source: ret holds, per received row, its local slots' rows in slot
// order. The source's result of pair p is row rowOf[p].
func (d *Dispatcher) pairsFlat(b *Batch, ret []float32, cols int) (dsv3.Matrix, []int32, error) {
	p := b.flat
	c, l, k := d.comm, d.layout, b.K
	R := c.Size()
	back := make([]int, R)
	for s := range R {
		for i := b.From[s]; i < b.From[s+1]; i++ {
			for _, e := range b.Experts[i*k : (i+1)*k] {
				if e >= 0 {
					back[s]++
				}
			}
		}
	}
	rowOf := make([]int32, len(b.experts))
	gets := make([]int, R)
	n := 0
	for r := range R {
		for _, t := range p.sendTok[p.sendOff[r]:p.sendOff[r+1]] {
			for j, e := range b.experts[int(t)*k : (int(t)+1)*k] {
				if l.Owner(int(e)) == r {
					rowOf[int(t)*k+j] = int32(n)
					n++
					gets[r]++
				}
			}
		}
	}
	recv := make([]float32, n*cols)
	if err := alltoallRows(c, bytesOfF32(ret), back, bytesOfF32(recv), gets, 4*cols); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	d.countBack(back, 4*cols)
	return dsv3.Matrix{Rows: n, Cols: cols, Stride: cols, Data: recv}, rowOf, nil
}

// invert returns, for every value v in [0, n), the positions q with
// idx[q] == v in increasing order: pos[start[v]:start[v+1]].
func invert(n int, idx []int32) (start []int, pos []int32) {
	start = make([]int, n+1)
	for _, v := range idx {
		start[v+1]++
	}
	for v := range n {
		start[v+1] += start[v]
	}
	next := append([]int(nil), start[:n]...)
	pos = make([]int32, len(idx))
	for q, v := range idx {
		pos[next[v]] = int32(q)
		next[v]++
	}
	return start, pos
}

// addTo adds src to dst element-wise.
func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}
