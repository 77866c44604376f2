package fp8x

import "math"

// Format constants of float8_e4m3fn (OCP E4M3: bias 7, no infinities, NaN
// S.1111.111) and float8_e5m2 (IEEE-like: bias 15, infinities, NaNs).
const (
	E4M3Max  = 448   // largest finite E4M3 value, code 0x7E
	E4M3NaN  = 0x7F  // canonical E4M3 NaN (0xFF with the sign bit)
	E5M2Max  = 57344 // largest finite E5M2 value, code 0x7B
	E5M2Inf  = 0x7C  // +Inf in E5M2
	E5M2NaN  = 0x7E  // canonical E5M2 NaN (quiet, as float16's 0x7E00)
	e4m3Bias = 7
	e5m2Bias = 15
)

// E4M3Table holds the float32 value of every E4M3 code; E5M2Table the same
// for E5M2. Both are built at init from the formats' definitions.
var (
	E4M3Table [256]float32
	E5M2Table [256]float32
)

func init() {
	for c := 0; c < 256; c++ {
		E4M3Table[c] = decodeE4M3Def(uint8(c))
		E5M2Table[c] = decodeE5M2Def(uint8(c))
	}
}

func decodeE4M3Def(c uint8) float32 {
	s := float32(1)
	if c&0x80 != 0 {
		s = -1
	}
	e, m := int(c>>3&0xF), float64(c&7)
	switch {
	case e == 15 && m == 7:
		return float32(math.Copysign(math.NaN(), float64(s)))
	case e == 0:
		return s * float32(math.Ldexp(m/8, 1-e4m3Bias))
	}
	return s * float32(math.Ldexp(1+m/8, e-e4m3Bias))
}

func decodeE5M2Def(c uint8) float32 {
	s := float32(1)
	if c&0x80 != 0 {
		s = -1
	}
	e, m := int(c>>2&0x1F), float64(c&3)
	switch {
	case e == 31 && m == 0:
		return s * float32(math.Inf(1))
	case e == 31:
		return float32(math.Copysign(math.NaN(), float64(s)))
	case e == 0:
		return s * float32(math.Ldexp(m/4, 1-e5m2Bias))
	}
	return s * float32(math.Ldexp(1+m/4, e-e5m2Bias))
}

// EncodeE4M3 rounds f to E4M3, to nearest with ties to even. NaN becomes
// NaN with f's sign. With sat, ±Inf and values beyond ±448 become ±448 (as
// PTX cvt.rn.satfinite, the reference kernels' conversion); without sat a
// value that rounds above 448 (|f| > 464) or an infinity becomes NaN (as a
// plain PyTorch cast).
func EncodeE4M3(f float32, sat bool) uint8 {
	b := math.Float32bits(f)
	sign := uint8(b>>24) & 0x80
	a := b &^ 0x80000000
	switch {
	case a > 0x7F800000: // NaN
		return sign | E4M3NaN
	case a >= 0x43E00000: // >= 448 (also Inf)
		if sat || a <= 0x43E80000 { // up to 464 rounds to 448 (tie to even)
			return sign | 0x7E
		}
		return sign | E4M3NaN
	case a >= 0x3C800000: // normal: >= 2^-6
		// Round the 23-bit mantissa to 3 bits, ties to even, then rebias
		// the exponent from 127 to 7; a carry moves into the exponent.
		r := a + 0x7FFFF + (a>>20)&1
		return sign | uint8(r>>20-(127-e4m3Bias)<<3)
	}
	// Subnormal range: the code is round(|f|·2^9), 0..8 (8 is the smallest
	// normal). Up to 2^-10, half the smallest subnormal, that is 0 (the
	// tie goes to the even 0); above, f = mant·2^(e-150) with e in
	// 117..120, so the code is mant >> (141-e), rounded to nearest even.
	if a <= 0x3A800000 {
		return sign
	}
	return sign | uint8(rneShift(a&0x7FFFFF|0x800000, 141-a>>23))
}

// rneShift returns m >> sh rounded to nearest, ties to even (1 <= sh < 32).
func rneShift(m, sh uint32) uint32 {
	return (m + (1<<(sh-1) - 1) + (m>>sh)&1) >> sh
}

// EncodeE5M2 rounds f to E5M2, to nearest with ties to even. NaN becomes
// NaN with f's sign. With sat, ±Inf and values beyond ±57344 become
// ±57344; without sat values that round beyond it become ±Inf, as IEEE
// rounding and a plain PyTorch cast do.
func EncodeE5M2(f float32, sat bool) uint8 {
	b := math.Float32bits(f)
	sign := uint8(b>>24) & 0x80
	a := b &^ 0x80000000
	switch {
	case a > 0x7F800000:
		return sign | E5M2NaN
	case a >= 0x47600000: // >= 57344 (also Inf)
		if sat {
			return sign | 0x7B
		}
		if a < 0x47700000 { // below the 57344/65536 midpoint 61440
			return sign | 0x7B
		}
		return sign | E5M2Inf
	case a >= 0x38800000: // normal: >= 2^-14
		r := a + 0xFFFFF + (a>>21)&1
		return sign | uint8(r>>21-(127-e5m2Bias)<<2)
	}
	// Subnormal range: round(|f|·2^16), 0..4, as for E4M3: 0 up to 2^-17,
	// then f = mant·2^(e-150) with e in 110..112.
	if a <= 0x37000000 {
		return sign
	}
	return sign | uint8(rneShift(a&0x7FFFFF|0x800000, 134-a>>23))
}
