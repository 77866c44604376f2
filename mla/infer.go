package mla

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
	"github.com/dsv3go/dsv3/yarn"
)

// Path selects how Infer attends over the cache.
type Path int

const (
	// Absorbed folds kv_b_proj's key part W^UK into the queries and its
	// value part W^UV into the output (the reference's attn_impl
	// "absorb"): every head attends directly over the cached latents, which
	// all heads share, so nothing per head is expanded per cached token.
	Absorbed Path = iota
	// Naive expands the cached latents of the whole context into per-head
	// keys and values through kv_b_proj at every call, then attends as in
	// training: the reference computation, for comparison.
	Naive
)

// String returns the path's name.
func (p Path) String() string {
	switch p {
	case Absorbed:
		return "absorbed"
	case Naive:
		return "naive"
	}
	return fmt.Sprintf("Path(%d)", int(p))
}

// Span is a run of new tokens of one cached sequence: Len tokens at
// positions Start … Start+Len−1 of cache sequence Seq.
type Span struct {
	Seq, Start, Len int
}

// Infer runs the attention for s.Count sequences of the cache (sequences
// 0 … s.Count−1) that each receive s.Len new tokens at positions s.Start …
// s.Start+s.Len−1: a prefill (s.Len > 1) or a decode step (s.Len = 1).
// x is the normalised input [s.Count·s.Len, hidden_size]; the result is the
// output after o_proj. See InferSpans.
func (m *MLA) Infer(x dsv3.Matrix, s dsv3.Seq, c *Cache, path Path) (dsv3.Matrix, error) {
	if s.Count < 0 || s.Len < 0 || s.Start < 0 {
		return dsv3.Matrix{}, fmt.Errorf("mla: sequence layout %+v has a negative field", s)
	}
	spans := make([]Span, s.Count)
	for i := range spans {
		spans[i] = Span{Seq: i, Start: s.Start, Len: s.Len}
	}
	return m.InferSpans(x, spans, c, path)
}

// InferSpans runs the attention for new tokens of several cached
// sequences, each at its own position: x holds the spans' rows one span
// after another. Each span writes its latents and RoPE'd keys into the
// cache at positions Start … Start+Len−1 (overwriting anything cached
// there and dropping what follows), then its tokens attend causally over
// the cached positions 0 … Start+Len−1. Start may not exceed the cached
// length (no gaps) and Start+Len may not exceed the capacity; a sequence may
// appear once per call.
func (m *MLA) InferSpans(x dsv3.Matrix, spans []Span, c *Cache, path Path) (dsv3.Matrix, error) {
	cfg := m.cfg
	if path != Absorbed && path != Naive {
		return dsv3.Matrix{}, fmt.Errorf("mla: unknown attention path %v", path)
	}
	if err := c.check(cfg); err != nil {
		return dsv3.Matrix{}, err
	}
	rows := 0
	seen := make(map[int]bool, len(spans))
	for i, sp := range spans {
		switch {
		case sp.Seq < 0 || sp.Seq >= c.seqs:
			return dsv3.Matrix{}, fmt.Errorf("mla: span %d: cache sequence %d out of range [0, %d)", i, sp.Seq, c.seqs)
		case seen[sp.Seq]:
			return dsv3.Matrix{}, fmt.Errorf("mla: span %d: cache sequence %d appears twice", i, sp.Seq)
		case sp.Start < 0 || sp.Len < 0:
			return dsv3.Matrix{}, fmt.Errorf("mla: span %d: start %d, length %d, want both >= 0", i, sp.Start, sp.Len)
		case sp.Start > c.lens[sp.Seq]:
			return dsv3.Matrix{}, fmt.Errorf("mla: span %d: start position %d is beyond the %d tokens cached for sequence %d", i, sp.Start, c.lens[sp.Seq], sp.Seq)
		case sp.Start+sp.Len > c.capacity:
			return dsv3.Matrix{}, fmt.Errorf("mla: span %d: positions [%d, %d) exceed the cache capacity %d", i, sp.Start, sp.Start+sp.Len, c.capacity)
		}
		seen[sp.Seq] = true
		rows += sp.Len
	}
	if err := m.checkInput(x, rows); err != nil {
		return dsv3.Matrix{}, fmt.Errorf("%w (%d new tokens in %d spans)", err, rows, len(spans))
	}
	if err := m.checkWeights(); err != nil {
		return dsv3.Matrix{}, err
	}
	h, dn, dr, dv, dc := cfg.Heads, cfg.QKNopeHeadDim, cfg.QKRopeHeadDim, cfg.VHeadDim, cfg.KVLoraRank
	if rows == 0 {
		for _, sp := range spans {
			c.lens[sp.Seq] = sp.Start
		}
		return dsv3.NewMatrix(0, cfg.Hidden), nil
	}
	tabs := make([]*yarn.Table, len(spans))
	for i, sp := range spans {
		t, err := m.rope.Table(sp.Start, sp.Len)
		if err != nil {
			return dsv3.Matrix{}, fmt.Errorf("mla: span %d: %w", i, err)
		}
		tabs[i] = t
	}

	// Projections of all new tokens at once (eqs. 1, 3, 6-8).
	q := m.queries(x, false, &record{})
	kv, _ := m.KVA.Forward(x, false)
	cn, _ := m.KVANorm.Forward(kv.View(0, 0, rows, dc), false)
	kpe := kv.View(0, dc, rows, dr)
	r0 := 0
	for i, sp := range spans {
		s := dsv3.Seq{Count: 1, Len: sp.Len, Start: sp.Start}
		if err := tabs[i].Rotate(q.View(r0, dn, sp.Len, q.Cols-dn), s, yarn.Block{Heads: h, Stride: dn + dr}); err != nil {
			return dsv3.Matrix{}, fmt.Errorf("mla: %w", err)
		}
		kr := kpe.Slice(r0, r0+sp.Len)
		if err := tabs[i].Rotate(kr, s, yarn.Block{Heads: 1}); err != nil {
			return dsv3.Matrix{}, fmt.Errorf("mla: %w", err)
		}
		base := sp.Seq*c.capacity + sp.Start
		c.latent.View(base, 0, sp.Len, dc).CopyFrom(cn.Slice(r0, r0+sp.Len))
		c.rope.View(base, 0, sp.Len, dr).CopyFrom(kr)
		c.lens[sp.Seq] = sp.Start + sp.Len
		r0 += sp.Len
	}

	o := dsv3.NewMatrix(rows, h*dv)
	r0 = 0
	for _, sp := range spans {
		if sp.Len > 0 {
			if path == Absorbed {
				m.absorbed(q, o, c, sp, r0)
			} else {
				m.naive(q, o, c, sp, r0)
			}
		}
		r0 += sp.Len
	}
	y, _ := m.O.Forward(o, false)
	return y, nil
}

