package gemm

import (
	"github.com/dsv3go/dsv3/internal/parallel"
)

// minWorkPerWorker is the number of multiply-adds below which another worker
// costs more (goroutine start, duplicated packing) than it saves.
const minWorkPerWorker = 1 << 21

// blocked is the GotoBLAS/BLIS-style driver (see doc.go): steps over nc-wide
// column blocks and kc-deep slices of K; each (jc, pc) step's B block is
// packed once and shared by all workers, which take bands of C's rows (and,
// when there are too few rows, of its columns) from a shared counter and run
// the register-tile kernel over them, packing one A panel at a time.
//
// Packing B is memory-bound (for M=128, K=7168 it reads a 58 MB weight once)
// and does not speed up with more cores, so it is pipelined: the B block of
// step s+1 is packed into a second buffer by tasks that run among step s's
// compute tasks, and a worker streaming memory overlaps one doing FMAs.
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

	// Tasks for the compute phase of each step: bands of C's rows of equal
	// height (a band packs its own A panels, so nothing is duplicated),
	// taken from a shared counter. Up to four bands per worker, so that one
	// slowed by other load hands work over, but each at least four panels
	// tall: with fewer rows than that, one band per worker, which balances
	// exactly when the workers run alike. With fewer row panels than twice
	// the workers, bands are split by columns too.
	rowPanels := (m + mr - 1) / mr
	tr, tc := 1, 1
	if w > 1 {
		tr = w * min(4, max(1, rowPanels/(4*w)))
		if rowPanels < 2*w {
			tr = rowPanels
			tc = (4*w + tr - 1) / tr
		}
	}

	// The steps, in order: column block jc, depth slice pc.
	type step struct{ jc, ncur, pc, kcur int }
	var steps []step
	for jc := 0; jc < n; jc += nc {
		for pc := 0; pc < k; pc += kc {
			steps = append(steps, step{jc, min(nc, n-jc), pc, min(kc, k-pc)})
		}
	}
	var bufs [2]*buffer
	for i := range bufs {
		if i < len(steps) {
			bufs[i] = getBuffer(kc * nc)
			defer putBuffer(bufs[i])
		}
	}
	// packChunks is the number of pack tasks for step s; pack runs task t.
	packChunks := func(s int) int { return min((steps[s].ncur+nr-1)/nr, 4*w) }
	pack := func(s, t int) {
		st, bp := steps[s], bufs[s%2].f
		npanels, chunks := (st.ncur+nr-1)/nr, packChunks(s)
		panel := st.kcur * nr
		for q := t * npanels / chunks; q < (t+1)*npanels/chunks; q++ {
			j0 := q * nr
			packB(ks, bp[q*panel:(q+1)*panel], transB, b, ldb, st.pc, st.kcur, st.jc+j0, min(nr, st.ncur-j0), nr)
		}
	}

	// The first block has nothing to overlap with. Waking a second worker
	// costs up to ~0.1 ms on a virtual machine, more than packing a block
	// of up to 2^18 floats that is already in cache, so small ones are
	// packed by the caller alone.
	pw := w
	if steps[0].kcur*steps[0].ncur <= 1<<18 {
		pw = 1
	}
	parallel.Dynamic(packChunks(0), pw, func(t int) { pack(0, t) })
	for s, st := range steps {
		npanels := (st.ncur + nr - 1) / nr
		bp := bufs[s%2].f
		accFlag := acc || st.pc > 0
		compute := func(t int) {
			br, bc := t/tc, t%tc
			r0, r1 := br*m/tr, (br+1)*m/tr
			q0, q1 := bc*npanels/tc, (bc+1)*npanels/tc
			macro(ks, transA, a, lda, r0, r1, st.pc, st.kcur, bp, q0, q1, st.jc, st.ncur, c, ldc, accFlag)
		}
		// Compute tasks of step s, alternating with pack tasks of step s+1.
		nComp, nPack := tr*tc, 0
		if s+1 < len(steps) {
			nPack = packChunks(s + 1)
		}
		pairs := min(nComp, nPack)
		parallel.Dynamic(nComp+nPack, w, func(t int) {
			switch {
			case t < 2*pairs && t%2 == 0:
				compute(t / 2)
			case t < 2*pairs:
				pack(s+1, t/2)
			case nComp > pairs:
				compute(pairs + t - 2*pairs)
			default:
				pack(s+1, pairs+t-2*pairs)
			}
		})
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
