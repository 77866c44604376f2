package gemm

// packRows writes the transpose of a rows×k block of a row-major matrix
// (element (i, p) at src[i*ld+p]) into dst with row stride stride:
// dst[p*stride+i] = src[i*ld+p] for i < rows, p < k, and zero for
// rows <= i < stride. It packs op(A) panels when A is not transposed and
// op(B) panels when B is (both read k-contiguous rows).
func packRows(dst, src []float32, ld, rows, k, stride int) {
	packRowsFrom(dst, src, ld, rows, 0, k, stride)
}

// packRowsFrom is packRows restricted to depths [p0, k).
func packRowsFrom(dst, src []float32, ld, rows, p0, k, stride int) {
	if p0 >= k {
		return
	}
	dst = dst[:k*stride]
	i := 0
	for ; i+4 <= rows; i += 4 {
		r0 := src[i*ld : i*ld+k]
		r1 := src[(i+1)*ld : (i+1)*ld+k]
		r2 := src[(i+2)*ld : (i+2)*ld+k]
		r3 := src[(i+3)*ld : (i+3)*ld+k]
		for p := p0; p < k; p++ {
			d := dst[p*stride+i : p*stride+i+4 : p*stride+i+4]
			d[0], d[1], d[2], d[3] = r0[p], r1[p], r2[p], r3[p]
		}
	}
	for ; i < rows; i++ {
		row := src[i*ld : i*ld+k]
		for p := p0; p < k; p++ {
			dst[p*stride+i] = row[p]
		}
	}
	if rows < stride {
		for p := p0; p < k; p++ {
			clear(dst[p*stride+rows : (p+1)*stride])
		}
	}
}

// packCols copies a k×cols block of a row-major matrix (element (p, j) at
// src[p*ld+j]) into dst with row stride stride: dst[p*stride+j] =
// src[p*ld+j] for j < cols, and zero for cols <= j < stride. It packs op(A)
// panels when A is transposed and op(B) panels when B is not.
func packCols(dst, src []float32, ld, cols, k, stride int) {
	dst = dst[:k*stride]
	for p := 0; p < k; p++ {
		d := dst[p*stride : (p+1)*stride]
		copy(d, src[p*ld:p*ld+cols])
		if cols < stride {
			clear(d[cols:])
		}
	}
}

// packA packs rows [i0, i0+rows) and depths [p0, p0+k) of op(A) as one
// panel with stride rows: dst[p*rows+i] = op(A)[i0+i, p0+p].
func packA(ks *kernelSet, dst []float32, transA bool, a []float32, lda, i0, rows, p0, k int) {
	if transA {
		ks.packCols(dst, a[p0*lda+i0:], lda, rows, k, rows)
	} else {
		ks.packRows(dst, a[i0*lda+p0:], lda, rows, k, rows)
	}
}

// packB packs depths [p0, p0+k) and columns [j0, j0+cols) of op(B) as one
// panel of width nr, zero-padded: dst[p*nr+j] = op(B)[p0+p, j0+j].
func packB(ks *kernelSet, dst []float32, transB bool, b []float32, ldb, p0, k, j0, cols, nr int) {
	if transB {
		ks.packRows(dst, b[j0*ldb+p0:], ldb, cols, k, nr)
	} else {
		ks.packCols(dst, b[p0*ldb+j0:], ldb, cols, k, nr)
	}
}
