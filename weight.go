package dsv3

import (
	"fmt"

	"github.com/dsv3go/dsv3/internal/gemm"
)

// Weight is an [out, in] projection weight that can multiply activations:
// y = x·Wᵀ. A float32 Matrix is a Weight; BF16Weight keeps two bytes per
// value; the fp8 package's block-quantised weights keep one. Layers hold a
// Weight so that a checkpoint loader can put any of them in place
// (see Param.Slot).
type Weight interface {
	// Dims returns the weight's shape: out rows of in values.
	Dims() (out, in int)
	// MulT sets y = x·Wᵀ, or adds it to y when acc is true. x is [M, in]
	// and y is [M, out]; a shape mismatch panics (callers check at their
	// boundary).
	MulT(y, x Matrix, acc bool)
}

// Dims returns m's shape, so that a float32 Matrix [out, in] is a Weight.
func (m Matrix) Dims() (out, in int) { return m.Rows, m.Cols }

// MulT sets y = x·mᵀ (y += x·mᵀ when acc), with m read as an [out, in]
// weight. It runs on the library's float32 GEMM over GOMAXPROCS workers.
func (m Matrix) MulT(y, x Matrix, acc bool) {
	checkMul(y, x, m.Rows, m.Cols)
	gemm.Sgemm(false, true, x.Rows, m.Rows, m.Cols, x.Data, x.Stride, m.Data, m.Stride, y.Data, y.Stride, acc, 0)
}

func checkMul(y, x Matrix, out, in int) {
	if x.Cols != in || y.Cols != out || x.Rows != y.Rows {
		panic(fmt.Sprintf("dsv3: y[%dx%d] = x[%dx%d]·Wᵀ with W [%d, %d]", y.Rows, y.Cols, x.Rows, x.Cols, out, in))
	}
}

// MatMul sets c = a·b (c += a·b when acc): a is [m, k], b [k, n], c [m, n].
// It is the input-gradient product dX = dY·W.
func MatMul(c, a, b Matrix, acc bool) {
	if a.Cols != b.Rows || c.Rows != a.Rows || c.Cols != b.Cols {
		panic(fmt.Sprintf("dsv3: MatMul c[%dx%d] = a[%dx%d]·b[%dx%d]", c.Rows, c.Cols, a.Rows, a.Cols, b.Rows, b.Cols))
	}
	gemm.Sgemm(false, false, a.Rows, b.Cols, a.Cols, a.Data, a.Stride, b.Data, b.Stride, c.Data, c.Stride, acc, 0)
}

// MatMulT sets c = a·bᵀ (c += a·bᵀ when acc): a is [m, k], b [n, k].
// It is the forward product Y = X·Wᵀ.
func MatMulT(c, a, b Matrix, acc bool) {
	if a.Cols != b.Cols || c.Rows != a.Rows || c.Cols != b.Rows {
		panic(fmt.Sprintf("dsv3: MatMulT c[%dx%d] = a[%dx%d]·b[%dx%d]ᵀ", c.Rows, c.Cols, a.Rows, a.Cols, b.Rows, b.Cols))
	}
	gemm.Sgemm(false, true, a.Rows, b.Rows, a.Cols, a.Data, a.Stride, b.Data, b.Stride, c.Data, c.Stride, acc, 0)
}

// MatTMul sets c = aᵀ·b (c += aᵀ·b when acc): a is [k, m], b [k, n].
// It is the weight-gradient product dW += dYᵀ·X.
func MatTMul(c, a, b Matrix, acc bool) {
	if a.Rows != b.Rows || c.Rows != a.Cols || c.Cols != b.Cols {
		panic(fmt.Sprintf("dsv3: MatTMul c[%dx%d] = a[%dx%d]ᵀ·b[%dx%d]", c.Rows, c.Cols, a.Rows, a.Cols, b.Rows, b.Cols))
	}
	gemm.Sgemm(true, false, a.Cols, b.Cols, a.Rows, a.Data, a.Stride, b.Data, b.Stride, c.Data, c.Stride, acc, 0)
}
