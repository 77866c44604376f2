package dsv3

import "fmt"

// Embedding maps token ids to rows of a [vocab, hidden] table
// (embed_tokens). Its parameter is named "weight".
type Embedding struct {
	Weight Matrix
	Grad   Matrix // empty for inference
}

// NewEmbedding returns a zero vocab×hidden embedding, with a gradient when
// train is true.
func NewEmbedding(vocab, hidden int, train bool) *Embedding {
	e := &Embedding{Weight: NewMatrix(vocab, hidden)}
	if train {
		e.Grad = NewMatrix(vocab, hidden)
	}
	return e
}

// CheckIDs returns an error naming the first id outside [0, vocab).
func (e *Embedding) CheckIDs(ids []int32) error {
	for i, id := range ids {
		if id < 0 || int(id) >= e.Weight.Rows {
			return fmt.Errorf("dsv3: token %d at position %d is outside the vocabulary [0, %d)", id, i, e.Weight.Rows)
		}
	}
	return nil
}

// Forward returns the [len(ids), hidden] rows of the table. Ids must be in
// range (see CheckIDs).
func (e *Embedding) Forward(ids []int32) Matrix {
	y := NewMatrix(len(ids), e.Weight.Cols)
	for i, id := range ids {
		copy(y.Row(i), e.Weight.Row(int(id)))
	}
	return y
}

// Backward adds each row of dy to the gradient row of its token.
func (e *Embedding) Backward(ids []int32, dy Matrix) {
	if e.Grad.Empty() {
		return
	}
	for i, id := range ids {
		g := e.Grad.Row(int(id))
		for j, v := range dy.Row(i) {
			g[j] += v
		}
	}
}

// Params returns the table as "weight".
func (e *Embedding) Params() []Param {
	return []Param{{Name: "weight", Value: e.Weight, Grad: e.Grad}}
}
