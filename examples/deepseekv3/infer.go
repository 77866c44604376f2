package deepseekv3

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/mla"
)

// State is the inference state of a batch of sequences: one compressed
// MLA cache per layer (and per MTP module), owned by the caller.
type State struct {
	caches    []*mla.Cache
	mtpCaches []*mla.Cache
	// Path selects the absorbed (default) or naive attention.
	Path mla.Path
}

// NewState returns empty caches for seqs sequences of up to capacity
// tokens each.
func (m *Model) NewState(seqs, capacity int) (*State, error) {
	st := &State{Path: mla.Absorbed}
	cfg := m.Cfg.MLAConfig()
	for range m.Layers {
		c, err := mla.NewCache(cfg, seqs, capacity)
		if err != nil {
			return nil, err
		}
		st.caches = append(st.caches, c)
	}
	for range m.MTP {
		c, err := mla.NewCache(cfg, seqs, capacity)
		if err != nil {
			return nil, err
		}
		st.mtpCaches = append(st.mtpCaches, c)
	}
	return st, nil
}

// Len returns how many tokens of sequence seq are cached.
func (st *State) Len(seq int) int { return st.caches[0].Len(seq) }

// Truncate drops the cached tokens of sequence seq from position n on, in
// every layer (as when a speculative token is rejected).
func (st *State) Truncate(seq, n int) error {
	for _, c := range st.caches {
		if err := c.Truncate(seq, n); err != nil {
			return err
		}
	}
	return nil
}

// TruncateMTP does Truncate for the MTP modules' caches.
func (st *State) TruncateMTP(seq, n int) error {
	for _, c := range st.mtpCaches {
		if c.Len(seq) > n {
			if err := c.Truncate(seq, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// Infer runs new tokens of cached sequences: tokens holds each span's
// tokens one span after another. It returns the logits and the final-norm
// states of every new token.
func (m *Model) Infer(st *State, tokens []int32, spans []mla.Span) (logits, hidden dsv3.Matrix, err error) {
	n := 0
	for _, sp := range spans {
		n += sp.Len
	}
	if n != len(tokens) {
		return dsv3.Matrix{}, dsv3.Matrix{}, fmt.Errorf("deepseekv3: %d tokens for spans totalling %d", len(tokens), n)
	}
	hn, err := m.inferStates(st, tokens, spans)
	if err != nil {
		return dsv3.Matrix{}, dsv3.Matrix{}, err
	}
	lg, _ := m.Head.Forward(hn, false)
	return lg, hn, nil
}

// inferStates runs the embedding, every layer (writing the caches) and the
// final norm for new tokens of cached sequences, and returns the
// final-norm states of every token.
func (m *Model) inferStates(st *State, tokens []int32, spans []mla.Span) (dsv3.Matrix, error) {
	if err := m.Embed.CheckIDs(tokens); err != nil {
		return dsv3.Matrix{}, err
	}
	h := m.Embed.Forward(tokens)
	m.round(h)
	for i, l := range m.Layers {
		var err error
		if h, err = l.Infer(h, spans, st.caches[i], st.Path); err != nil {
			return dsv3.Matrix{}, fmt.Errorf("deepseekv3: layer %d: %w", i, err)
		}
	}
	hn, _ := m.Norm.Forward(h, false)
	m.round(hn)
	return hn, nil
}

// InferMTP runs the first MTP module for cached sequences: hidden holds
// the main model's final-norm states at the spans' positions and next the
// tokens that follow each of them (token p+1 for the state at p). It
// returns the module's logits, which predict the token after next.
func (m *Model) InferMTP(st *State, hidden dsv3.Matrix, next []int32, spans []mla.Span) (dsv3.Matrix, error) {
	if len(m.MTP) == 0 {
		return dsv3.Matrix{}, fmt.Errorf("deepseekv3: the model has no MTP module (num_nextn_predict_layers = %d, or not loaded)", m.Cfg.NumNextnPredictLayers)
	}
	mod := m.MTP[0]
	sh := m.Shared()
	x, _, err := mod.Combine(sh, hidden, next, false)
	if err != nil {
		return dsv3.Matrix{}, err
	}
	y, err := mod.Block.(*Layer).Infer(x, spans, st.mtpCaches[0], st.Path)
	if err != nil {
		return dsv3.Matrix{}, err
	}
	lg, _ := mod.Logits(sh, y, false)
	return lg, nil
}

// MTPLogits runs the first MTP module over whole sequences without a cache:
// for s.Count sequences of s.Len tokens with the main model's final-norm
// states hidden, row p of each sequence's s.Len-1 rows predicts token p+2.
func (m *Model) MTPLogits(hidden dsv3.Matrix, tokens []int32, s dsv3.Seq) (dsv3.Matrix, error) {
	if len(m.MTP) == 0 {
		return dsv3.Matrix{}, fmt.Errorf("deepseekv3: the model has no MTP module")
	}
	if s.Len < 2 {
		return dsv3.Matrix{}, fmt.Errorf("deepseekv3: MTP logits need sequences of at least 2 tokens")
	}
	lk := s.Len - 1
	h := dsv3.NewMatrix(s.Count*lk, hidden.Cols)
	ids := make([]int32, 0, s.Count*lk)
	for b := 0; b < s.Count; b++ {
		h.Slice(b*lk, (b+1)*lk).CopyFrom(hidden.Slice(b*s.Len, b*s.Len+lk))
		ids = append(ids, tokens[b*s.Len+1:(b+1)*s.Len]...)
	}
	_, lg, _, err := m.MTP[0].Forward(m.Shared(), h, ids, dsv3.Seq{Count: s.Count, Len: lk, Start: s.Start}, false)
	return lg, err
}
