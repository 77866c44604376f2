package fp8x

import (
	"sync"

	"github.com/dsv3go/dsv3/internal/parallel"
)

// Q is a row-major matrix of E4M3 codes with block scales: the value of
// element (r, c) is E4M3(Codes[r*Stride+c]) · Scales[(r/Group)*ScaleStride + c/128].
// Group is 1 for 1x128 tiles (activations) and 128 for 128x128 blocks
// (weights, whose Scales is the checkpoint's weight_scale_inv).
type Q struct {
	Codes       []byte
	Stride      int
	Scales      []float32
	ScaleStride int
	Group       int
}

func (q *Q) scale(r, kb int) float32 { return q.Scales[(r/q.Group)*q.ScaleStride+kb] }

// GemmQ sets c = A·Bᵀ, or adds it to c when acc, for A m×k and B n×k both
// quantised: for every 128-wide K-block the products of codes are summed in
// float32, multiplied by the two scales and added into the float32 result
// (the DeepGEMM scheme, report §3.3.2). c has row stride ldc; workers <= 0
// means GOMAXPROCS.
func GemmQ(m, n, k int, a, b *Q, c []float32, ldc int, acc bool, workers int) {
	Active.GemmQ(m, n, k, a, b, c, ldc, acc, workers)
}

// GemmW sets c = A·Bᵀ (adds when acc) for a float32 A (m×k, row stride
// lda) and a quantised B (n×k): the weight-only product, where B's codes
// are decoded on the fly, products and sums are float32 and each K-block's
// sum is multiplied by B's scale.
func GemmW(m, n, k int, a []float32, lda int, b *Q, c []float32, ldc int, acc bool, workers int) {
	Active.GemmW(m, n, k, a, lda, b, c, ldc, acc, workers)
}

// GemmQ is the package-level GemmQ on set s.
func (s *Set) GemmQ(m, n, k int, a, b *Q, c []float32, ldc int, acc bool, workers int) {
	s.gemm(m, n, k, nil, 0, a, b, c, ldc, acc, workers, true)
}

// GemmW is the package-level GemmW on set s.
func (s *Set) GemmW(m, n, k int, a []float32, lda int, b *Q, c []float32, ldc int, acc bool, workers int) {
	s.gemm(m, n, k, a, lda, nil, b, c, ldc, acc, workers, true)
}

// GemmBlocked is GemmQ (aq != nil) or GemmW forced through the packed,
// blocked path even for few rows, for tests and benchmarks.
func (s *Set) GemmBlocked(m, n, k int, af []float32, lda int, aq *Q, b *Q, c []float32, ldc int, acc bool, workers int) {
	s.gemm(m, n, k, af, lda, aq, b, c, ldc, acc, workers, false)
}

func (s *Set) gemm(m, n, k int, af []float32, lda int, aq *Q, b *Q, c []float32, ldc int, acc bool, workers int, gemv bool) {
	if m <= 0 || n <= 0 {
		return
	}
	if !acc {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
	}
	if k <= 0 {
		return
	}
	switch {
	case gemv && m <= GemvRows && s.Gemv != nil:
		s.gemv(m, n, k, af, lda, aq, b, c, ldc, workers)
	case aq != nil && s.BF16 != nil:
		s.gemmBF16(m, n, k, aq, b, c, ldc, workers)
	default:
		s.gemmFMA(m, n, k, af, lda, aq, b, c, ldc, workers)
	}
}

// nBlock is the width of the output column blocks the workers share out:
// 128 rows of B, one weight block.
const nBlock = 128

var f32Pool, u32Pool sync.Pool

func getF32(n int) []float32 {
	if p, ok := f32Pool.Get().(*[]float32); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]float32, n)
}

func putF32(s []float32) { f32Pool.Put(&s) }

func getU32(n int) []uint32 {
	if p, ok := u32Pool.Get().(*[]uint32); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]uint32, n)
}

func putU32(s []uint32) { u32Pool.Put(&s) }

