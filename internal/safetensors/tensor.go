package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/x448/float16"
)

// Bytes returns the tensor's raw little-endian bytes in C order. For a
// tensor read from a File they alias the read-only mapping: do not modify
// them, and do not use them after the File is closed.
func (t *Tensor) Bytes() []byte { return t.Data }

// Float32s decodes an F32, BF16 or F16 tensor into a new []float32 of
// NumElements values (BF16 and F16 widen exactly). Any other dtype, or a
// byte length that does not match the shape, is an error naming the tensor.
func (t *Tensor) Float32s() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	n := t.NumElements()
	out := make([]float32, n)
	d := t.Data
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(d[2*i:])) << 16)
		}
	case F16:
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(d[2*i:])).Float32()
		}
	default:
		return nil, fmt.Errorf("safetensors: tensor %q: Float32s decodes F32, BF16 or F16, not %s", t.Name, t.DType)
	}
	return out, nil
}

// NewTensor returns a tensor named name of the given shape holding values
// encoded as dt: F32 exactly, BF16 or F16 rounded to nearest, ties to even
// (NaN stays NaN, values beyond the format's range become ±Inf). It is how a
// trainer turns float32 parameters and optimizer states into tensors to
// Write.
func NewTensor(name string, dt DType, shape []int, values []float32) (*Tensor, error) {
	t := &Tensor{Name: name, DType: dt, Shape: append([]int(nil), shape...)}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("safetensors: tensor %q: shape %v has negative dimension %d", name, shape, d)
		}
		n *= d
	}
	if len(values) != n {
		return nil, fmt.Errorf("safetensors: tensor %q: shape %v needs %d values, got %d", name, shape, n, len(values))
	}
	switch dt {
	case F32:
		t.Data = make([]byte, 4*n)
		for i, v := range values {
			binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(v))
		}
	case BF16:
		t.Data = make([]byte, 2*n)
		for i, v := range values {
			binary.LittleEndian.PutUint16(t.Data[2*i:], bf16Bits(v))
		}
	case F16:
		t.Data = make([]byte, 2*n)
		for i, v := range values {
			binary.LittleEndian.PutUint16(t.Data[2*i:], float16.Fromfloat32(v).Bits())
		}
	default:
		return nil, fmt.Errorf("safetensors: tensor %q: NewTensor encodes F32, BF16 or F16, not %q", name, dt)
	}
	return t, nil
}

// bf16Bits rounds f to bfloat16, ties to even; NaN becomes a quiet NaN with
// f's sign.
func bf16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// check validates t for Write and the typed accessors: a valid UTF-8 name
// that is not "__metadata__", a known dtype, non-negative dimensions and
// exactly product(shape) × dtype size bytes.
func (t *Tensor) check() error {
	switch {
	case t.Name == "":
		return fmt.Errorf("safetensors: a tensor has an empty name")
	case t.Name == metadataKey:
		return fmt.Errorf("safetensors: tensor name %q is reserved", t.Name)
	case !utf8.ValidString(t.Name):
		return fmt.Errorf("safetensors: tensor name %q is not valid UTF-8", t.Name)
	}
	if t.DType.Size() == 0 {
		return fmt.Errorf("safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
	}
	count := int64(1)
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("safetensors: tensor %q: shape %v has negative dimension %d", t.Name, t.Shape, d)
		}
		if d > 0 && count > math.MaxInt64/8/int64(d) {
			return fmt.Errorf("safetensors: tensor %q: shape %v overflows", t.Name, t.Shape)
		}
		count *= int64(d)
	}
	if want := count * int64(t.DType.Size()); want != int64(len(t.Data)) {
		return fmt.Errorf("safetensors: tensor %q: %s %v needs %d bytes, has %d", t.Name, t.DType, t.Shape, want, len(t.Data))
	}
	return nil
}
