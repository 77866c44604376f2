package fp8x

// GoSet is the pure-Go kernel set: the reference the assembly sets are
// tested against, and the fallback everywhere else.
var GoSet = &Set{
	Name:         "go",
	Decode:       decodeGo,
	EncodeScaled: encodeScaledGo,
	Amax:         amax,
	MR:           4, NR: 16,
	FMA:       fmaGo,
	Gemv:      gemvGo,
	PackF32:   packF32Go,
	PackPairs: packPairsGo,
}

func packF32Go(dst []float32, ldd int, codes []byte, ldw, rows int) {
	for j := 0; j < rows; j++ {
		for k, c := range codes[j*ldw : j*ldw+Block] {
			dst[k*ldd+j] = E4M3Table[c]
		}
	}
}

func packPairsGo(dst []uint32, ldd int, codes []byte, ldw, rows int) {
	for j := 0; j < rows; j++ {
		packPairs(dst[j:], ldd, codes[j*ldw:j*ldw+Block])
	}
}

func decodeGo(dst []float32, src []byte) {
	_ = dst[:len(src)]
	for i, c := range src {
		dst[i] = E4M3Table[c]
	}
}

// fmaGo is the pure-Go FMA micro-kernel for a 4×16 tile. Like the
// assembly, it sums the scaled K-blocks into a tile of its own and adds
// that to C at the end.
func fmaGo(kb int, a, b, sa, sb, c []float32, ldc int) {
	const mr, nr = 4, 16
	var tile [mr][nr]float32
	for q := 0; q < kb; q++ {
		var acc [mr][nr]float32
		ap := a[q*Block*mr : (q+1)*Block*mr]
		bp := b[q*Block*nr : (q+1)*Block*nr]
		for k := 0; k < Block; k++ {
			bk := (*[nr]float32)(bp[k*nr:])
			for i := 0; i < mr; i++ {
				av := ap[k*mr+i]
				for j := range bk {
					acc[i][j] += av * bk[j]
				}
			}
		}
		for i := 0; i < mr; i++ {
			s := sa[q*mr+i]
			for j := range tile[i] {
				tile[i][j] += float32(acc[i][j]*s) * sb[q*nr+j]
			}
		}
	}
	for i := 0; i < mr; i++ {
		ci := c[i*ldc : i*ldc+nr]
		for j := range ci {
			ci[j] += tile[i][j]
		}
	}
}

func gemvGo(m, rows, kb int, codes []byte, ldw int, x []float32, ldx int, f, y []float32) {
	for r := 0; r < rows; r++ {
		cr := codes[r*ldw : r*ldw+kb*Block]
		for i := 0; i < m; i++ {
			xi := x[i*ldx : i*ldx+kb*Block]
			var tot float32
			for q := 0; q < kb; q++ {
				var a0, a1, a2, a3 float32
				cq := cr[q*Block : (q+1)*Block]
				xq := xi[q*Block : (q+1)*Block]
				for k := 0; k < Block; k += 4 {
					a0 += xq[k] * E4M3Table[cq[k]]
					a1 += xq[k+1] * E4M3Table[cq[k+1]]
					a2 += xq[k+2] * E4M3Table[cq[k+2]]
					a3 += xq[k+3] * E4M3Table[cq[k+3]]
				}
				tot += ((a0 + a1) + (a2 + a3)) * f[q*m+i]
			}
			y[r*m+i] += tot
		}
	}
}