// absorbed attends the span's queries (rows r0 … of q) over the cached
// latents: q^C_h·W^UK_h against c^KV (eq. 10 with k^C = W^UK c^KV folded
// into the query), the output latent through W^UV_h (eq. 10-11 with
// v^C = W^UV c^KV folded into the output).
func (m *MLA) absorbed(q, o dsv3.Matrix, c *Cache, sp Span, r0 int) {
	cfg := m.cfg
	h, dn, dr, dv, dc := cfg.Heads, cfg.QKNopeHeadDim, cfg.QKRopeHeadDim, cfg.VHeadDim, cfg.KVLoraRank
	n, T := sp.Len, sp.Start+sp.Len
	w := m.absorbWeight()
	qabs := dsv3.NewMatrix(n, h*dc)
	parallel.For(h, 1, m.workers, func(lo, hi int) {
		for hd := lo; hd < hi; hd++ {
			mm(false, false, qabs.View(0, hd*dc, n, dc), q.View(r0, hd*(dn+dr), n, dn), w.View(hd*(dn+dv), 0, dn, dc), false, 1)
		}
	})
	olat := dsv3.NewMatrix(n, h*dc)
	qs := q.Slice(r0, r0+n)
	lat := c.latent.View(sp.Seq*c.capacity, 0, T, dc)
	// Rows (token i, head hd) are stacked as row i·h+hd: [n·h, dc] views of
	// the [n, h·dc] matrices, and the rotary query parts at stride dn+dr.
	p := &problem{
		qn:    dsv3.Matrix{Rows: n * h, Cols: dc, Stride: dc, Data: qabs.Data},
		qp:    dsv3.Matrix{Rows: n * h, Cols: dr, Stride: dn + dr, Data: qs.Data[dn:]},
		kn:    lat,
		kp:    c.rope.View(sp.Seq*c.capacity, 0, T, dr),
		v:     lat,
		o:     dsv3.Matrix{Rows: n * h, Cols: dc, Stride: dc, Data: olat.Data},
		off:   sp.Start,
		group: h,
		scale: m.scale,
	}
	p.forward(m.workers)
	parallel.For(h, 1, m.workers, func(lo, hi int) {
		for hd := lo; hd < hi; hd++ {
			mm(false, true, o.View(r0, hd*dv, n, dv), olat.View(0, hd*dc, n, dc), w.View(hd*(dn+dv)+dn, 0, dv, dc), false, 1)
		}
	})
}

// naive expands the span's whole context through kv_b_proj and attends
// per head.
func (m *MLA) naive(q, o dsv3.Matrix, c *Cache, sp Span, r0 int) {
	cfg := m.cfg
	h, dn, dv, dc, dr := cfg.Heads, cfg.QKNopeHeadDim, cfg.VHeadDim, cfg.KVLoraRank, cfg.QKRopeHeadDim
	T := sp.Start + sp.Len
	kvb := dsv3.NewMatrix(T, h*(dn+dv))
	m.KVB.W.MulT(kvb, c.latent.View(sp.Seq*c.capacity, 0, T, dc), false)
	kr := c.rope.View(sp.Seq*c.capacity, 0, T, dr)
	parallel.Dynamic(h, m.workers, func(hd int) {
		m.headProblem(q, kvb, kr, o, r0, sp.Len, 0, sp.Start, hd).forward(1)
	})
}
