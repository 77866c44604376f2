package fp8x

import "math"

// Block is the quantisation block edge: activations are scaled per 1x128
// tile, weights per 128x128 block (report §3.3.2).
const Block = 128

// MinAmax is the floor the reference kernels put under a block's maximum
// magnitude before dividing by 448, so that an all-zero block gets a finite
// scale (inference/kernel.py act_quant: amax = max(amax, 1e-4)).
const MinAmax = 1e-4

// Blocks returns ceil(n/128), the number of 128-wide blocks covering n.
func Blocks(n int) int { return (n + Block - 1) / Block }

// Scale returns the dequantisation scale for a block whose largest
// magnitude is amax: max(amax, 1e-4)/448 in float32, or with pow2 that value
// rounded up to a power of two (the ue8m0 format: 2^ceil(log2 s)). A NaN or
// infinite amax gives a NaN or infinite scale.
func Scale(amax float32, pow2 bool) float32 {
	if amax < MinAmax { // also false for NaN, which propagates
		amax = MinAmax
	}
	s := amax / E4M3Max
	if pow2 {
		s = ceilPow2(s)
	}
	return s
}

// WeightScale returns the dequantisation scale of a 128x128 weight block
// whose largest magnitude is amax: amax/448 without the activations' 1e-4
// floor (weights may be legitimately tiny), and 1 for an all-zero block (as
// the reference fixtures do). With pow2 it is rounded up to a power of two.
// A block so tiny that amax/448 underflows gets the smallest float32.
func WeightScale(amax float32, pow2 bool) float32 {
	if amax == 0 {
		return 1
	}
	s := amax / E4M3Max
	if s == 0 {
		s = math.SmallestNonzeroFloat32
	}
	if pow2 {
		s = ceilPow2(s)
	}
	return s
}

// ceilPow2 returns the smallest power of two >= s for a positive float32 s
// (exact: it works on the bits rather than through log2). NaN and Inf pass
// through.
func ceilPow2(s float32) float32 {
	b := math.Float32bits(s)
	if b >= 0x7F800000 || b == 0 {
		return s
	}
	if b < 0x800000 { // subnormal: the next power of two up
		p := uint32(1)
		for p < b {
			p <<= 1
		}
		return math.Float32frombits(p)
	}
	if b&0x7FFFFF != 0 {
		b = (b + 0x800000) &^ 0x7FFFFF
	}
	return math.Float32frombits(b)
}

// amax returns max |x| over x, NaN if any element is NaN: the largest
// sign-cleared bit pattern (NaN patterns exceed Inf's, which exceeds every
// finite one), as the assembly computes it.
func amax(x []float32) float32 {
	var m uint32
	for _, v := range x {
		m = max(m, math.Float32bits(v)&^0x80000000)
	}
	return math.Float32frombits(m)
}

// encodeScaled writes EncodeE4M3(x[i]/s, sat) to dst[i], the reference's
// y = x / s followed by a saturating cast.
func encodeScaledGo(dst []byte, x []float32, s float32) {
	_ = dst[:len(x)]
	for i, v := range x {
		dst[i] = EncodeE4M3(v/s, true)
	}
}

// QuantizeRows quantises the r×k matrix x (row stride ldx) in 1x128 tiles
// along k: tile (i, t) covers x[i, 128t : 128t+128] (the last tile may be
// narrower), its scale goes to scales[i*lds+t] and its codes, the
// saturating round-to-nearest-even of x/scale, to codes[i*ldc : i*ldc+k].
func QuantizeRows(r, k int, x []float32, ldx int, codes []byte, ldc int, scales []float32, lds int, pow2 bool) {
	for i := 0; i < r; i++ {
		row := x[i*ldx : i*ldx+k]
		crow := codes[i*ldc : i*ldc+k]
		for t := 0; t*Block < k; t++ {
			lo, hi := t*Block, min(k, (t+1)*Block)
			s := Scale(Active.Amax(row[lo:hi]), pow2)
			scales[i*lds+t] = s
			Active.EncodeScaled(crow[lo:hi], row[lo:hi], s)
		}
	}
}

// QuantizeBlocks quantises the r×k matrix x (row stride ldx) in 128x128
// blocks: block (bi, bj) covers rows [128bi, 128bi+128) and columns
// [128bj, 128bj+128) (edge blocks are smaller), its scale, WeightScale of
// the block's largest magnitude, goes to scales[bi*lds+bj] (the
// checkpoint's weight_scale_inv) and its codes to codes (row stride ldc).
func QuantizeBlocks(r, k int, x []float32, ldx int, codes []byte, ldc int, scales []float32, lds int, pow2 bool) {
	for bi := 0; bi*Block < r; bi++ {
		r0, r1 := bi*Block, min(r, (bi+1)*Block)
		for bj := 0; bj*Block < k; bj++ {
			c0, c1 := bj*Block, min(k, (bj+1)*Block)
			var m float32
			for i := r0; i < r1; i++ {
				a := Active.Amax(x[i*ldx+c0 : i*ldx+c1])
				if a > m || a != a {
					m = a
				}
				if a != a {
					break
				}
			}
			s := WeightScale(m, pow2)
			scales[bi*lds+bj] = s
			for i := r0; i < r1; i++ {
				Active.EncodeScaled(codes[i*ldc+c0:i*ldc+c1], x[i*ldx+c0:i*ldx+c1], s)
			}
		}
	}
}
