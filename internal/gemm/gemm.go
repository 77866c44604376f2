package gemm

import "fmt"

// Sgemm computes C[m,n] = op(A)[m,k]·op(B)[k,n], or adds it to C when acc is
// true. With transA, A is stored k×m (row stride lda >= m), else m×k
// (lda >= k). With transB, B is stored n×k (ldb >= k), else k×n (ldb >= n).
// C is m×n with row stride ldc >= n. workers <= 0 means GOMAXPROCS.
//
// Sgemm panics if a slice is too short for its declared shape: callers
// validate user input at their own boundary.
func Sgemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, workers int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	if m == 0 || n == 0 {
		return
	}
	checkOperand("A", transA, m, k, a, lda)
	checkOperand("B", transB, k, n, b, ldb)
	checkOperand("C", false, m, n, c, ldc)
	if k == 0 {
		if !acc {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	run(active, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, acc, workers)
}

// run computes the validated product with kernel set ks: the GEMV path when
// C is a single row or column, the small-M path for the forward form with
// 2 to smallMaxM rows, else the blocked driver. Tests call it with
// every set the CPU supports.
func run(ks *kernelSet, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, workers int) {
	if gemv(ks, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, acc, workers) {
		return
	}
	if smallM(ks, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, acc, workers) {
		return
	}
	blocked(ks, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, acc, workers)
}

// checkOperand panics unless s holds an r×c matrix (stored c×r when trans)
// with row stride ld.
func checkOperand(name string, trans bool, r, c int, s []float32, ld int) {
	if trans {
		r, c = c, r
	}
	if r == 0 || c == 0 {
		return
	}
	if ld < c {
		panic(fmt.Sprintf("gemm: %s row stride %d < %d columns", name, ld, c))
	}
	if need := (r-1)*ld + c; len(s) < need {
		panic(fmt.Sprintf("gemm: %s has %d elements, needs %d for %dx%d with stride %d", name, len(s), need, r, c, ld))
	}
}

// Kernel names the kernel set Sgemm dispatches to on this machine:
// "avx512", "avx2" or "go" (pure Go, also under the purego build tag).
func Kernel() string { return active.name }
