package mtp

import (
	"errors"
	"fmt"

	"github.com/dsv3go/dsv3"
)

// Chain is the D sequential modules of a model with their shared embedding
// and head, and the loss weight λ.
type Chain struct {
	Modules []*Module
	Shared  Shared
	// Lambda is λ, the MTP loss weight (the report: 0.3 for the first 10T
	// tokens, then 0.1).
	Lambda float32
}

// Result is the outcome of Chain.Forward.
type Result struct {
	// Loss is L_MTP = λ/D · Σₖ CEₖ.
	Loss float64
	// CE holds CEₖ for each depth.
	CE []float64
	// Logits holds each depth's logits, [Count·(Len-k), vocab]: row i of
	// sequence b predicts token i+k+1 of that sequence.
	Logits []dsv3.Matrix
	rec    *chainRecord
}

type chainRecord struct {
	s       dsv3.Seq
	modules []dsv3.Record
	dlogits []dsv3.Matrix
}

// Forward runs every depth over a batch: h0 is [s.Count·s.Len, hidden], the
// main model's states after its final norm, and tokens the s.Count·s.Len
// input tokens, sequence after sequence. Depth k sees the first Len-k
// positions of each sequence; its targets are the tokens k+1 ahead (the
// last position of each sequence has none and is not counted). With train,
// Result keeps what Backward needs.
func (c *Chain) Forward(h0 dsv3.Matrix, tokens []int32, s dsv3.Seq, train bool) (*Result, error) {
	d := len(c.Modules)
	if d == 0 {
		return nil, errors.New("mtp: chain has no modules")
	}
	if s.Count <= 0 || s.Len <= d {
		return nil, fmt.Errorf("mtp: %d sequences of %d tokens are too short for %d depths", s.Count, s.Len, d)
	}
	if len(tokens) != s.Count*s.Len || h0.Rows != len(tokens) {
		return nil, fmt.Errorf("mtp: %d tokens and %d states for %d sequences of %d", len(tokens), h0.Rows, s.Count, s.Len)
	}
	res := &Result{}
	var rec *chainRecord
	if train {
		rec = &chainRecord{s: s}
		res.rec = rec
	}
	h := h0
	for k := 1; k <= d; k++ {
		lk := s.Len - k
		prev := s.Len - k + 1
		hk := gatherPrefix(h, s.Count, prev, lk)
		ids := make([]int32, s.Count*lk)
		targets := make([]int32, s.Count*lk)
		for b := 0; b < s.Count; b++ {
			for i := 0; i < lk; i++ {
				ids[b*lk+i] = tokens[b*s.Len+i+k]
				if t := i + k + 1; t < s.Len {
					targets[b*lk+i] = tokens[b*s.Len+t]
				} else {
					targets[b*lk+i] = -1
				}
			}
		}
		sk := dsv3.Seq{Count: s.Count, Len: lk, Start: s.Start}
		states, logits, mr, err := c.Modules[k-1].Forward(c.Shared, hk, ids, sk, train)
		if err != nil {
			return nil, fmt.Errorf("mtp: depth %d: %w", k, err)
		}
		var dl dsv3.Matrix
		if train {
			dl = dsv3.NewMatrix(logits.Rows, logits.Cols)
		}
		ce, err := dsv3.CrossEntropy(logits, targets, dl, c.Lambda/float32(d))
		if err != nil {
			return nil, fmt.Errorf("mtp: depth %d: %w", k, err)
		}
		res.CE = append(res.CE, ce)
		res.Loss += ce
		res.Logits = append(res.Logits, logits)
		if train {
			rec.modules = append(rec.modules, mr)
			rec.dlogits = append(rec.dlogits, dl)
		}
		h = states
	}
	res.Loss *= float64(c.Lambda) / float64(d)
	return res, nil
}

// Backward back-propagates L_MTP of a training Forward through every
// module, the shared embedding and head, and returns dL_MTP/dh0.
func (c *Chain) Backward(res *Result) (dsv3.Matrix, error) {
	if res == nil || res.rec == nil {
		return dsv3.Matrix{}, errors.New("mtp: Backward needs the result of a training Forward")
	}
	r := res.rec
	s := r.s
	var dnext dsv3.Matrix // dL/dstates of depth k, from depth k+1
	for k := len(c.Modules); k >= 1; k-- {
		dh := c.Modules[k-1].Backward(c.Shared, r.modules[k-1], dnext, r.dlogits[k-1])
		// dh is over the first Len-k positions of depth k-1's Len-k+1.
		dnext = scatterPrefix(dh, s.Count, s.Len-k, s.Len-k+1)
	}
	return dnext, nil
}

// gatherPrefix returns the first keep rows of each of count blocks of
// length n.
func gatherPrefix(m dsv3.Matrix, count, n, keep int) dsv3.Matrix {
	out := dsv3.NewMatrix(count*keep, m.Cols)
	for b := 0; b < count; b++ {
		out.Slice(b*keep, (b+1)*keep).CopyFrom(m.Slice(b*n, b*n+keep))
	}
	return out
}

// scatterPrefix is gatherPrefix's adjoint: blocks of keep rows are placed at
// the start of blocks of n rows, the rest zero.
func scatterPrefix(m dsv3.Matrix, count, keep, n int) dsv3.Matrix {
	out := dsv3.NewMatrix(count*n, m.Cols)
	for b := 0; b < count; b++ {
		out.Slice(b*n, b*n+keep).CopyFrom(m.Slice(b*keep, (b+1)*keep))
	}
	return out
}
