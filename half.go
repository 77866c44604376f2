package dsv3

import (
	"fmt"
	"math"

	"github.com/x448/float16"
)

// BF16 is a bfloat16 value: the upper 16 bits of a float32.
type BF16 uint16

// ToBF16 rounds f to the nearest bfloat16, ties to even. NaN stays NaN (a
// quiet NaN with f's sign); values beyond the largest bfloat16 round to ±Inf,
// as a hardware conversion does.
func ToBF16(f float32) BF16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep sign, force quiet
		return BF16(b>>16 | 0x0040)
	}
	b += 0x7fff + (b>>16)&1
	return BF16(b >> 16)
}

// Float32 returns the exact float32 value of h.
func (h BF16) Float32() float32 { return math.Float32frombits(uint32(h) << 16) }

// BF16FromFloat32s rounds src into dst (ties to even); dst must be as long.
func BF16FromFloat32s(dst []BF16, src []float32) {
	_ = dst[:len(src)]
	for i, v := range src {
		dst[i] = ToBF16(v)
	}
}

// Float32sFromBF16 widens src into dst exactly; dst must be as long.
func Float32sFromBF16(dst []float32, src []BF16) {
	_ = dst[:len(src)]
	for i, v := range src {
		dst[i] = math.Float32frombits(uint32(v) << 16)
	}
}

// RoundBF16 returns f rounded to bfloat16 precision, as a float32: what a
// bfloat16 tensor would hold.
func RoundBF16(f float32) float32 { return ToBF16(f).Float32() }

// F16 is an IEEE 754 half-precision value.
type F16 = float16.Float16

// ToF16 rounds f to the nearest half-precision value, ties to even
// (github.com/x448/float16).
func ToF16(f float32) F16 { return float16.Fromfloat32(f) }

// F16FromFloat32s rounds src into dst; dst must be as long.
func F16FromFloat32s(dst []F16, src []float32) {
	_ = dst[:len(src)]
	for i, v := range src {
		dst[i] = float16.Fromfloat32(v)
	}
}

// Float32sFromF16 widens src into dst exactly; dst must be as long.
func Float32sFromF16(dst []float32, src []F16) {
	_ = dst[:len(src)]
	for i, v := range src {
		dst[i] = v.Float32()
	}
}

// BF16Weight is an [Out, In] weight stored as bfloat16, two bytes a value:
// the checkpoint's BF16 tensors kept as they are. It multiplies by widening
// blocks of rows to float32 and running the float32 GEMM.
type BF16Weight struct {
	Out, In int
	Data    []BF16 // Out*In values, row-major
}

// NewBF16Weight wraps data as an out×in weight without copying.
func NewBF16Weight(out, in int, data []BF16) (*BF16Weight, error) {
	if out < 0 || in < 0 || len(data) != out*in {
		return nil, fmt.Errorf("dsv3: BF16 weight %dx%d needs %d values, got %d", out, in, out*in, len(data))
	}
	return &BF16Weight{Out: out, In: in, Data: data}, nil
}

// Dims returns (Out, In).
func (w *BF16Weight) Dims() (int, int) { return w.Out, w.In }

// bf16Rows is how many weight rows MulT widens at a time.
const bf16Rows = 256

// MulT sets y = x·Wᵀ (y += when acc).
func (w *BF16Weight) MulT(y, x Matrix, acc bool) {
	checkMul(y, x, w.Out, w.In)
	rows := min(bf16Rows, w.Out)
	buf := NewMatrix(rows, w.In)
	for r0 := 0; r0 < w.Out; r0 += rows {
		n := min(rows, w.Out-r0)
		blk := buf.Slice(0, n)
		Float32sFromBF16(blk.Data[:n*w.In], w.Data[r0*w.In:(r0+n)*w.In])
		blk.MulT(y.View(0, r0, y.Rows, n), x, acc)
	}
}

// Float32 returns W widened to a float32 matrix.
func (w *BF16Weight) Float32() Matrix {
	m := NewMatrix(w.Out, w.In)
	Float32sFromBF16(m.Data, w.Data)
	return m
}
