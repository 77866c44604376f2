package mla

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
	"github.com/dsv3go/dsv3/yarn"
)

// record is what Forward keeps for Backward.
type record struct {
	m                              *MLA
	s                              dsv3.Seq
	tab                            *yarn.Table
	qaRec, qaNormRec, qRec         dsv3.Record // qRec: q_b_proj or q_proj
	kvaRec, kvNormRec, kvbRec, oRc dsv3.Record
	q                              dsv3.Matrix // rotated queries [T, H·(dn+dr)]
	kv                             dsv3.Matrix // kv_a output, RoPE part rotated [T, dc+dr]
	kvb                            dsv3.Matrix // [T, H·(dn+dv)]
	o                              dsv3.Matrix // attention output before o_proj [T, H·dv]
	lse                            []float64   // [H·T]: head h, row t at h·T+t
}

// queries computes q [T, H·(dn+dr)] from x (eqs. 6-8, before RoPE) and
// the records of its layers.
func (m *MLA) queries(x dsv3.Matrix, train bool, rec *record) dsv3.Matrix {
	if m.cfg.QLoraRank == 0 {
		q, r := m.Q.Forward(x, train)
		rec.qRec = r
		return q
	}
	cq, r1 := m.QA.Forward(x, train)
	cqn, r2 := m.QANorm.Forward(cq, train)
	q, r3 := m.QB.Forward(cqn, train)
	rec.qaRec, rec.qaNormRec, rec.qRec = r1, r2, r3
	return q
}

// checkInput validates x [rows, hidden].
func (m *MLA) checkInput(x dsv3.Matrix, rows int) error {
	if err := x.CheckShape("mla: input", rows, m.cfg.Hidden); err != nil {
		return err
	}
	return nil
}

// Forward runs the attention over x [s.Count·s.Len, hidden_size], the
// normalised input (the input_layernorm output): s.Count independent
// sequences of s.Len tokens each, every one at positions s.Start …
// s.Start+s.Len−1, causal within its sequence. It returns the output after
// o_proj (before the residual add) and, with train, the record Backward
// needs. It mirrors dsv3.Block's Forward, with an error for bad input.
func (m *MLA) Forward(x dsv3.Matrix, s dsv3.Seq, train bool) (dsv3.Matrix, dsv3.Record, error) {
	if s.Count < 0 || s.Len < 0 || s.Start < 0 {
		return dsv3.Matrix{}, nil, fmt.Errorf("mla: sequence layout %+v has a negative field", s)
	}
	if err := m.checkInput(x, s.Count*s.Len); err != nil {
		return dsv3.Matrix{}, nil, fmt.Errorf("%w (%d sequences of %d tokens)", err, s.Count, s.Len)
	}
	if err := m.checkWeights(); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	if train {
		if err := m.checkTrainable(); err != nil {
			return dsv3.Matrix{}, nil, err
		}
	}
	c := m.cfg
	h, dn, dr, dv, dc := c.Heads, c.QKNopeHeadDim, c.QKRopeHeadDim, c.VHeadDim, c.KVLoraRank
	T := x.Rows
	if T == 0 {
		return dsv3.NewMatrix(0, c.Hidden), &record{m: m, s: s}, nil
	}
	tab, err := m.rope.Table(s.Start, s.Len)
	if err != nil {
		return dsv3.Matrix{}, nil, fmt.Errorf("mla: %w", err)
	}
	rec := &record{m: m, s: s, tab: tab}
	q := m.queries(x, train, rec)
	kv, kvaRec := m.KVA.Forward(x, train)
	ckv, kpe := kv.View(0, 0, T, dc), kv.View(0, dc, T, dr)
	cn, kvNormRec := m.KVANorm.Forward(ckv, train)
	kvb, kvbRec := m.KVB.Forward(cn, train)
	rec.kvaRec, rec.kvNormRec, rec.kvbRec = kvaRec, kvNormRec, kvbRec
	// RoPE on the queries' rotary part (eq. 8) and the shared key (eq. 3).
	if err := tab.Rotate(q.View(0, dn, T, q.Cols-dn), s, yarn.Block{Heads: h, Stride: dn + dr}); err != nil {
		return dsv3.Matrix{}, nil, fmt.Errorf("mla: %w", err)
	}
	if err := tab.Rotate(kpe, s, yarn.Block{Heads: 1}); err != nil {
		return dsv3.Matrix{}, nil, fmt.Errorf("mla: %w", err)
	}
	o := dsv3.NewMatrix(T, h*dv)
	var lse []float64
	if train {
		lse = make([]float64, h*T)
	}
	L := s.Len
	parallel.Dynamic(s.Count*h, m.workers, func(it int) {
		b, hd := it/h, it%h
		p := m.headProblem(q, kvb, kpe, o, b*L, L, b*L, 0, hd)
		if lse != nil {
			p.lse = lse[hd*T+b*L : hd*T+(b+1)*L]
		}
		p.forward(1)
	})
	y, oRec := m.O.Forward(o, train)
	if !train {
		return y, nil, nil
	}
	rec.oRc = oRec
	rec.q, rec.kv, rec.kvb, rec.o, rec.lse = q, kv, kvb, o, lse
	return y, rec, nil
}

