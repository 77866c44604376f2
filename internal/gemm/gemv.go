package gemm

import "github.com/dsv3go/dsv3/internal/parallel"

// minGemvPerWorker is the number of matrix elements a GEMV worker should
// stream at least (a goroutine start costs about a microsecond).
const minGemvPerWorker = 1 << 15

// gemvChunk bounds the vector length of one GEMV assembly call (assembly is
// not preempted): 4 rows of 16K floats stream in tens of microseconds. It
// is a multiple of every set's lanes.
const gemvChunk = 1 << 14

// gemv handles C with a single row (m == 1) or a single column (n == 1)
// without packing: the matrix operand is streamed once, straight from the
// caller's memory. It reports false when neither applies.
func gemv(ks *kernelSet, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, workers int) bool {
	switch {
	case m == 1:
		// c[0, j] = Σ_p x[p]·op(B)[p, j] with x = op(A)[0, :].
		x, release := vector(a, transA, lda, k)
		defer release()
		if transB { // op(B)[p, j] = b[j*ldb+p]: one dot product per row of B.
			dotRows(ks, k, x, b, ldb, n, c, 1, acc, workers)
		} else { // op(B)[p, j] = b[p*ldb+j]: a combination of the rows of B.
			combineRows(ks, k, x, b, ldb, n, c, 1, acc, workers)
		}
	case n == 1:
		// c[i, 0] = Σ_p op(A)[i, p]·y[p] with y = op(B)[:, 0].
		y, release := vector(b, !transB, ldb, k)
		defer release()
		if !transA { // op(A)[i, p] = a[i*lda+p]: dot products with rows of A.
			dotRows(ks, k, y, a, lda, m, c, ldc, acc, workers)
		} else { // op(A)[i, p] = a[p*lda+i]: a combination of the rows of A.
			combineRows(ks, k, y, a, lda, m, c, ldc, acc, workers)
		}
	default:
		return false
	}
	return true
}

// vector returns the k elements of a vector stored contiguously (strided
// false: v[0:k]) or with stride ld (strided true: v[p*ld]), gathering the
// strided case into a pooled buffer.
func vector(v []float32, strided bool, ld, k int) ([]float32, func()) {
	if !strided || ld == 1 {
		return v[:k], func() {}
	}
	bf := getBuffer(k)
	for p := range bf.f {
		bf.f[p] = v[p*ld]
	}
	return bf.f, func() { putBuffer(bf) }
}

// dotRows sets (or with acc adds) out[j*os] = Σ_{p<k} x[p]·w[j*ldw+p] for
// j < rows, splitting the rows over workers.
func dotRows(ks *kernelSet, k int, x, w []float32, ldw, rows int, out []float32, os int, acc bool, workers int) {
	wk := parallel.Workers(workers)
	wk = max(1, min(wk, rows*k/minGemvPerWorker))
	kv := k / ks.lanes * ks.lanes // the kernels' part; x[kv:k] is the tail
	parallel.For((rows+3)/4, 1, wk, func(lo, hi int) {
		// Scratch for the kernels, declared once: calls through a func
		// value make it escape to the heap.
		var y, part [4]float32
		for j := 4 * lo; j < min(4*hi, rows); {
			n := 4
			if rows-j < 4 {
				n = 1
			}
			y = [4]float32{}
			// Bounded assembly calls: at most gemvChunk depths at a time.
			for p0 := 0; p0 < kv; p0 += gemvChunk {
				kn := min(gemvChunk, kv-p0)
				if n == 4 {
					ks.dot4(kn, &x[p0], &w[j*ldw+p0], ldw, &part[0])
				} else {
					ks.dot1(kn, &x[p0], &w[j*ldw+p0], ldw, &part[0])
				}
				for i := range y {
					y[i] += part[i]
				}
			}
			for i := 0; i < n; i++ {
				s := y[i]
				row := w[(j+i)*ldw : (j+i)*ldw+k]
				for p := kv; p < k; p++ {
					s += x[p] * row[p]
				}
				if acc {
					out[(j+i)*os] += s
				} else {
					out[(j+i)*os] = s
				}
			}
			j += n
		}
	})
}

// combineRows sets (or with acc adds) out[j*os] = Σ_{p<k} x[p]·w[p*ldw+j]
// for j < cols, splitting the columns over workers; each worker streams its
// columns of w four rows at a time.
func combineRows(ks *kernelSet, k int, x, w []float32, ldw, cols int, out []float32, os int, acc bool, workers int) {
	wk := parallel.Workers(workers)
	wk = max(1, min(wk, cols*k/minGemvPerWorker))
	chunks := (cols + ks.lanes - 1) / ks.lanes
	parallel.For(chunks, 1, wk, func(lo, hi int) {
		j0, j1 := lo*ks.lanes, min(hi*ks.lanes, cols)
		y := out[j0*os:]
		var bf *buffer
		if os != 1 {
			bf = getBuffer(j1 - j0)
			y = bf.f
			defer putBuffer(bf)
		}
		y = y[:j1-j0]
		if acc && os != 1 {
			for j := range y {
				y[j] = out[(j0+j)*os]
			}
		} else if !acc {
			clear(y)
		}
		combineBand(ks, k, x, w[j0:], ldw, y)
		if os != 1 {
			for j, v := range y {
				out[(j0+j)*os] = v
			}
		}
	})
}

// combineBand adds Σ_{p<k} x[p]·w[p*ldw+j] to y[j] for j < len(y).
func combineBand(ks *kernelSet, k int, x, w []float32, ldw int, y []float32) {
	n := len(y)
	nv := n / ks.lanes * ks.lanes
	p := 0
	for ; p+4 <= k; p += 4 {
		for j0 := 0; j0 < nv; j0 += gemvChunk { // bounded assembly calls
			ks.axpy4(min(gemvChunk, nv-j0), &x[p], &w[p*ldw+j0], ldw, &y[j0])
		}
		if nv < n {
			x0, x1, x2, x3 := x[p], x[p+1], x[p+2], x[p+3]
			r0 := w[p*ldw : p*ldw+n]
			r1 := w[(p+1)*ldw : (p+1)*ldw+n]
			r2 := w[(p+2)*ldw : (p+2)*ldw+n]
			r3 := w[(p+3)*ldw : (p+3)*ldw+n]
			for j := nv; j < n; j++ {
				y[j] += x0*r0[j] + x1*r1[j] + x2*r2[j] + x3*r3[j]
			}
		}
	}
	for ; p < k; p++ {
		for j0 := 0; j0 < nv; j0 += gemvChunk {
			ks.axpy1(min(gemvChunk, nv-j0), &x[p], &w[p*ldw+j0], ldw, &y[j0])
		}
		xp := x[p]
		row := w[p*ldw : p*ldw+n]
		for j := nv; j < n; j++ {
			y[j] += xp * row[j]
		}
	}
}
