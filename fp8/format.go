package fp8

import (
	"unsafe"

	"github.com/dsv3go/dsv3/internal/fp8x"
)

// E4M3 is an FP8 value in the float8_e4m3fn format (OCP E4M3): 1 sign bit,
// 4 exponent bits with bias 7, 3 mantissa bits; subnormals at exponent 0,
// no infinities, NaN = 0x7F and 0xFF; the largest finite value is 448.
// DeepSeek-V3 stores its weights and quantises its activations in it.
type E4M3 uint8

// E5M2 is an FP8 value in the float8_e5m2 format: 1 sign bit, 5 exponent
// bits with bias 15, 2 mantissa bits, IEEE 754 conventions (subnormals,
// ±Inf = 0x7C/0xFC, NaN when the exponent is all ones and the mantissa is
// not zero); the largest finite value is 57344.
type E5M2 uint8

// Largest finite values of the two formats.
const (
	MaxE4M3 = 448
	MaxE5M2 = 57344
)

// Mode says what a conversion from float32 does with values outside the
// format's finite range. Both modes round to nearest, ties to even, and map
// NaN to NaN (keeping its sign).
type Mode uint8

const (
	// Saturate clamps overflowing values and infinities to ±max (CUDA's
	// cvt.rn.satfinite, used by the reference's quantisation kernels).
	Saturate Mode = iota
	// NonSaturate turns values that round beyond ±max into NaN (E4M3,
	// which has no infinity) or ±Inf (E5M2), as a plain PyTorch cast does.
	// For E4M3 that means |f| > 464: 464 itself is a tie that rounds to
	// the even 448.
	NonSaturate
)

// ToE4M3 rounds f to the nearest E4M3 value, ties to even.
func ToE4M3(f float32, m Mode) E4M3 { return E4M3(fp8x.EncodeE4M3(f, m == Saturate)) }

// Float32 returns the exact value of c (NaN for 0x7F and 0xFF).
func (c E4M3) Float32() float32 { return fp8x.E4M3Table[c] }

// IsNaN reports whether c is one of the two E4M3 NaN codes.
func (c E4M3) IsNaN() bool { return c&0x7F == 0x7F }

// ToE5M2 rounds f to the nearest E5M2 value, ties to even.
func ToE5M2(f float32, m Mode) E5M2 { return E5M2(fp8x.EncodeE5M2(f, m == Saturate)) }

// Float32 returns the exact value of c.
func (c E5M2) Float32() float32 { return fp8x.E5M2Table[c] }

// IsNaN reports whether c is an E5M2 NaN.
func (c E5M2) IsNaN() bool { return c&0x7C == 0x7C && c&3 != 0 }

// IsInf reports whether c is +Inf or -Inf.
func (c E5M2) IsInf() bool { return c&0x7F == 0x7C }

// E4M3FromFloat32s rounds src into dst, which must be at least as long.
func E4M3FromFloat32s(dst []E4M3, src []float32, m Mode) {
	_ = dst[:len(src)]
	if m == Saturate {
		fp8x.Active.EncodeScaled(bytesOf(dst), src, 1)
		return
	}
	for i, v := range src {
		dst[i] = E4M3(fp8x.EncodeE4M3(v, false))
	}
}

// Float32sFromE4M3 widens src into dst exactly; dst must be at least as
// long.
func Float32sFromE4M3(dst []float32, src []E4M3) {
	_ = dst[:len(src)]
	fp8x.Active.Decode(dst, bytesOf(src))
}

// E5M2FromFloat32s rounds src into dst, which must be at least as long.
func E5M2FromFloat32s(dst []E5M2, src []float32, m Mode) {
	_ = dst[:len(src)]
	sat := m == Saturate
	for i, v := range src {
		dst[i] = E5M2(fp8x.EncodeE5M2(v, sat))
	}
}

// Float32sFromE5M2 widens src into dst exactly; dst must be at least as
// long.
func Float32sFromE5M2(dst []float32, src []E5M2) {
	_ = dst[:len(src)]
	for i, c := range src {
		dst[i] = fp8x.E5M2Table[c]
	}
}

// AsE4M3 views raw bytes (a checkpoint's F8_E4M3 tensor data) as E4M3
// codes without copying.
func AsE4M3(b []byte) []E4M3 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*E4M3)(unsafe.SliceData(b)), len(b))
}

// bytesOf views codes as bytes without copying.
func bytesOf(c []E4M3) []byte {
	if len(c) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.SliceData(c)), len(c))
}
