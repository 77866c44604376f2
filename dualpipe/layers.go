package dualpipe

import (
	"fmt"
	"strconv"

	"github.com/dsv3go/dsv3"
)

// LayerStage is a Stage made of dsv3 layers applied in order. Its backward
// with deferred weight gradients splits every float32 dsv3.Linear (no
// LinearEngine, with a gradient): the input gradient dX = dY·W now, the
// weight gradient dW += dYᵀ·X in BackwardWeight. Other layers, and Linear
// layers it cannot split, run their full backward at once.
type LayerStage struct {
	Layers []dsv3.Layer
}

// Layers returns a LayerStage of layers.
func Layers(layers ...dsv3.Layer) *LayerStage {
	return &LayerStage{Layers: layers}
}

type layerRecord struct {
	xs   []dsv3.Matrix // input of every layer
	recs []dsv3.Record
}

// deferredLinear is the weight-gradient product left for BackwardWeight.
type deferredLinear struct {
	l     *dsv3.Linear
	dy, x dsv3.Matrix
}

// Forward runs the layers in training mode.
func (s *LayerStage) Forward(x dsv3.Matrix) (y dsv3.Matrix, rec dsv3.Record, err error) {
	defer recoverTo(&err, "forward")
	r := &layerRecord{xs: make([]dsv3.Matrix, len(s.Layers)), recs: make([]dsv3.Record, len(s.Layers))}
	for i, l := range s.Layers {
		r.xs[i] = x
		x, r.recs[i] = l.Forward(x, true)
	}
	return x, r, nil
}

// Backward runs the layers' backward in reverse order. With deferW it
// returns the split Linear layers' weight-gradient work.
func (s *LayerStage) Backward(rec dsv3.Record, dy dsv3.Matrix, deferW bool) (dx dsv3.Matrix, w dsv3.Record, err error) {
	defer recoverTo(&err, "backward")
	r, ok := rec.(*layerRecord)
	if !ok || len(r.recs) != len(s.Layers) {
		return dsv3.Matrix{}, nil, fmt.Errorf("LayerStage backward: record %T is not one of this stage's forward records", rec)
	}
	var work []deferredLinear
	for i := len(s.Layers) - 1; i >= 0; i-- {
		if lin, wt, ok := splittable(s.Layers[i]); ok && deferW {
			g := dsv3.NewMatrix(dy.Rows, wt.Cols)
			dsv3.MatMul(g, dy, wt, false)
			work = append(work, deferredLinear{lin, dy, r.xs[i]})
			dy = g
			continue
		}
		dy = s.Layers[i].Backward(r.recs[i], dy)
	}
	if len(work) == 0 {
		return dy, nil, nil
	}
	return dy, work, nil
}

// splittable returns l as a Linear whose backward can be split.
func splittable(l dsv3.Layer) (*dsv3.Linear, dsv3.Matrix, bool) {
	lin, ok := l.(*dsv3.Linear)
	if !ok || lin.Engine != nil || lin.Grad.Empty() {
		return nil, dsv3.Matrix{}, false
	}
	w, ok := lin.W.(dsv3.Matrix)
	return lin, w, ok
}

// BackwardWeight accumulates the deferred weight gradients dW += dYᵀ·X.
func (s *LayerStage) BackwardWeight(w dsv3.Record) (err error) {
	defer recoverTo(&err, "weight gradient")
	work, ok := w.([]deferredLinear)
	if !ok {
		return fmt.Errorf("LayerStage weight gradient: record %T is not this stage's deferred work", w)
	}
	for _, d := range work {
		dsv3.MatTMul(d.l.Grad, d.dy, d.x, true)
	}
	return nil
}

// Params returns the layers' parameters named "<index>.<name>", as a
// PyTorch nn.Sequential names them.
func (s *LayerStage) Params() []dsv3.Param {
	var ps []dsv3.Param
	for i, l := range s.Layers {
		ps = append(ps, dsv3.PrefixParams(strconv.Itoa(i)+".", l.Params())...)
	}
	return ps
}

// recoverTo turns a panic of a layer (a shape mismatch) into an error.
func recoverTo(err *error, what string) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("LayerStage %s: %v", what, p)
	}
}

// BlockStage is a Stage made of dsv3 blocks (whole decoder layers) applied
// in order to micro-batches of the shape Seq describes. Blocks have no
// split backward, so a backward with deferred weight gradients runs in full
// and leaves nothing for BackwardWeight.
type BlockStage struct {
	Blocks []dsv3.Block
	// Seq is the layout of every micro-batch: Count sequences of Len rows.
	Seq dsv3.Seq
	// FirstLayer is the model-wide index of Blocks[0], for parameter names.
	FirstLayer int
}

// Blocks returns a BlockStage of blocks, the first of which is layer
// firstLayer of the model, for micro-batches laid out as seq.
func Blocks(seq dsv3.Seq, firstLayer int, blocks ...dsv3.Block) *BlockStage {
	return &BlockStage{Blocks: blocks, Seq: seq, FirstLayer: firstLayer}
}

// Forward runs the blocks in training mode; x must have Seq.Count·Seq.Len
// rows.
func (s *BlockStage) Forward(x dsv3.Matrix) (y dsv3.Matrix, rec dsv3.Record, err error) {
	defer recoverTo(&err, "forward")
	if want := s.Seq.Count * s.Seq.Len; x.Rows != want {
		return dsv3.Matrix{}, nil, fmt.Errorf("BlockStage forward: input has %d rows, Seq %d×%d wants %d", x.Rows, s.Seq.Count, s.Seq.Len, want)
	}
	recs := make([]dsv3.Record, len(s.Blocks))
	for i, b := range s.Blocks {
		x, recs[i] = b.Forward(x, s.Seq, true)
	}
	return x, recs, nil
}

// Backward runs the blocks' backward in reverse order; deferW is ignored
// (a block's backward is not split) and no work is returned.
func (s *BlockStage) Backward(rec dsv3.Record, dy dsv3.Matrix, deferW bool) (dx dsv3.Matrix, w dsv3.Record, err error) {
	defer recoverTo(&err, "backward")
	recs, ok := rec.([]dsv3.Record)
	if !ok || len(recs) != len(s.Blocks) {
		return dsv3.Matrix{}, nil, fmt.Errorf("BlockStage backward: record %T is not one of this stage's forward records", rec)
	}
	for i := len(s.Blocks) - 1; i >= 0; i-- {
		dy = s.Blocks[i].Backward(recs[i], dy)
	}
	return dy, nil, nil
}

// BackwardWeight does nothing: Backward never defers work.
func (s *BlockStage) BackwardWeight(w dsv3.Record) error {
	if w != nil {
		return fmt.Errorf("BlockStage weight gradient: unexpected record %T", w)
	}
	return nil
}

// Params returns the blocks' parameters named "layers.<FirstLayer+i>.<name>",
// the Hugging Face names without the model's "model." prefix.
func (s *BlockStage) Params() []dsv3.Param {
	var ps []dsv3.Param
	for i, b := range s.Blocks {
		ps = append(ps, dsv3.PrefixParams("layers."+strconv.Itoa(s.FirstLayer+i)+".", b.Params())...)
	}
	return ps
}
