package mla

import (
	"math"
	"sync"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/gemm"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// mm sets c = op(a)·op(b) (c += when acc) on the float32 GEMM with the
// given worker count.
func mm(transA, transB bool, c, a, b dsv3.Matrix, acc bool, workers int) {
	m, k := a.Rows, a.Cols
	if transA {
		m, k = a.Cols, a.Rows
	}
	n := b.Cols
	if transB {
		n = b.Rows
	}
	gemm.Sgemm(transA, transB, m, n, k, a.Data, a.Stride, b.Data, b.Stride, c.Data, c.Stride, acc, workers)
}

// problem is one causal attention: R query rows against T keys. Query row
// r sees the keys [0, off + r/group] (group rows share a position: 1 for a
// single head, the head count for the absorbed path's stacked heads). The
// score of row r and key j is scale·(qn[r]·kn[j] + qp[r]·kp[j]); the output
// row is the softmax-weighted sum of v.
type problem struct {
	qn, qp dsv3.Matrix // [R, dn], [R, dr]
	kn, kp dsv3.Matrix // [T, dn], [T, dr]
	v      dsv3.Matrix // [T, dv]
	o      dsv3.Matrix // [R, dv]
	lse    []float64   // [R] log-sum-exp of the scaled scores, or nil
	off    int
	group  int
	scale  float32
}

// visible returns how many keys row r sees.
func (p *problem) visible(r int) int { return p.off + r/p.group + 1 }

// scratchBudget is the most score values one block of query rows holds
// (a variable so that tests can force small blocks).
var scratchBudget = 1 << 20

var scratchPool = sync.Pool{New: func() any { return new([]float32) }}

func getScratch(n int) *[]float32 {
	s := scratchPool.Get().(*[]float32)
	if cap(*s) < n {
		*s = make([]float32, n)
	}
	*s = (*s)[:n]
	return s
}

// blockRows returns how many query rows a block takes: as many as keep the
// block's scores within scratchBudget, at least one.
func (p *problem) blockRows() int {
	t := p.visible(p.qn.Rows - 1)
	return max(1, min(p.qn.Rows, scratchBudget/max(t, 1)))
}

// scores sets s [r1−r0, nk] to the unscaled scores of query rows [r0, r1)
// against keys [0, nk).
func (p *problem) scores(s dsv3.Matrix, r0, r1, nk, workers int) {
	mm(false, true, s, p.qn.Slice(r0, r1), p.kn.Slice(0, nk), false, workers)
	if p.qp.Cols > 0 {
		mm(false, true, s, p.qp.Slice(r0, r1), p.kp.Slice(0, nk), true, workers)
	}
}

// forward computes o (and lse when not nil) with workers goroutines for
// the GEMMs and the softmax.
func (p *problem) forward(workers int) {
	rows := p.qn.Rows
	if rows == 0 {
		return
	}
	blk := p.blockRows()
	buf := getScratch(blk * p.visible(rows-1))
	defer scratchPool.Put(buf)
	inv := make([]float32, blk)
	for r0 := 0; r0 < rows; r0 += blk {
		r1 := min(rows, r0+blk)
		nk := p.visible(r1 - 1)
		s := dsv3.Matrix{Rows: r1 - r0, Cols: nk, Stride: nk, Data: (*buf)[:(r1-r0)*nk]}
		p.scores(s, r0, r1, nk, workers)
		grain := max(1, 8192/nk)
		parallel.For(r1-r0, grain, workers, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				lse, sum := softmaxRow(s.Row(i), p.visible(r0+i), p.scale)
				inv[i] = float32(1 / sum)
				if p.lse != nil {
					p.lse[r0+i] = lse
				}
			}
		})
		// The rows hold unnormalised exponentials: divide the output rows.
		o := p.o.Slice(r0, r1)
		mm(false, false, o, s, p.v.Slice(0, nk), false, workers)
		for i := 0; i < o.Rows; i++ {
			row := o.Row(i)
			for j := range row {
				row[j] *= inv[i]
			}
		}
	}
}

