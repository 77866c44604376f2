package gemm

import (
	"unsafe"

	"github.com/dsv3go/dsv3/internal/parallel"
)

// smallMaxM is the largest row count of C the small-M path serves; one row
// goes through the GEMV path.
const smallMaxM = 8

// smallChunk bounds the depth of one small-M assembly call (assembly is not
// preempted): at most 4 rows of B × 8 rows of A × 4K depths, some 10 µs.
// It is a multiple of every set's lanes.
const smallChunk = 1 << 12

// minSmallPerWorker is the number of multiply-adds below which another
// small-M worker costs more (a goroutine start) than it saves.
const minSmallPerWorker = 1 << 17

// forceBlocked disables the small-M path (benchmarks compare it with the
// blocked driver through it).
var forceBlocked = false

// smallMinK is the depth below which the small-M path leaves the product to
// the blocked driver: B is then small enough that packing it is cheap, and
// the kernels' horizontal sums and the Go tail (k mod lanes) cost more than
// they save (measured on Zen 4: 8×128×128 takes 7.8 µs on the small-M path,
// 5.2 µs blocked; 6×256×256 14 µs against 17 µs). Tests lower it to cover
// the path with every size.
var smallMinK = 256

// smallKernel sets y[i*r+j] = Σ_{p<k} x[i*ldx+p]·w[j*ldw+p] for its fixed
// row counts i < m (rows of A) and j < r (rows of B); k must be a multiple
// of kernelSet.lanes.
type smallKernel func(k int, x *float32, ldx int, w *float32, ldw int, y *float32)

// smallKernels are a set's small-M kernels for one m: many takes r rows of
// B at a time, one takes a single row (the right edge).
type smallKernels struct {
	r         int
	many, one smallKernel
}

// smallM handles the forward form (A not transposed, B transposed: B is a
// weight stored [n, k]) when C has 2 to smallMaxM rows, without packing:
// each row of B is streamed once from the caller's memory and dotted with
// all m rows of A at once (m·r accumulators for r rows of B), the rows of
// B split over workers in fixed groups of r, so every element of C is
// summed in the same order whatever the worker count. It reports false when
// it does not apply (other forms, other row counts, k < smallMinK).
func smallM(ks *kernelSet, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, workers int) bool {
	if forceBlocked || transA || !transB || m < 2 || m > smallMaxM || k < smallMinK || ks.small == nil {
		return false
	}
	smallMRun(ks, m, n, k, a, lda, b, ldb, c, ldc, acc, workers)
	return true
}

// smallMRun is the small-M path proper, for any k.
func smallMRun(ks *kernelSet, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, workers int) {
	sk := ks.small[m]
	r := sk.r
	wk := parallel.Workers(workers)
	wk = max(1, min(wk, m*n*k/minSmallPerWorker))
	kv := k / ks.lanes * ks.lanes // the kernels' part; [kv, k) is the tail
	groups := (n + r - 1) / r
	parallel.For(groups, 1, wk, func(lo, hi int) {
		// Scratch declared once: calls through a func value make it
		// escape to the heap.
		var y, part [smallMaxM * 4]float32
		for g := lo; g < hi; g++ {
			j0, j1 := g*r, min(g*r+r, n)
			if j1-j0 == r {
				smallGroup(sk.many, m, r, kv, k, a, lda, b[j0*ldb:], ldb, &y, &part)
				smallStore(m, r, j0, y[:], c, ldc, acc)
				continue
			}
			for j := j0; j < j1; j++ {
				smallGroup(sk.one, m, 1, kv, k, a, lda, b[j*ldb:], ldb, &y, &part)
				smallStore(m, 1, j, y[:], c, ldc, acc)
			}
		}
	})
}

// smallGroup sets y[i*r+j] = Σ_{p<k} a[i*lda+p]·w[j*ldw+p] for i < m, j < r:
// depths [0, kv) with kern in bounded calls, the tail in Go.
func smallGroup(kern smallKernel, m, r, kv, k int, a []float32, lda int, w []float32, ldw int, y, part *[smallMaxM * 4]float32) {
	*y = [smallMaxM * 4]float32{}
	for p0 := 0; p0 < kv; p0 += smallChunk {
		kern(min(smallChunk, kv-p0), &a[p0], lda, &w[p0], ldw, &part[0])
		for i := range m * r {
			y[i] += part[i]
		}
	}
	if kv == k {
		return
	}
	for i := 0; i < m; i++ {
		x := a[i*lda+kv : i*lda+k]
		for j := 0; j < r; j++ {
			s := y[i*r+j]
			for p, v := range w[j*ldw+kv : j*ldw+k] {
				s += x[p] * v
			}
			y[i*r+j] = s
		}
	}
}

// smallStore writes (or with acc adds) the m×r block y into C's columns
// [j0, j0+r).
func smallStore(m, r, j0 int, y []float32, c []float32, ldc int, acc bool) {
	for i := 0; i < m; i++ {
		dst := c[i*ldc+j0 : i*ldc+j0+r]
		src := y[i*r : i*r+r]
		if acc {
			for j, v := range src {
				dst[j] += v
			}
		} else {
			copy(dst, src)
		}
	}
}

// goSmallKernels returns the pure-Go small-M kernels: two rows of B at a
// time, each pair of rows of A dotted with them in a 2×2 register block.
func goSmallKernels() []smallKernels {
	sk := make([]smallKernels, smallMaxM+1)
	for m := 2; m <= smallMaxM; m++ {
		sk[m] = smallKernels{
			r: 2,
			many: func(k int, x *float32, ldx int, w *float32, ldw int, y *float32) {
				goSmall(m, 2, k, x, ldx, w, ldw, y)
			},
			one: func(k int, x *float32, ldx int, w *float32, ldw int, y *float32) {
				goSmall(m, 1, k, x, ldx, w, ldw, y)
			},
		}
	}
	return sk
}

// goSmall is the pure-Go small-M kernel for m rows of A and r (1 or 2) rows
// of B.
func goSmall(m, r, k int, xp *float32, ldx int, wp *float32, ldw int, yp *float32) {
	x := unsafe.Slice(xp, (m-1)*ldx+k)
	w := unsafe.Slice(wp, (r-1)*ldw+k)
	y := unsafe.Slice(yp, m*r)
	i := 0
	if r == 2 {
		w0, w1 := w[:k], w[ldw:ldw+k]
		for ; i+2 <= m; i += 2 {
			x0, x1 := x[i*ldx:i*ldx+k], x[(i+1)*ldx:(i+1)*ldx+k]
			y[i*2], y[i*2+1], y[i*2+2], y[i*2+3] = goDot2x2(x0, x1, w0, w1)
		}
	}
	for ; i < m; i++ {
		for j := 0; j < r; j++ {
			y[i*r+j] = goDotRow(x[i*ldx:i*ldx+k], w[j*ldw:j*ldw+k])
		}
	}
}

// goDot2x2 returns the dot products x0·w0, x0·w1, x1·w0, x1·w1 (all of the
// same length), each element of the four inputs loaded once.
func goDot2x2(x0, x1, w0, w1 []float32) (s00, s01, s10, s11 float32) {
	n := len(x0)
	x1, w0, w1 = x1[:n], w0[:n], w1[:n]
	for p, a0 := range x0 {
		a1, b0, b1 := x1[p], w0[p], w1[p]
		s00 += a0 * b0
		s01 += a0 * b1
		s10 += a1 * b0
		s11 += a1 * b1
	}
	return
}
