package gemm

import "github.com/dsv3go/dsv3/internal/parallel"

// sgemm is the portable implementation: parallel over rows of C, B repacked
// as k×n when it is stored transposed, then row-times-panel products.
func sgemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, workers int) {
	bk, ldbk := b, ldb
	if transB {
		bk = make([]float32, k*n)
		for j := 0; j < n; j++ {
			row := b[j*ldb : j*ldb+k]
			for p, v := range row {
				bk[p*n+j] = v
			}
		}
		ldbk = n
	}
	parallel.For(m, 4, workers, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ci := c[i*ldc : i*ldc+n]
			if !acc {
				clear(ci)
			}
			for p := 0; p < k; p++ {
				var av float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				br := bk[p*ldbk : p*ldbk+n]
				for j, bv := range br {
					ci[j] += av * bv
				}
			}
		}
	})
}
