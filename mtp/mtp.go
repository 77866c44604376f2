package mtp

import (
	"errors"
	"fmt"

	"github.com/dsv3go/dsv3"
)

// Config sizes a module.
type Config struct {
	// Hidden is hidden_size.
	Hidden int
	// Eps is rms_norm_eps, for enorm, hnorm and shared_head.norm.
	Eps float32
}

// Shared is what the modules share with the main model: the token
// embedding (embed_tokens) and the output head (lm_head). Both are the main
// model's own values.
type Shared struct {
	Embed *dsv3.Embedding
	Head  *dsv3.Linear
}

func (s Shared) check(hidden int) error {
	if s.Embed == nil || s.Head == nil {
		return errors.New("mtp: the shared embedding and head must both be set")
	}
	if s.Embed.Weight.Cols != hidden {
		return fmt.Errorf("mtp: shared embedding width %d, want hidden_size %d", s.Embed.Weight.Cols, hidden)
	}
	if _, in := s.Head.W.Dims(); in != hidden {
		return fmt.Errorf("mtp: shared head input width %d, want hidden_size %d", in, hidden)
	}
	return nil
}

// Module is one MTP depth: enorm, hnorm, eh_proj, a transformer block and
// shared_head.norm. The output head itself is shared (see Shared).
type Module struct {
	Enorm    *dsv3.RMSNorm
	Hnorm    *dsv3.RMSNorm
	EhProj   *dsv3.Linear // [hidden, 2·hidden]: embedding columns first
	Block    dsv3.Block
	HeadNorm *dsv3.RMSNorm // shared_head.norm
	hidden   int
}

// New returns a module around block with unit norms and a zero eh_proj
// (gradients allocated when train). The caller initialises or loads the
// weights through Params.
func New(cfg Config, block dsv3.Block, train bool) (*Module, error) {
	if cfg.Hidden <= 0 {
		return nil, fmt.Errorf("mtp: hidden_size %d must be positive", cfg.Hidden)
	}
	if block == nil {
		return nil, errors.New("mtp: a transformer block is required")
	}
	return &Module{
		Enorm:    dsv3.NewRMSNorm(cfg.Hidden, cfg.Eps, train),
		Hnorm:    dsv3.NewRMSNorm(cfg.Hidden, cfg.Eps, train),
		EhProj:   dsv3.NewLinear(cfg.Hidden, 2*cfg.Hidden, train),
		Block:    block,
		HeadNorm: dsv3.NewRMSNorm(cfg.Hidden, cfg.Eps, train),
		hidden:   cfg.Hidden,
	}, nil
}

// Params lists the module's parameters with the checkpoint's names
// relative to its layer ("enorm.weight", "hnorm.weight", "eh_proj.weight",
// "shared_head.norm.weight", then the block's). The shared embedding and
// head are the main model's parameters and are not listed; the checkpoint's
// copies (embed_tokens.weight and shared_head.head.weight inside the MTP
// layer) hold the same values.
func (m *Module) Params() []dsv3.Param {
	var ps []dsv3.Param
	ps = append(ps, dsv3.PrefixParams("enorm.", m.Enorm.Params())...)
	ps = append(ps, dsv3.PrefixParams("hnorm.", m.Hnorm.Params())...)
	ps = append(ps, dsv3.PrefixParams("eh_proj.", m.EhProj.Params())...)
	ps = append(ps, dsv3.PrefixParams("shared_head.norm.", m.HeadNorm.Params())...)
	ps = append(ps, m.Block.Params()...)
	return ps
}

type combineRecord struct {
	ids          []int32
	en, hn, proj dsv3.Record
}

