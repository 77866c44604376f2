package fp8

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/fp8x"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// Linear is a dsv3.LinearEngine that computes the three GEMMs of a linear
// layer in FP8, as DeepSeek-V3 trains (report §3.3.1, Figure 6), from the
// layer's float32 master weight W [out, in]:
//
//	Fprop  y  = Q(x)·Q(W)ᵀ      x in 1x128 tiles along in, W in 128x128 blocks
//	Dgrad  dx = Q(dy)·Q(W)      dy in 1x128 tiles along out; W's blocks transposed
//	Wgrad  dW += Q(dyᵀ)·Q(xᵀ)ᵀ  dyᵀ and xᵀ in 1x128 tiles along the tokens
//
// Every GEMM is the block-scaled product of MulT (float32 sums per 128-wide
// K-block, promoted with both scales into a float32 accumulator); gradients
// and master weights stay float32. The activations of Wgrad are re-tiled:
// quantised along the token dimension, the reduction dimension of that GEMM
// (the report's 128x1 tiles of x and dy). Because 128x128 blocks are square,
// Dgrad's transposed weight reuses Fprop's codes and scales.
//
// Error: every quantised element is within u = 2^-4 of its value
// relatively (3 mantissa bits, round to nearest), or 2^-10·s absolutely in
// the subnormal range of a tile or block with scale s, so each output of
// each GEMM is within
//
//	Σ_k (u|a|+δa)|b| + (|a|(1+u)+δa)(u|b|+δb),   δ = 2^-10·s,
//
// of the float32 product, plus float32 summation error; the tests check
// this bound element by element. On random data the relative error of y,
// dx and dW is about 3.5% (Frobenius norm).
//
// Set it as a dsv3.Linear's Engine (with a float32 weight). The zero value
// uses float32 scales everywhere and GOMAXPROCS workers.
type Linear struct {
	// InputScale is the scale format of Fprop's input tiles; the report
	// uses power-of-two scales for the inputs of the linear after
	// attention and of the MoE's down-projection (after SwiGLU).
	InputScale ScaleFormat
	// GradScale is the scale format of the output-gradient tiles.
	GradScale ScaleFormat
	// WeightScale is the scale format of the weight blocks.
	WeightScale ScaleFormat
	// Workers bounds the goroutines of each GEMM; 0 means GOMAXPROCS.
	Workers int
}

// linearRecord is what Backward needs from Forward: the float32 input
// (re-tiled for Wgrad) and the quantised weight (transposed for Dgrad).
type linearRecord struct {
	x dsv3.Matrix
	w *BlockWeight
}

// Forward sets y = Q(x)·Q(w)ᵀ and, when train, returns the record Backward
// needs. Shapes follow dsv3.Linear: x [M, in], w [out, in], y [M, out]; a
// mismatch panics (dsv3.Linear checks at its boundary).
func (e *Linear) Forward(y, x, w dsv3.Matrix, train bool) dsv3.Record {
	checkMul(y, x, w.Rows, w.Cols)
	wq := &BlockWeight{Out: w.Rows, In: w.Cols, Codes: make([]E4M3, w.Rows*w.Cols), ScaleInv: make([]float32, blocks(w.Rows)*blocks(w.Cols))}
	wq.quantize(w, e.WeightScale)
	xq := NewTiles(x.Rows, x.Cols)
	xq.quantize(x, e.InputScale)
	fp8x.GemmQ(x.Rows, w.Rows, w.Cols, xq.q(), wq.q(), y.Data, y.Stride, false, e.Workers)
	if !train {
		return nil
	}
	return &linearRecord{x: x, w: wq}
}

// Backward sets dx = Q(dy)·Q(w) and adds Q(dyᵀ)·Q(xᵀ)ᵀ to dw (skipped when
// dw is empty): dy [M, out], dx [M, in], dw [out, in].
func (e *Linear) Backward(rec dsv3.Record, dy, dx, w, dw dsv3.Matrix) {
	r, ok := rec.(*linearRecord)
	if !ok {
		panic(fmt.Sprintf("fp8: Linear.Backward with a %T record, want one from fp8.Linear.Forward", rec))
	}
	out, in, m := w.Rows, w.Cols, dy.Rows
	if dy.Cols != out || dx.Rows != m || dx.Cols != in || r.x.Rows != m || r.w.Out != out || r.w.In != in {
		panic(fmt.Sprintf("fp8: Linear.Backward: dy %dx%d, dx %dx%d, x %dx%d for W [%d, %d]", dy.Rows, dy.Cols, dx.Rows, dx.Cols, r.x.Rows, r.x.Cols, out, in))
	}
	// Dgrad: dx[M, in] = dy·W, i.e. A·Bᵀ with A = dy and B = Wᵀ [in, out].
	dyq := NewTiles(m, out)
	dyq.quantize(dy, e.GradScale)
	wt := transposeBlocks(r.w)
	fp8x.GemmQ(m, in, out, dyq.q(), wt.q(), dx.Data, dx.Stride, false, e.Workers)
	if dw.Empty() {
		return
	}
	if dw.Rows != out || dw.Cols != in {
		panic(fmt.Sprintf("fp8: Linear.Backward: dW %dx%d for W [%d, %d]", dw.Rows, dw.Cols, out, in))
	}
	// Wgrad: dW[out, in] += dyᵀ·x, i.e. A·Bᵀ with A = dyᵀ [out, M] and
	// B = xᵀ [in, M], both in 1x128 tiles along the tokens.
	dyt := NewTiles(out, m)
	dyt.quantize(transpose(dy), e.GradScale)
	xt := NewTiles(in, m)
	xt.quantize(transpose(r.x), e.InputScale)
	fp8x.GemmQ(out, in, m, dyt.q(), xt.q(), dw.Data, dw.Stride, true, e.Workers)
}

// transpose returns a contiguous copy of mᵀ.
func transpose(m dsv3.Matrix) dsv3.Matrix {
	t := dsv3.NewMatrix(m.Cols, m.Rows)
	const b = 32
	rows, cols := m.Rows, m.Cols
	parallel.For((cols+b-1)/b, 1, 0, func(lo, hi int) {
		for jb := lo; jb < hi; jb++ {
			j0, j1 := jb*b, min(jb*b+b, cols)
			for i0 := 0; i0 < rows; i0 += b {
				i1 := min(i0+b, rows)
				for i := i0; i < i1; i++ {
					src := m.Data[i*m.Stride+j0 : i*m.Stride+j1]
					dst := t.Data[j0*rows+i:]
					for k, v := range src {
						dst[k*rows] = v
					}
				}
			}
		}
	})
	return t
}

// transposeBlocks returns wᵀ as a block weight: codes transposed, and the
// block scales transposed with them (a square block keeps its scale).
func transposeBlocks(w *BlockWeight) *BlockWeight {
	t := &BlockWeight{Out: w.In, In: w.Out, Codes: make([]E4M3, len(w.Codes)), ScaleInv: make([]float32, len(w.ScaleInv))}
	const b = 64
	for i0 := 0; i0 < w.Out; i0 += b {
		for j0 := 0; j0 < w.In; j0 += b {
			for i := i0; i < min(i0+b, w.Out); i++ {
				for j := j0; j < min(j0+b, w.In); j++ {
					t.Codes[j*w.Out+i] = w.Codes[i*w.In+j]
				}
			}
		}
	}
	bo, bi := blocks(w.Out), blocks(w.In)
	for i := 0; i < bo; i++ {
		for j := 0; j < bi; j++ {
			t.ScaleInv[j*bo+i] = w.ScaleInv[i*bi+j]
		}
	}
	return t
}
