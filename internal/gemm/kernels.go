package gemm

// microKernel computes one register tile of C from packed panels:
//
//	C[i,j] (+)= Σ_{p<k} a[p*r+i]·b[p*nr+j],  i < r, j < nr,
//
// with C[i,j] at c[i*ldc+j]; acc != 0 adds to C, acc == 0 overwrites it. The
// row count r is fixed per function (kernelSet.micro[r]); nr is the set's
// panel width. One call does k·r·nr multiply-adds, k <= kernelSet.kc, so an
// assembly call stays short (assembly is not preempted).
type microKernel func(k int, a, b, c *float32, ldc int, acc int)

// dotKernel sets y[i] = Σ_{p<k} x[p]·w[i*ldw+p] for its fixed row count i;
// k must be a multiple of kernelSet.lanes.
type dotKernel func(k int, x, w *float32, ldw int, y *float32)

// axpyKernel adds Σ_i x[i]·w[i*ldw+j] to y[j] for j < n over its fixed row
// count i; n must be a multiple of kernelSet.lanes.
type axpyKernel func(n int, x, w *float32, ldw int, y *float32)

// kernelSet is one implementation of the inner loops (AVX-512, AVX2+FMA or
// pure Go) together with the blocking it is tuned for. The driver in
// blocked.go and gemv.go is shared by all sets.
type kernelSet struct {
	name string
	// mr is the largest register-tile row count; micro[r] handles r rows,
	// 1 <= r <= mr. nr is the register-tile (and packed B panel) width.
	mr, nr int
	micro  []microKernel
	// kc is the depth of one packed block (the K slice one micro-kernel
	// call covers) and nc the width of one packed B block; see doc.go.
	kc, nc int
	// lanes is the vector width the GEMV kernels require of k (dot) and n
	// (axpy); the driver handles the remainder in Go.
	lanes int
	// packRows is the transposing pack and packCols the copying one (see
	// pack.go).
	packRows   func(dst, src []float32, ld, rows, k, stride int)
	packCols   func(dst, src []float32, ld, cols, k, stride int)
	dot4, dot1 dotKernel
	axpy4      axpyKernel
	axpy1      axpyKernel
	// small[m] are the small-M forward kernels for 2 <= m <= smallMaxM
	// rows of A (see small.go); nil disables that path.
	small []smallKernels
}

// kernelSets lists every set this CPU can run, fastest first; the first is
// the one Sgemm uses. It always ends with the pure-Go set.
var kernelSets = append(archKernelSets(), goKernels())

// active is the set Sgemm dispatches to, chosen once at init.
var active = kernelSets[0]
