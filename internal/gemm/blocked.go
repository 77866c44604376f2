package gemm

import (
	"github.com/dsv3go/dsv3/internal/parallel"
)

// minWorkPerWorker is the number of multiply-adds below which another worker
// costs more (goroutine start, duplicated packing) than it saves.
const minWorkPerWorker = 1 << 21

// blocked is the GotoBLAS/BLIS-style driver (see doc.go): loops over nc-wide
// column blocks and kc-deep slices of K; each (jc, pc) step packs the B block
// once, shared by all workers, then the workers split C's rows (and, when
// there are too few rows, its columns) and run the register-tile kernel over
// their part, packing one A panel at a time.
func blocked(ks *kernelSet, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, workers int) {
	mr, nr := ks.mr, ks.nr
	w := parallel.Workers(workers)
	if maxw := m * n * k / minWorkPerWorker; w > maxw {
		w = max(maxw, 1)
	}
	// Even kc-deep slices: k = 300 runs as 2×150, not 256+44.
	nkc := (k + ks.kc - 1) / ks.kc
	kc := (k + nkc - 1) / nkc
	nc := min(ks.nc, (n+nr-1)/nr*nr)

	// Split the workers into a wr×wc grid over (rows, column panels). Rows
	// first: each row band packs its own A panels, so nothing is duplicated.
	wr := min(w, (m+mr-1)/mr)
	wc := w / wr

	bbuf := getBuffer(kc * nc)
	defer putBuffer(bbuf)
	bp := bbuf.f

	for jc := 0; jc < n; jc += nc {
		ncur := min(nc, n-jc)
		npanels := (ncur + nr - 1) / nr
		for pc := 0; pc < k; pc += kc {
			kcur := min(kc, k-pc)
			panel := kcur * nr
			parallel.For(npanels, 4, w, func(lo, hi int) {
				for q := lo; q < hi; q++ {
					j0 := q * nr
					packB(ks, bp[q*panel:(q+1)*panel], transB, b, ldb, pc, kcur, jc+j0, min(nr, ncur-j0), nr)
				}
			})
			accFlag := acc || pc > 0
			parallel.For(wr*wc, 1, wr*wc, func(lo, hi int) {
				for t := lo; t < hi; t++ {
					tr, tc := t/wc, t%wc
					r0, r1 := tr*m/wr, (tr+1)*m/wr
					q0, q1 := tc*npanels/wc, (tc+1)*npanels/wc
					macro(ks, transA, a, lda, r0, r1, pc, kcur, bp, q0, q1, jc, ncur, c, ldc, accFlag)
				}
			})
		}
	}
}

// macro runs the register-tile kernel over rows [r0, r1) of C and packed B
// panels [q0, q1) of the current block (columns jc+q*nr...), packing one A
// panel of up to mr rows at a time. Full tiles are written in place; tiles
// cut by the right edge of C go through a scratch tile.
func macro(ks *kernelSet, transA bool, a []float32, lda, r0, r1, pc, kcur int, bp []float32, q0, q1, jc, ncur int, c []float32, ldc int, acc bool) {
	mr, nr := ks.mr, ks.nr
	abuf := getBuffer(mr*kcur + mr*nr)
	defer putBuffer(abuf)
	ap, tile := abuf.f[:mr*kcur], abuf.f[mr*kcur:]
	accFlag := 0
	if acc {
		accFlag = 1
	}
	panel := kcur * nr
	for i0 := r0; i0 < r1; i0 += mr {
		rows := min(mr, r1-i0)
		packA(ks, ap, transA, a, lda, i0, rows, pc, kcur)
		kern := ks.micro[rows]
		for q := q0; q < q1; q++ {
			j0 := jc + q*nr
			cols := min(nr, ncur-q*nr)
			if cols == nr {
				kern(kcur, &ap[0], &bp[q*panel], &c[i0*ldc+j0], ldc, accFlag)
				continue
			}
			kern(kcur, &ap[0], &bp[q*panel], &tile[0], nr, 0)
			for i := 0; i < rows; i++ {
				dst := c[(i0+i)*ldc+j0 : (i0+i)*ldc+j0+cols]
				src := tile[i*nr : i*nr+cols]
				if acc {
					for j, v := range src {
						dst[j] += v
					}
				} else {
					copy(dst, src)
				}
			}
		}
	}
}
