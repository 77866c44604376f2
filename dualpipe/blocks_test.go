package dualpipe

import (
	"context"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3"
)

// shiftBlock is a toy sequence block: y_t = x_t + x_{t-1}·Wᵀ within each
// sequence (x_{-1} = 0), so that the layout in dsv3.Seq matters.
type shiftBlock struct {
	W, Grad dsv3.Matrix
}

func (b *shiftBlock) shifted(x dsv3.Matrix, s dsv3.Seq) dsv3.Matrix {
	p := dsv3.NewMatrix(x.Rows, x.Cols)
	for q := 0; q < s.Count; q++ {
		for t := 1; t < s.Len; t++ {
			copy(p.Row(q*s.Len+t), x.Row(q*s.Len+t-1))
		}
	}
	return p
}

func (b *shiftBlock) Forward(x dsv3.Matrix, s dsv3.Seq, train bool) (dsv3.Matrix, dsv3.Record) {
	p := b.shifted(x, s)
	y := x.Clone()
	dsv3.MatMulT(y, p, b.W, true)
	return y, [2]any{p, s}
}

func (b *shiftBlock) Backward(rec dsv3.Record, dy dsv3.Matrix) dsv3.Matrix {
	r := rec.([2]any)
	p, s := r[0].(dsv3.Matrix), r[1].(dsv3.Seq)
	dsv3.MatTMul(b.Grad, dy, p, true)
	dp := dsv3.NewMatrix(dy.Rows, dy.Cols)
	dsv3.MatMul(dp, dy, b.W, false)
	dx := dy.Clone()
	for q := 0; q < s.Count; q++ {
		for t := 0; t+1 < s.Len; t++ {
			row, src := dx.Row(q*s.Len+t), dp.Row(q*s.Len+t+1)
			for j := range row {
				row[j] += src[j]
			}
		}
	}
	return dx
}

func (b *shiftBlock) Params() []dsv3.Param {
	return []dsv3.Param{{Name: "shift.weight", Value: b.W, Grad: b.Grad}}
}

// TestBlockStageOnExecutor runs a model of dsv3.Blocks, two per stage, on
// DualPipe: losses bit-identical to the sequential run, gradients within
// 1e-6.
func TestBlockStageOnExecutor(t *testing.T) {
	const P, N, d = 4, 8, 5
	seq := dsv3.Seq{Count: 2, Len: 3}
	rng := rand.New(rand.NewSource(50))
	weights := make([]dsv3.Matrix, 2*P)
	for i := range weights {
		weights[i] = randMatrix(rng, d, d, 0.4)
	}
	stageOf := func(st int) *BlockStage {
		var bs []dsv3.Block
		for i := 2 * st; i < 2*st+2; i++ {
			bs = append(bs, &shiftBlock{W: weights[i].Clone(), Grad: dsv3.NewMatrix(d, d)})
		}
		return Blocks(seq, 2*st, bs...)
	}
	var inputs, targets []dsv3.Matrix
	for range N {
		inputs = append(inputs, randMatrix(rng, seq.Count*seq.Len, d, 1))
		targets = append(targets, randMatrix(rng, seq.Count*seq.Len, d, 1))
	}
	loss := mseLoss(targets)

	ref := make([]*BlockStage, P)
	for st := range ref {
		ref[st] = stageOf(st)
	}
	var refLosses []float64
	for mb, x := range inputs {
		recs := make([]dsv3.Record, P)
		var err error
		for st, s := range ref {
			if x, recs[st], err = s.Forward(x); err != nil {
				t.Fatal(err)
			}
		}
		l, dy, err := loss(mb, x)
		if err != nil {
			t.Fatal(err)
		}
		refLosses = append(refLosses, l)
		for st := P - 1; st >= 0; st-- {
			if dy, _, err = ref[st].Backward(recs[st], dy, true); err != nil {
				t.Fatal(err)
			}
		}
	}

	s, err := NewDualPipe(P, N)
	if err != nil {
		t.Fatal(err)
	}
	e := &Executor{Schedule: s, Loss: loss, Chunks: make([][]Stage, P)}
	for r := range P {
		for _, st := range s.Held(r) {
			e.Chunks[r] = append(e.Chunks[r], stageOf(st))
		}
	}
	losses, err := e.Step(context.Background(), inputs)
	if err != nil {
		t.Fatal(err)
	}
	for mb := range losses {
		if math.Float64bits(losses[mb]) != math.Float64bits(refLosses[mb]) {
			t.Errorf("micro-batch %d: loss %v, sequential %v", mb, losses[mb], refLosses[mb])
		}
	}
	for st := range P {
		want := ref[st].Params()
		for _, cp := range copiesOf(e, st) {
			for i, p := range cp.Params() {
				if p.Name != want[i].Name || !strings.HasPrefix(p.Name, "layers.") {
					t.Errorf("stage %d parameter %d named %q, want %q", st, i, p.Name, want[i].Name)
				}
				if dd := maxRelDiff(p.Grad, want[i].Grad); dd > 1e-6 {
					t.Errorf("stage %d %s: gradient differs by %.3g", st, p.Name, dd)
				}
			}
		}
	}
	if got := ref[1].Params()[1].Name; got != "layers.3.shift.weight" {
		t.Errorf("stage 1's second block is named %q, want layers.3.shift.weight", got)
	}
	if _, _, err := ref[0].Forward(dsv3.NewMatrix(5, d)); err == nil {
		t.Errorf("BlockStage accepted 5 rows for a 2×3 layout")
	}
	if _, _, err := ref[0].Backward("foreign", dsv3.NewMatrix(6, d), false); err == nil {
		t.Errorf("BlockStage accepted a foreign record")
	}
}