// gemmFMA is the blocked product on float32 panels. A is packed once into
// MR-row panels per K-block (float32 values, or decoded codes with their
// tile scales); workers take 128-column blocks of C, decode the matching
// rows of B a few K-blocks at a time into NR-wide panels that stay in L2,
// and run the micro-kernel over every MR-row panel of A.
func (s *Set) gemmFMA(m, n, k int, af []float32, lda int, aq *Q, b *Q, c []float32, ldc int, workers int) {
	mr, nr := s.MR, s.NR
	kbs := Blocks(k)
	mt := (m + mr - 1) / mr
	ap := getF32(mt * kbs * Block * mr)
	sa := getF32(mt * kbs * mr)
	defer putF32(ap)
	defer putF32(sa)
	parallel.For(mt, 1, workers, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			for q := 0; q < kbs; q++ {
				k0, k1 := q*Block, min(k, (q+1)*Block)
				dst := ap[(t*kbs+q)*Block*mr : (t*kbs+q+1)*Block*mr]
				sq := sa[(t*kbs+q)*mr : (t*kbs+q+1)*mr]
				clear(dst)
				for i := 0; i < mr; i++ {
					r := t*mr + i
					if r >= m {
						sq[i] = 0
						continue
					}
					if aq == nil {
						for kk, v := range af[r*lda+k0 : r*lda+k1] {
							dst[kk*mr+i] = v
						}
						sq[i] = 1
					} else {
						if k1-k0 == Block && mr <= 16 {
							if i == 0 { // the whole tile at once
								s.PackF32(dst, mr, aq.Codes[r*aq.Stride+k0:], aq.Stride, min(mr, m-r))
							}
						} else {
							for kk, cd := range aq.Codes[r*aq.Stride+k0 : r*aq.Stride+k1] {
								dst[kk*mr+i] = E4M3Table[cd]
							}
						}
						sq[i] = aq.scale(r, q)
					}
				}
			}
		}
	})
	kcb := fmaKCB // K-blocks per packed chunk of B
	nbs := (n + nBlock - 1) / nBlock
	parallel.Dynamic(nbs, workers, func(ib int) {
		n0, n1 := ib*nBlock, min(n, (ib+1)*nBlock)
		subs := (n1 - n0 + nr - 1) / nr
		bp := getF32(subs * kcb * Block * nr)
		sb := getF32(subs * kcb * nr)
		tmp := getF32(mr * nr)
		defer putF32(bp)
		defer putF32(sb)
		defer putF32(tmp)
		for q0 := 0; q0 < kbs; q0 += kcb {
			q1 := min(kbs, q0+kcb)
			nq := q1 - q0
			for sub := 0; sub < subs; sub++ {
				for q := q0; q < q1; q++ {
					k0, k1 := q*Block, min(k, (q+1)*Block)
					off := (sub*kcb + q - q0)
					dst := bp[off*Block*nr : (off+1)*Block*nr]
					sq := sb[off*nr : (off+1)*nr]
					full := k1-k0 == Block && n0+(sub+1)*nr <= n1 && nr%16 == 0
					if !full {
						clear(dst)
					}
					for j := 0; j < nr; j++ {
						r := n0 + sub*nr + j
						if r >= n1 {
							sq[j] = 0
							continue
						}
						switch {
						case !full:
							for kk, cd := range b.Codes[r*b.Stride+k0 : r*b.Stride+k1] {
								dst[kk*nr+j] = E4M3Table[cd]
							}
						case j%16 == 0:
							s.PackF32(dst[j:], nr, b.Codes[r*b.Stride+k0:], b.Stride, 16)
						}
						sq[j] = b.scale(r, q)
					}
				}
			}
			for t := 0; t < mt; t++ {
				i0 := t * mr
				a := ap[(t*kbs+q0)*Block*mr : (t*kbs+q1)*Block*mr]
				sA := sa[(t*kbs+q0)*mr : (t*kbs+q1)*mr]
				for sub := 0; sub < subs; sub++ {
					j0 := n0 + sub*nr
					bb := bp[sub*kcb*Block*nr : (sub*kcb+nq)*Block*nr]
					sB := sb[sub*kcb*nr : (sub*kcb+nq)*nr]
					if i0+mr <= m && j0+nr <= n1 {
						s.FMA(nq, a, bb, sA, sB, c[i0*ldc+j0:], ldc)
						continue
					}
					clear(tmp)
					s.FMA(nq, a, bb, sA, sB, tmp, nr)
					addTile(c, ldc, i0, j0, min(mr, m-i0), min(nr, n1-j0), tmp, nr)
				}
			}
		}
	})
}