// softmaxRow replaces the first n scores of row by exp(scale·(row[j] −
// max)) and the rest by 0, and returns the log-sum-exp of the scaled scores
// and the sum of the exponentials (the softmax's divisor). scale > 0.
func softmaxRow(row []float32, n int, scale float32) (lse, sum float64) {
	mx := row[0]
	for _, v := range row[1:n] {
		mx = max(mx, v)
	}
	for j, v := range row[:n] {
		e := expNeg((v - mx) * scale)
		row[j] = e
		sum += float64(e)
	}
	clear(row[n:])
	return float64(mx*scale) + math.Log(sum), sum
}

// Constants of expNeg: log2(e) and ln 2 split in a high part exact in
// float32 and a low part (Cody and Waite's range reduction).
const (
	log2e  = 1.44269504088896341
	ln2Hi  = 0.693359375
	ln2Lo  = -2.12194440e-4
	expMin = -87 // e^x below this is flushed to 0 (e^-87 ≈ 1.6e-38)
)

// expNeg returns e^x in float32 arithmetic for x <= 0 (and for x up to a
// few ulps above 0), within 1e-7 relative: x = n·ln 2 + r with |r| <=
// ln2/2, e^r by a degree-7 polynomial (Cephes expf), times 2^n.
func expNeg(x float32) float32 {
	if x < expMin {
		return 0
	}
	n := int32(x*log2e - 0.5) // round to nearest for x <= 0
	fn := float32(n)
	r := x - fn*ln2Hi - fn*ln2Lo
	p := ((((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r+5.0000001201e-1)*r*r + r) + 1
	return p * math.Float32frombits(uint32(n+127)<<23)
}

// backward adds the gradients of one problem, given dO [R, dv]: dqn and
// dqp are set (rows [0, R)), dkn, dkp and dv are accumulated (they must be
// zeroed or hold other contributions). p.lse must hold the forward's
// values and p.o its output.
func (p *problem) backward(do, dqn, dqp, dkn, dkp, dv dsv3.Matrix, workers int) {
	rows := p.qn.Rows
	if rows == 0 {
		return
	}
	// delta[r] = Σ_j P[r,j]·dP[r,j] = dO[r]·O[r].
	delta := make([]float32, rows)
	for r := 0; r < rows; r++ {
		var d float64
		orow, drow := p.o.Row(r), do.Row(r)
		for j, v := range orow {
			d += float64(v) * float64(drow[j])
		}
		delta[r] = float32(d)
	}
	blk := p.blockRows()
	width := p.visible(rows - 1)
	buf := getScratch(2 * blk * width)
	defer scratchPool.Put(buf)
	for r0 := 0; r0 < rows; r0 += blk {
		r1 := min(rows, r0+blk)
		nk := p.visible(r1 - 1)
		n := (r1 - r0) * nk
		s := dsv3.Matrix{Rows: r1 - r0, Cols: nk, Stride: nk, Data: (*buf)[:n]}
		dp := dsv3.Matrix{Rows: r1 - r0, Cols: nk, Stride: nk, Data: (*buf)[n : 2*n]}
		p.scores(s, r0, r1, nk, workers)
		mm(false, true, dp, do.Slice(r0, r1), p.v.Slice(0, nk), false, workers)
		for i := 0; i < r1-r0; i++ {
			vis := p.visible(r0 + i)
			lse := p.lse[r0+i]
			srow, dprow := s.Row(i), dp.Row(i)
			d := delta[r0+i]
			for j := 0; j < vis; j++ {
				pr := expNeg(float32(float64(srow[j]*p.scale) - lse))
				srow[j] = pr                             // P
				dprow[j] = pr * (dprow[j] - d) * p.scale // dS of the unscaled scores
			}
			clear(srow[vis:])
			clear(dprow[vis:])
		}
		// dV += Pᵀ·dO; dq = dS·k; dk += dSᵀ·q.
		mm(true, false, dv.Slice(0, nk), s, do.Slice(r0, r1), true, workers)
		mm(false, false, dqn.Slice(r0, r1), dp, p.kn.Slice(0, nk), false, workers)
		mm(true, false, dkn.Slice(0, nk), dp, p.qn.Slice(r0, r1), true, workers)
		if p.qp.Cols > 0 {
			mm(false, false, dqp.Slice(r0, r1), dp, p.kp.Slice(0, nk), false, workers)
			mm(true, false, dkp.Slice(0, nk), dp, p.qp.Slice(r0, r1), true, workers)
		}
	}
}
