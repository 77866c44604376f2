package dsv3

import "fmt"

// Linear is the bias-free projection y = x·Wᵀ, the only kind DeepSeek-V3
// uses. W is [out, in] as stored in the checkpoint. Its parameter is named
// "weight"; the owner prefixes it ("q_a_proj." + "weight").
type Linear struct {
	// W is the weight Forward multiplies with: a float32 Matrix for training,
	// or any Weight (BF16, FP8) for inference.
	W Weight
	// Grad is dL/dW, accumulated by Backward; empty when built for inference.
	Grad Matrix
	// Engine, when set and W is a float32 Matrix, computes the forward and
	// backward products instead of the float32 GEMM: the fp8 package's
	// training engine quantises all three GEMMs (report §3.3.1).
	Engine LinearEngine
}

// LinearEngine computes the three GEMMs of a Linear layer for training from
// its float32 master weight w [out, in].
type LinearEngine interface {
	// Forward sets y = x·wᵀ and returns what Backward needs (nil unless
	// train).
	Forward(y, x, w Matrix, train bool) Record
	// Backward sets dx = dy·w and adds dyᵀ·x to dw (dw empty: skip).
	Backward(rec Record, dy, dx, w, dw Matrix)
}

// NewLinear returns an out×in Linear with a zero float32 weight, and a
// gradient when train is true.
func NewLinear(out, in int, train bool) *Linear {
	l := &Linear{W: NewMatrix(out, in)}
	if train {
		l.Grad = NewMatrix(out, in)
	}
	return l
}

type linearRecord struct {
	x   Matrix
	eng Record
}

// Forward returns y = x·Wᵀ; x must be [tokens, in].
func (l *Linear) Forward(x Matrix, train bool) (Matrix, Record) {
	out, in := l.W.Dims()
	if x.Cols != in {
		panic(fmt.Sprintf("dsv3: Linear [%d, %d] applied to %d features", out, in, x.Cols))
	}
	y := NewMatrix(x.Rows, out)
	if w, ok := l.W.(Matrix); ok && l.Engine != nil {
		r := l.Engine.Forward(y, x, w, train)
		if !train {
			return y, nil
		}
		return y, &linearRecord{x: x, eng: r}
	}
	l.W.MulT(y, x, false)
	if !train {
		return y, nil
	}
	return y, &linearRecord{x: x}
}

// Backward returns dx = dy·W and adds dyᵀ·x to Grad. It needs a float32 W.
func (l *Linear) Backward(rec Record, dy Matrix) Matrix {
	r := rec.(*linearRecord)
	w, ok := l.W.(Matrix)
	if !ok {
		panic(fmt.Sprintf("dsv3: Linear backward through a %T weight; training needs a float32 weight", l.W))
	}
	dx := NewMatrix(dy.Rows, w.Cols)
	if l.Engine != nil {
		l.Engine.Backward(r.eng, dy, dx, w, l.Grad)
		return dx
	}
	MatMul(dx, dy, w, false)
	if !l.Grad.Empty() {
		MatTMul(l.Grad, dy, r.x, true)
	}
	return dx
}

// Params returns the weight as "weight".
func (l *Linear) Params() []Param {
	p := Param{Name: "weight", Grad: l.Grad, Slot: &l.W}
	if w, ok := l.W.(Matrix); ok {
		p.Value = w
	}
	return []Param{p}
}