// Combine returns eh_proj([enorm(Emb(ids)); hnorm(h)]) (eq. 21): h is
// [N, hidden], ids the N tokens whose embeddings join them.
func (m *Module) Combine(sh Shared, h dsv3.Matrix, ids []int32, train bool) (dsv3.Matrix, dsv3.Record, error) {
	if err := sh.check(m.hidden); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	if err := h.CheckShape("mtp: previous hidden state", len(ids), m.hidden); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	if err := sh.Embed.CheckIDs(ids); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	e := sh.Embed.Forward(ids)
	en, enr := m.Enorm.Forward(e, train)
	hn, hnr := m.Hnorm.Forward(h, train)
	cat := dsv3.NewMatrix(len(ids), 2*m.hidden)
	cat.View(0, 0, len(ids), m.hidden).CopyFrom(en)
	cat.View(0, m.hidden, len(ids), m.hidden).CopyFrom(hn)
	x, pr := m.EhProj.Forward(cat, train)
	if !train {
		return x, nil, nil
	}
	return x, &combineRecord{ids: ids, en: enr, hn: hnr, proj: pr}, nil
}

// combineBackward accumulates into enorm, hnorm, eh_proj and the shared
// embedding, and returns dL/dh.
func (m *Module) combineBackward(sh Shared, rec dsv3.Record, dx dsv3.Matrix) dsv3.Matrix {
	r := rec.(*combineRecord)
	dcat := m.EhProj.Backward(r.proj, dx)
	n := dcat.Rows
	de := m.Enorm.Backward(r.en, dcat.View(0, 0, n, m.hidden))
	sh.Embed.Backward(r.ids, de)
	return m.Hnorm.Backward(r.hn, dcat.View(0, m.hidden, n, m.hidden))
}

type headRecord struct{ norm, head dsv3.Record }

// Logits returns OutHead(y) = head(shared_head.norm(y)) (eq. 23).
func (m *Module) Logits(sh Shared, y dsv3.Matrix, train bool) (dsv3.Matrix, dsv3.Record) {
	yn, nr := m.HeadNorm.Forward(y, train)
	logits, hr := sh.Head.Forward(yn, train)
	if !train {
		return logits, nil
	}
	return logits, &headRecord{norm: nr, head: hr}
}

func (m *Module) logitsBackward(sh Shared, rec dsv3.Record, dlogits dsv3.Matrix) dsv3.Matrix {
	r := rec.(*headRecord)
	return m.HeadNorm.Backward(r.norm, sh.Head.Backward(r.head, dlogits))
}

// Forward runs the whole module for inference or training on aligned
// inputs: h [s.Count·s.Len, hidden] are the depth k-1 states, ids the tokens
// tᵢ₊ₖ, one per row. It returns the block's output states hᵏ and the
// logits predicting tᵢ₊ₖ₊₁.
func (m *Module) Forward(sh Shared, h dsv3.Matrix, ids []int32, s dsv3.Seq, train bool) (states, logits dsv3.Matrix, rec dsv3.Record, err error) {
	if s.Count*s.Len != len(ids) {
		return dsv3.Matrix{}, dsv3.Matrix{}, nil, fmt.Errorf("mtp: %d sequences of %d tokens do not match %d rows", s.Count, s.Len, len(ids))
	}
	x, cr, err := m.Combine(sh, h, ids, train)
	if err != nil {
		return dsv3.Matrix{}, dsv3.Matrix{}, nil, err
	}
	y, br := m.Block.Forward(x, s, train)
	lg, hr := m.Logits(sh, y, train)
	if !train {
		return y, lg, nil, nil
	}
	return y, lg, &moduleRecord{combine: cr, block: br, head: hr}, nil
}

type moduleRecord struct{ combine, block, head dsv3.Record }

// Backward takes dL/dlogits and dL/dstates (either may be empty) and
// returns dL/dh, accumulating every gradient on the way.
func (m *Module) Backward(sh Shared, rec dsv3.Record, dstates, dlogits dsv3.Matrix) dsv3.Matrix {
	r := rec.(*moduleRecord)
	var dy dsv3.Matrix
	if !dlogits.Empty() {
		dy = m.logitsBackward(sh, r.head, dlogits)
		if !dstates.Empty() {
			for i := 0; i < dy.Rows; i++ {
				row, add := dy.Row(i), dstates.Row(i)
				for j := range row {
					row[j] += add[j]
				}
			}
		}
	} else {
		dy = dstates
	}
	dx := m.Block.Backward(r.block, dy)
	return m.combineBackward(sh, r.combine, dx)
}