// headViews returns head hd's query parts (n rows of q from r0) and its
// keys and values (T rows of kvb and kpe from k0).
func (m *MLA) headViews(q, kvb, kpe dsv3.Matrix, r0, n, k0, T, hd int) (qn, qp, kn, kp, v dsv3.Matrix) {
	c := m.cfg
	dn, dr, dv := c.QKNopeHeadDim, c.QKRopeHeadDim, c.VHeadDim
	qc, kc := hd*(dn+dr), hd*(dn+dv)
	return q.View(r0, qc, n, dn), q.View(r0, qc+dn, n, dr),
		kvb.View(k0, kc, T, dn), kpe.View(k0, 0, T, dr), kvb.View(k0, kc+dn, T, dv)
}

// headProblem returns head hd's attention for the n query rows of q and o
// from row r0 whose first key row is k0 and whose first query sits at
// position off of the sequence: the keys are rows [k0, k0+off+n) of kvb
// and kpe.
func (m *MLA) headProblem(q, kvb, kpe, o dsv3.Matrix, r0, n, k0, off, hd int) *problem {
	qn, qp, kn, kp, v := m.headViews(q, kvb, kpe, r0, n, k0, off+n, hd)
	dv := m.cfg.VHeadDim
	return &problem{qn: qn, qp: qp, kn: kn, kp: kp, v: v, o: o.View(r0, hd*dv, n, dv), off: off, group: 1, scale: m.scale}
}

// checkTrainable returns an error unless every projection weight is a
// float32 matrix, which Backward needs.
func (m *MLA) checkTrainable() error {
	for _, p := range m.Params() {
		if p.Slot == nil {
			continue
		}
		if _, ok := (*p.Slot).(dsv3.Matrix); !ok {
			return fmt.Errorf("mla: %s is a %T; training needs a float32 weight", p.Name, *p.Slot)
		}
	}
	return nil
}

// Backward takes the record of one Forward with train and dL/dy
// [tokens, hidden_size], accumulates the gradients of every weight that
// has one, and returns dL/dx.
func (m *MLA) Backward(rec dsv3.Record, dy dsv3.Matrix) (dsv3.Matrix, error) {
	r, ok := rec.(*record)
	if !ok || r == nil {
		return dsv3.Matrix{}, fmt.Errorf("mla: backward record is a %T, want one from this layer's Forward with train", rec)
	}
	if r.m != m {
		return dsv3.Matrix{}, fmt.Errorf("mla: backward record comes from another layer")
	}
	T := r.s.Count * r.s.Len
	if err := dy.CheckShape("mla: output gradient", T, m.cfg.Hidden); err != nil {
		return dsv3.Matrix{}, err
	}
	if err := m.checkTrainable(); err != nil {
		return dsv3.Matrix{}, err
	}
	if T == 0 {
		return dsv3.NewMatrix(0, m.cfg.Hidden), nil
	}
	c := m.cfg
	h, dn, dr, dv, dc := c.Heads, c.QKNopeHeadDim, c.QKRopeHeadDim, c.VHeadDim, c.KVLoraRank
	L := r.s.Len
	do := m.O.Backward(r.oRc, dy)
	dq := dsv3.NewMatrix(T, h*(dn+dr))
	dkvb := dsv3.NewMatrix(T, h*(dn+dv))
	dkpH := dsv3.NewMatrix(T, h*dr) // per-head shared-key gradients
	kpe := r.kv.View(0, dc, T, dr)
	parallel.Dynamic(r.s.Count*h, m.workers, func(it int) {
		b, hd := it/h, it%h
		p := m.headProblem(r.q, r.kvb, kpe, r.o, b*L, L, b*L, 0, hd)
		p.lse = r.lse[hd*T+b*L : hd*T+(b+1)*L]
		dqn, dqp, dkn, dkp, dvh := m.headViews(dq, dkvb, dkpH.View(0, hd*dr, T, dr), b*L, L, b*L, L, hd)
		p.backward(do.View(b*L, hd*dv, L, dv), dqn, dqp, dkn, dkp, dvh, 1)
	})
	// Through RoPE: the transposed rotations.
	if err := r.tab.RotateBackward(dq.View(0, dn, T, dq.Cols-dn), r.s, yarn.Block{Heads: h, Stride: dn + dr}); err != nil {
		return dsv3.Matrix{}, fmt.Errorf("mla: %w", err)
	}
	dkv := dsv3.NewMatrix(T, dc+dr)
	for t := 0; t < T; t++ {
		dst := dkv.Row(t)[dc:]
		src := dkpH.Row(t)
		for hd := 0; hd < h; hd++ {
			for j, v := range src[hd*dr : (hd+1)*dr] {
				dst[j] += v
			}
		}
	}
	if err := r.tab.RotateBackward(dkv.View(0, dc, T, dr), r.s, yarn.Block{Heads: 1}); err != nil {
		return dsv3.Matrix{}, fmt.Errorf("mla: %w", err)
	}
	dcn := m.KVB.Backward(r.kvbRec, dkvb)
	dckv := m.KVANorm.Backward(r.kvNormRec, dcn)
	dkv.View(0, 0, T, dc).CopyFrom(dckv)
	dx := m.KVA.Backward(r.kvaRec, dkv)
	var dxq dsv3.Matrix
	if c.QLoraRank == 0 {
		dxq = m.Q.Backward(r.qRec, dq)
	} else {
		dcqn := m.QB.Backward(r.qRec, dq)
		dcq := m.QANorm.Backward(r.qaNormRec, dcqn)
		dxq = m.QA.Backward(r.qaRec, dcq)
	}
	for i := range dx.Data {
		dx.Data[i] += dxq.Data[i]
	}
	return dx, nil
}
