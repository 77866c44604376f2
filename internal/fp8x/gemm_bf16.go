package fp8x

import (
	"math"

	"github.com/dsv3go/dsv3/internal/parallel"
)

// BF16Table holds the bfloat16 bits of every E4M3 code's value; the
// conversion is exact (E4M3 has 4 significant bits and a narrower exponent
// range, so every value, subnormals included, is a normal bfloat16).
var BF16Table [256]uint16

func init() {
	for c := range BF16Table {
		BF16Table[c] = uint16(math.Float32bits(E4M3Table[c]) >> 16)
	}
}

// packPairs writes the bfloat16 pairs of one row's K-block of codes
// (len(codes) <= 128) to dst[p*stride] for p < 64, zero-padded.
func packPairs(dst []uint32, stride int, codes []byte) {
	n := len(codes)
	p := 0
	for ; 2*p+1 < n; p++ {
		dst[p*stride] = uint32(BF16Table[codes[2*p]]) | uint32(BF16Table[codes[2*p+1]])<<16
	}
	if 2*p < n {
		dst[p*stride] = uint32(BF16Table[codes[2*p]])
		p++
	}
	for ; p < Block/2; p++ {
		dst[p*stride] = 0
	}
}

// gemmBF16 is gemmFMA for two quantised operands on a set with an exact
// bfloat16 dot product: both are packed as bfloat16 pairs.
func (s *Set) gemmBF16(m, n, k int, aq *Q, b *Q, c []float32, ldc int, workers int) {
	mr, nr := s.BMR, s.BNR
	const half = Block / 2
	kbs := Blocks(k)
	mt := (m + mr - 1) / mr
	ap := getU32(mt * kbs * half * mr)
	sa := getF32(mt * kbs * mr)
	defer putU32(ap)
	defer putF32(sa)
	parallel.For(mt, 1, workers, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			for q := 0; q < kbs; q++ {
				k0, k1 := q*Block, min(k, (q+1)*Block)
				dst := ap[(t*kbs+q)*half*mr : (t*kbs+q+1)*half*mr]
				sq := sa[(t*kbs+q)*mr : (t*kbs+q+1)*mr]
				full := k1-k0 == Block && mr <= 16
				if full && t*mr+mr > m {
					clear(dst) // padding rows
				}
				for i := 0; i < mr; i++ {
					r := t*mr + i
					if r >= m {
						if !full {
							packPairs(dst[i:], mr, nil)
						}
						sq[i] = 0
						continue
					}
					if !full {
						packPairs(dst[i:], mr, aq.Codes[r*aq.Stride+k0:r*aq.Stride+k1])
					} else if i == 0 {
						s.PackPairs(dst, mr, aq.Codes[r*aq.Stride+k0:], aq.Stride, min(mr, m-r))
					}
					sq[i] = aq.scale(r, q)
				}
			}
		}
	})
	kcb := bf16KCB
	nbs := (n + nBlock - 1) / nBlock
	parallel.Dynamic(nbs, workers, func(ib int) {
		n0, n1 := ib*nBlock, min(n, (ib+1)*nBlock)
		subs := (n1 - n0 + nr - 1) / nr
		bp := getU32(subs * kcb * half * nr)
		sb := getF32(subs * kcb * nr)
		tmp := getF32(mr * nr)
		defer putU32(bp)
		defer putF32(sb)
		defer putF32(tmp)
		for q0 := 0; q0 < kbs; q0 += kcb {
			q1 := min(kbs, q0+kcb)
			nq := q1 - q0
			for sub := 0; sub < subs; sub++ {
				for q := q0; q < q1; q++ {
					k0, k1 := q*Block, min(k, (q+1)*Block)
					off := sub*kcb + q - q0
					dst := bp[off*half*nr : (off+1)*half*nr]
					sq := sb[off*nr : (off+1)*nr]
					full := k1-k0 == Block && n0+(sub+1)*nr <= n1 && nr%16 == 0
					for j := 0; j < nr; j++ {
						r := n0 + sub*nr + j
						if r >= n1 {
							packPairs(dst[j:], nr, nil)
							sq[j] = 0
							continue
						}
						switch {
						case !full:
							packPairs(dst[j:], nr, b.Codes[r*b.Stride+k0:r*b.Stride+k1])
						case j%16 == 0:
							s.PackPairs(dst[j:], nr, b.Codes[r*b.Stride+k0:], b.Stride, 16)
						}
						sq[j] = b.scale(r, q)
					}
				}
			}
			for t := 0; t < mt; t++ {
				i0 := t * mr
				a := ap[(t*kbs+q0)*half*mr : (t*kbs+q1)*half*mr]
				sA := sa[(t*kbs+q0)*mr : (t*kbs+q1)*mr]
				for sub := 0; sub < subs; sub++ {
					j0 := n0 + sub*nr
					bb := bp[sub*kcb*half*nr : (sub*kcb+nq)*half*nr]
					sB := sb[sub*kcb*nr : (sub*kcb+nq)*nr]
					if i0+mr <= m && j0+nr <= n1 {
						s.BF16(nq, a, bb, sA, sB, c[i0*ldc+j0:], ldc)
						continue
					}
					clear(tmp)
					s.BF16(nq, a, bb, sA, sB, tmp, nr)
					addTile(c, ldc, i0, j0, min(mr, m-i0), min(nr, n1-j0), tmp, nr)
				}
			}
		}
	})
}

// BF16Go returns a pure-Go bfloat16-pair micro-kernel for an mr×nr tile,
// the twin the assembly BF16 kernels are tested against: each pair's two
// products are added to the float32 sum one after the other, high half
// first, as Intel documents VDPBF16PS; the scaled K-blocks are summed in
// a tile of their own that is added to C at the end.
func BF16Go(mr, nr int) func(kb int, a, b []uint32, sa, sb, c []float32, ldc int) {
	return func(kb int, a, b []uint32, sa, sb, c []float32, ldc int) {
		const half = Block / 2
		acc := make([]float32, mr*nr)
		tile := make([]float32, mr*nr)
		for q := 0; q < kb; q++ {
			clear(acc)
			for p := 0; p < half; p++ {
				ar := a[(q*half+p)*mr : (q*half+p+1)*mr]
				br := b[(q*half+p)*nr : (q*half+p+1)*nr]
				for i, aw := range ar {
					a0 := math.Float32frombits(aw << 16)
					a1 := math.Float32frombits(aw &^ 0xFFFF)
					for j, bw := range br {
						b0 := math.Float32frombits(bw << 16)
						b1 := math.Float32frombits(bw &^ 0xFFFF)
						acc[i*nr+j] += a1 * b1
						acc[i*nr+j] += a0 * b0
					}
				}
			}
			for i := 0; i < mr; i++ {
				s := sa[q*mr+i]
				for j := 0; j < nr; j++ {
					tile[i*nr+j] += float32(acc[i*nr+j]*s) * sb[q*nr+j]
				}
			}
		}
		for i := 0; i < mr; i++ {
			for j := 0; j < nr; j++ {
				c[i*ldc+j] += tile[i*nr+j]
			}
		}
	}
}

// bf16KCB is gemmFMA's fmaKCB for bfloat16 panels (the same 512 KiB): on
// 2048³, one worker, 4 gave 158 GFLOP/s, 8 gave 175, 16 gave 184.
const bf16KCB = 16
