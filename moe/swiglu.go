package moe

import (
	"fmt"
	"math"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/fp8"
	"github.com/dsv3go/dsv3/internal/gemm"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// Mode says what a constructor allocates.
type Mode int

const (
	// Inference allocates no projection weights: every Linear's W is nil
	// until a loader stores a weight (float32, BF16 or FP8) through its
	// Param.Slot. Forward reports a missing weight as an error.
	Inference Mode = iota
	// Float32 allocates zero float32 weights without gradients.
	Float32
	// Training allocates zero float32 weights and their gradients.
	Training
)

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case Inference:
		return "Inference"
	case Float32:
		return "Float32"
	case Training:
		return "Training"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

func newLinear(out, in int, mode Mode) *dsv3.Linear {
	if mode == Inference {
		return &dsv3.Linear{}
	}
	return dsv3.NewLinear(out, in, mode == Training)
}

// SwiGLU is DeepSeek-V3's feed-forward network,
//
//	FFN(x) = down_proj(silu(gate_proj(x)) ⊙ up_proj(x)),  silu(a) = a·sigmoid(a),
//
// used for the dense MLP of the first first_k_dense_replace layers (width
// intermediate_size), for each routed expert and for the shared experts
// (width n_shared_experts × moe_intermediate_size, stored as one SwiGLU as
// the checkpoint does). Its parameters are "gate_proj.weight" [inter,
// hidden], "up_proj.weight" [inter, hidden] and "down_proj.weight" [hidden,
// inter]. Each projection multiplies through its Linear's Weight, so it may
// be float32, BF16 or an fp8 block-quantised weight; training needs float32
// weights (and honours a Linear's Engine, such as fp8's training engine).
type SwiGLU struct {
	Gate, Up, Down *dsv3.Linear
	// Workers bounds the goroutines of its float32 GEMMs (0: GOMAXPROCS).
	Workers int
}

// NewSwiGLU returns a SwiGLU of the given widths, allocated as mode says.
func NewSwiGLU(hidden, inter int, mode Mode) (*SwiGLU, error) {
	if hidden <= 0 || inter <= 0 {
		return nil, fmt.Errorf("moe: SwiGLU hidden size %d and intermediate size %d must be positive", hidden, inter)
	}
	if mode < Inference || mode > Training {
		return nil, fmt.Errorf("moe: unknown %v", mode)
	}
	return &SwiGLU{Gate: newLinear(inter, hidden, mode), Up: newLinear(inter, hidden, mode), Down: newLinear(hidden, inter, mode)}, nil
}

// Params returns gate_proj.weight, up_proj.weight and down_proj.weight.
func (f *SwiGLU) Params() []dsv3.Param {
	var ps []dsv3.Param
	for _, p := range []struct {
		name string
		l    *dsv3.Linear
	}{{"gate_proj.", f.Gate}, {"up_proj.", f.Up}, {"down_proj.", f.Down}} {
		ps = append(ps, dsv3.PrefixParams(p.name, p.l.Params())...)
	}
	return ps
}

// Check returns an error naming (with prefix) a projection weight that is
// missing or whose shape disagrees with the others.
func (f *SwiGLU) Check(prefix string) error {
	if f.Gate == nil || f.Up == nil || f.Down == nil {
		return fmt.Errorf("moe: %sgate_proj, up_proj or down_proj is nil", prefix)
	}
	for _, p := range []struct {
		name string
		l    *dsv3.Linear
	}{{"gate_proj", f.Gate}, {"up_proj", f.Up}, {"down_proj", f.Down}} {
		if p.l.W == nil {
			return fmt.Errorf("moe: %s%s.weight is not set (fill it through Params()' Slot)", prefix, p.name)
		}
	}
	inter, hidden := f.Gate.W.Dims()
	if o, i := f.Up.W.Dims(); o != inter || i != hidden {
		return fmt.Errorf("moe: %sup_proj.weight is [%d, %d], want [%d, %d] as gate_proj", prefix, o, i, inter, hidden)
	}
	if o, i := f.Down.W.Dims(); o != hidden || i != inter {
		return fmt.Errorf("moe: %sdown_proj.weight is [%d, %d], want [%d, %d]", prefix, o, i, hidden, inter)
	}
	return nil
}

// dims returns (hidden, inter); the weights must be set.
func (f *SwiGLU) dims() (hidden, inter int) {
	inter, hidden = f.Gate.W.Dims()
	return hidden, inter
}

// ffnRecord is what backward needs from one SwiGLU forward.
type ffnRecord struct {
	x, gate, up, h dsv3.Matrix
	rg, ru, rd     dsv3.Record // engine records
}

// Apply is Forward with errors instead of panics: it returns y [T, hidden]
// for x [T, hidden], and with train the record for Backward.
func (f *SwiGLU) Apply(x dsv3.Matrix, train bool) (dsv3.Matrix, dsv3.Record, error) {
	if err := f.Check(""); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	hidden, _ := f.dims()
	if err := x.CheckShape("moe: SwiGLU input", x.Rows, hidden); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	y := dsv3.NewMatrix(x.Rows, hidden)
	rec := f.forwardInto(y, x, false, train, f.Workers)
	if !train {
		return y, nil, nil
	}
	return y, rec, nil
}

// Forward implements dsv3.Layer: Apply, panicking on bad input (a missing
// weight or a wrong width).
func (f *SwiGLU) Forward(x dsv3.Matrix, train bool) (dsv3.Matrix, dsv3.Record) {
	y, rec, err := f.Apply(x, train)
	if err != nil {
		panic(err)
	}
	return y, rec
}

// Backward implements dsv3.Layer: it returns dL/dx and adds the weight
// gradients (for the Linears that have one). It needs float32 weights.
func (f *SwiGLU) Backward(rec dsv3.Record, dy dsv3.Matrix) dsv3.Matrix {
	r, ok := rec.(*ffnRecord)
	if !ok || r == nil {
		panic(fmt.Sprintf("moe: SwiGLU.Backward needs the record of a training Forward, got %T", rec))
	}
	hidden, _ := f.dims()
	dx := dsv3.NewMatrix(dy.Rows, hidden)
	if err := f.backwardInto(dx, dy, r, false, f.Workers); err != nil {
		panic(err)
	}
	return dx
}

// forwardInto sets y = FFN(x) (adds it when acc). The weights must be set
// and the shapes right.
func (f *SwiGLU) forwardInto(y, x dsv3.Matrix, acc, train bool, workers int) *ffnRecord {
	_, inter := f.dims()
	n := x.Rows
	gate, up := dsv3.NewMatrix(n, inter), dsv3.NewMatrix(n, inter)
	r := &ffnRecord{x: x, gate: gate, up: up}
	r.rg = project(f.Gate, gate, x, false, train, workers)
	r.ru = project(f.Up, up, x, false, train, workers)
	h := dsv3.NewMatrix(n, inter)
	swiglu(h.Data, gate.Data, up.Data)
	r.h = h
	r.rd = project(f.Down, y, h, acc, train, workers)
	if !train {
		return nil
	}
	return r
}

// backwardInto sets dx = dL/dx (adds it when acc) for output gradient dy
// and adds the weight gradients.
func (f *SwiGLU) backwardInto(dx, dy dsv3.Matrix, r *ffnRecord, acc bool, workers int) error {
	n := dy.Rows
	_, inter := f.dims()
	dh := dsv3.NewMatrix(n, inter)
	if err := projectBack(f.Down, r.rd, dy, dh, r.h, false, workers); err != nil {
		return err
	}
	// dh becomes d gate in place; d up gets its own matrix.
	dup := dsv3.NewMatrix(n, inter)
	swigluBack(dh.Data, dup.Data, r.gate.Data, r.up.Data)
	if err := projectBack(f.Gate, r.rg, dh, dx, r.x, acc, workers); err != nil {
		return err
	}
	return projectBack(f.Up, r.ru, dup, dx, r.x, true, workers)
}

// swiglu sets h = silu(g)·u.
func swiglu(h, g, u []float32) {
	_ = h[:len(g)]
	_ = u[:len(g)]
	for i, a := range g {
		h[i] = a / (1 + float32(math.Exp(-float64(a)))) * u[i]
	}
}

// swigluBack turns dh into dL/dg in place and writes dL/du into du:
// dL/dg = dh·u·σ(g)(1 + g(1-σ(g))), dL/du = dh·silu(g).
func swigluBack(dh, du, g, u []float32) {
	_ = dh[:len(g)]
	_ = du[:len(g)]
	_ = u[:len(g)]
	for i, a := range g {
		s := float32(1 / (1 + math.Exp(-float64(a))))
		d := dh[i]
		du[i] = d * a * s
		dh[i] = d * u[i] * s * (1 + a*(1-s))
	}
}

// project sets y = x·Wᵀ (adds when acc) through l's engine, its float32
// weight on the library GEMM with the given workers, or its Weight.
func project(l *dsv3.Linear, y, x dsv3.Matrix, acc, train bool, workers int) dsv3.Record {
	w, isF32 := l.W.(dsv3.Matrix)
	switch {
	case isF32 && l.Engine != nil:
		if !acc {
			return l.Engine.Forward(y, x, w, train)
		}
		t := dsv3.NewMatrix(y.Rows, y.Cols)
		r := l.Engine.Forward(t, x, w, train)
		addInto(y, t)
		return r
	case isF32:
		gemm.Sgemm(false, true, x.Rows, w.Rows, w.Cols, x.Data, x.Stride, w.Data, w.Stride, y.Data, y.Stride, acc, workers)
	default:
		withWorkers(l.W, workers).MulT(y, x, acc)
	}
	return nil
}

// withWorkers returns w limited to the given worker count when it is an
// fp8 weight that carries one (a shallow copy: the codes are shared), so
// that experts running side by side do not each spread over every core.
func withWorkers(w dsv3.Weight, workers int) dsv3.Weight {
	switch b := w.(type) {
	case *fp8.BlockWeight:
		if b.Workers == 0 || b.Workers > workers {
			c := *b
			c.Workers = workers
			return &c
		}
	case fp8.ActQuant:
		if b.W != nil && (b.W.Workers == 0 || b.W.Workers > workers) {
			c := *b.W
			c.Workers = workers
			return fp8.ActQuant{W: &c, Scale: b.Scale}
		}
	}
	return w
}

// projectBack sets dx = dy·W (adds when acc) and adds dyᵀ·x to l.Grad.
func projectBack(l *dsv3.Linear, rec dsv3.Record, dy, dx, x dsv3.Matrix, acc bool, workers int) error {
	w, ok := l.W.(dsv3.Matrix)
	if !ok {
		return fmt.Errorf("moe: backward through a %T weight; training needs float32 weights", l.W)
	}
	if l.Engine != nil {
		if !acc {
			l.Engine.Backward(rec, dy, dx, w, l.Grad)
			return nil
		}
		t := dsv3.NewMatrix(dx.Rows, dx.Cols)
		l.Engine.Backward(rec, dy, t, w, l.Grad)
		addInto(dx, t)
		return nil
	}
	gemm.Sgemm(false, false, dy.Rows, w.Cols, w.Rows, dy.Data, dy.Stride, w.Data, w.Stride, dx.Data, dx.Stride, acc, workers)
	if !l.Grad.Empty() {
		g := l.Grad
		gemm.Sgemm(true, false, dy.Cols, x.Cols, dy.Rows, dy.Data, dy.Stride, x.Data, x.Stride, g.Data, g.Stride, true, workers)
	}
	return nil
}

// addInto adds src to dst (same shape).
func addInto(dst, src dsv3.Matrix) {
	for i := 0; i < dst.Rows; i++ {
		d, s := dst.Row(i), src.Row(i)
		for j, v := range s {
			d[j] += v
		}
	}
}

// workersOf resolves a worker count (0: GOMAXPROCS).
func workersOf(w int) int { return parallel.Workers(w) }