// addTile adds the top-left rows×cols of tile (row stride ldt) to c at (i0, j0).
func addTile(c []float32, ldc, i0, j0, rows, cols int, tile []float32, ldt int) {
	for i := 0; i < rows; i++ {
		ci := c[(i0+i)*ldc+j0 : (i0+i)*ldc+j0+cols]
		for j, v := range tile[i*ldt : i*ldt+cols] {
			ci[j] += v
		}
	}
}

// gemv is the product for at most GemvRows rows of A: A is decoded (or
// copied) once into float32 rows padded to whole K-blocks; workers take
// tasks of gemvTask rows of B and sweep them one K-range at a time, a range
// short enough that its slice of A stays in L1 while every row of the task
// streams past it. Each weight byte is read once.
func (s *Set) gemv(m, n, k int, af []float32, lda int, aq *Q, b *Q, c []float32, ldc int, workers int) {
	kbs := Blocks(k)
	kfull := k / Block
	ldx := kbs * Block
	x := getF32(m * ldx)
	sa := getF32(kbs * m)
	defer putF32(x)
	defer putF32(sa)
	clear(x)
	for i := 0; i < m; i++ {
		xi := x[i*ldx : i*ldx+k]
		if aq == nil {
			copy(xi, af[i*lda:i*lda+k])
			for q := 0; q < kbs; q++ {
				sa[q*m+i] = 1
			}
			continue
		}
		s.Decode(xi, aq.Codes[i*aq.Stride:i*aq.Stride+k])
		for q := 0; q < kbs; q++ {
			sa[q*m+i] = aq.scale(i, q)
		}
	}
	kr := max(1, gemvRangeBlocks/m) // K-blocks per range: m·kr·512 bytes of A
	tasks := (n + gemvTask - 1) / gemvTask
	parallel.Dynamic(tasks, workers, func(task int) {
		lo, hi := task*gemvTask, min(n, (task+1)*gemvTask)
		f := getF32(kbs * m)
		y := getF32((hi - lo) * m)
		defer putF32(f)
		defer putF32(y)
		clear(y)
		// Rows that share a scale row of B share the factors f.
		for r0 := lo; r0 < hi; {
			g := r0 / b.Group
			r1 := min(hi, (g+1)*b.Group)
			for q := 0; q < kbs; q++ {
				sw := b.Scales[g*b.ScaleStride+q]
				for i := 0; i < m; i++ {
					f[q*m+i] = sa[q*m+i] * sw
				}
			}
			for q0 := 0; q0 < kfull; q0 += kr {
				nq := min(kr, kfull-q0)
				s.Gemv(m, r1-r0, nq, b.Codes[r0*b.Stride+q0*Block:], b.Stride, x[q0*Block:], ldx, f[q0*m:], y[(r0-lo)*m:])
			}
			if kfull < kbs { // a partial last K-block, in Go
				for r := r0; r < r1; r++ {
					tail := b.Codes[r*b.Stride+kfull*Block : r*b.Stride+k]
					for i := 0; i < m; i++ {
						xi := x[i*ldx+kfull*Block:]
						var d float32
						for kk, cd := range tail {
							d += xi[kk] * E4M3Table[cd]
						}
						y[(r-lo)*m+i] += d * f[kfull*m+i]
					}
				}
			}
			r0 = r1
		}
		for r := lo; r < hi; r++ {
			for i := 0; i < m; i++ {
				c[i*ldc+r] += y[(r-lo)*m+i]
			}
		}
	})
}

// gemvTask is the number of rows of B a GEMV task covers (a divisor of
// 128, so that a task never straddles two weight-block rows), and
// gemvRangeBlocks·512 bytes the size of A's slice one K-range keeps in L1
// and L2 (with one row of A, K up to 8192 is a single range, and each task
// reads one contiguous stream of codes).
const (
	gemvTask        = 64
	gemvRangeBlocks = 64
)

// fmaKCB is how many K-blocks of B gemmFMA packs at a time: 128 columns ×
// 8 K-blocks of float32 are 512 KiB, which stay in L2 while every row panel
// of A passes. Longer chunks mean fewer passes over C (whose tiles come
// from far away); the measured optimum on Zen 4 was 8-16 (2048³: 51 GFLOP/s
// at 2, 59-61 at 8, one worker).
const fmaKCB = 8
