package fp8

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/fp8x"
)

// BlockWeight is an [Out, In] weight stored as E4M3 codes with one scale per
// 128x128 block, exactly as a DeepSeek-V3 checkpoint stores a linear layer:
// Codes is the F8_E4M3 tensor "<name>.weight" and ScaleInv the F32 tensor
// "<name>.weight_scale_inv" [ceil(Out/128), ceil(In/128)], the multiplier
// that dequantises each block: W[i, j] = Codes[i*In+j].Float32() ·
// ScaleInv[(i/128)*ceil(In/128) + j/128].
//
// A BlockWeight is a dsv3.Weight: MulT is the weight-only product (float32
// activations, codes decoded on the fly, float32 accumulation); wrap it in
// ActQuant for the FP8 GEMM with quantised activations.
type BlockWeight struct {
	Out, In  int
	Codes    []E4M3
	ScaleInv []float32
	// Workers bounds the goroutines MulT uses; 0 means GOMAXPROCS.
	Workers int
}

// NewBlockWeight wraps codes and scales (not copied) as an out×in weight.
func NewBlockWeight(out, in int, codes []E4M3, scaleInv []float32) (*BlockWeight, error) {
	w := &BlockWeight{Out: out, In: in, Codes: codes, ScaleInv: scaleInv}
	if err := w.Check("fp8: NewBlockWeight"); err != nil {
		return nil, err
	}
	return w, nil
}

// BlockWeightFromBytes wraps a checkpoint's raw tensors: weight, the
// F8_E4M3 bytes of an out×in weight, and scaleInv, the little-endian F32
// bytes of its [ceil(out/128), ceil(in/128)] weight_scale_inv. The codes
// are not copied (they may live in a memory-mapped file, which must stay
// mapped while the weight is used); the scales are viewed in place when
// they are 4-byte aligned and copied otherwise (they are 1/16384 of the
// weight's size).
func BlockWeightFromBytes(out, in int, weight, scaleInv []byte) (*BlockWeight, error) {
	if out < 0 || in < 0 {
		return nil, fmt.Errorf("fp8: weight shape [%d, %d] is negative", out, in)
	}
	if len(weight) != out*in {
		return nil, fmt.Errorf("fp8: weight [%d, %d] needs %d bytes of F8_E4M3, got %d", out, in, out*in, len(weight))
	}
	ns := blocks(out) * blocks(in)
	if len(scaleInv) != 4*ns {
		return nil, fmt.Errorf("fp8: weight_scale_inv of a [%d, %d] weight must be F32 [%d, %d] (%d bytes), got %d bytes",
			out, in, blocks(out), blocks(in), 4*ns, len(scaleInv))
	}
	var sc []float32
	if ns > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(scaleInv)))%4 == 0 && littleEndian {
		sc = unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(scaleInv))), ns)
	} else {
		sc = make([]float32, ns)
		for i := range sc {
			sc[i] = math.Float32frombits(binary.LittleEndian.Uint32(scaleInv[4*i:]))
		}
	}
	return NewBlockWeight(out, in, AsE4M3(weight), sc)
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// QuantizeWeight quantises a float32 [out, in] weight per 128x128 block:
// each block's scale is WeightScale(max |w| over the block, f) and its codes
// the saturating round-to-nearest-even E4M3 of w/scale.
func QuantizeWeight(w dsv3.Matrix, f ScaleFormat) (*BlockWeight, error) {
	if err := w.CheckShape("fp8: QuantizeWeight input", w.Rows, w.Cols); err != nil {
		return nil, err
	}
	b := &BlockWeight{Out: w.Rows, In: w.Cols, Codes: make([]E4M3, w.Rows*w.Cols), ScaleInv: make([]float32, blocks(w.Rows)*blocks(w.Cols))}
	b.quantize(w, f)
	return b, nil
}

func (w *BlockWeight) quantize(m dsv3.Matrix, f ScaleFormat) {
	if w.Out == 0 || w.In == 0 {
		return
	}
	fp8x.QuantizeBlocks(w.Out, w.In, m.Data, m.Stride, bytesOf(w.Codes), w.In, w.ScaleInv, blocks(w.In), f == ScalePow2)
}

// Check returns an error naming what unless the slices match the shape.
func (w *BlockWeight) Check(what string) error {
	switch {
	case w == nil:
		return fmt.Errorf("%s: nil weight", what)
	case w.Out < 0 || w.In < 0:
		return fmt.Errorf("%s: negative shape [%d, %d]", what, w.Out, w.In)
	case len(w.Codes) != w.Out*w.In:
		return fmt.Errorf("%s: weight [%d, %d] needs %d codes, has %d", what, w.Out, w.In, w.Out*w.In, len(w.Codes))
	case len(w.ScaleInv) != blocks(w.Out)*blocks(w.In):
		return fmt.Errorf("%s: weight_scale_inv of [%d, %d] needs [%d, %d] = %d scales, has %d",
			what, w.Out, w.In, blocks(w.Out), blocks(w.In), blocks(w.Out)*blocks(w.In), len(w.ScaleInv))
	}
	return nil
}

// Dims returns (Out, In).
func (w *BlockWeight) Dims() (out, in int) { return w.Out, w.In }

// Dequantize returns the float32 weight, each code's value times its
// block's scale (the reference's weight_dequant).
func (w *BlockWeight) Dequantize() dsv3.Matrix {
	m := dsv3.NewMatrix(w.Out, w.In)
	nb := blocks(w.In)
	for i := 0; i < w.Out; i++ {
		row := m.Row(i)
		fp8x.Active.Decode(row, bytesOf(w.Codes[i*w.In:(i+1)*w.In]))
		sc := w.ScaleInv[(i/BlockSize)*nb:]
		for j := range row {
			row[j] *= sc[j/BlockSize]
		}
	}
	return m
}

// q returns the kernel view of the weight.
func (w *BlockWeight) q() *fp8x.Q {
	return &fp8x.Q{Codes: bytesOf(w.Codes), Stride: w.In, Scales: w.ScaleInv, ScaleStride: blocks(w.In), Group: BlockSize}
}

// checkMul panics with a message naming the shapes unless y = x·Wᵀ fits.
func checkMul(y, x dsv3.Matrix, out, in int) {
	if x.Cols != in || y.Cols != out || x.Rows != y.Rows {
		panic(fmt.Sprintf("fp8: y[%dx%d] = x[%dx%d]·Wᵀ with W [%d, %d]", y.Rows, y.Cols, x.Rows, x.Cols, out, in))
	}
}

// MulT sets y = x·Wᵀ (adds it to y when acc), the weight-only product: x is
// [M, In] float32, y [M, Out]. Each weight byte is decoded on the fly; for
// every 128-wide K-block the float32 products are summed and multiplied by
// the block's scale. A shape mismatch panics, as dsv3.Weight specifies.
func (w *BlockWeight) MulT(y, x dsv3.Matrix, acc bool) {
	checkMul(y, x, w.Out, w.In)
	fp8x.GemmW(x.Rows, w.Out, w.In, x.Data, x.Stride, w.q(), y.Data, y.Stride, acc, w.Workers)
}

// ActQuant is a dsv3.Weight that runs the FP8 GEMM: MulT quantises its
// input per 1x128 tile (with Scale's format) and multiplies the codes with
// W's in 128x128 blocks, as the reference does with gemm_impl "fp8".
type ActQuant struct {
	W     *BlockWeight
	Scale ScaleFormat
}

// Dims returns the weight's shape.
func (a ActQuant) Dims() (out, in int) { return a.W.Out, a.W.In }

// MulT sets y = Q(x)·Wᵀ (adds when acc), Q being 1x128 tile quantisation.
func (a ActQuant) MulT(y, x dsv3.Matrix, acc bool) {
	checkMul(y, x, a.W.Out, a.W.In)
	t := NewTiles(x.Rows, x.Cols)
	t.quantize(x, a.Scale)
	fp8x.GemmQ(x.Rows, a.W.Out, a.W.In, t.q(), a.W.q(), y.Data, y.Stride, acc, a.W.Workers)
}

// MulT sets y = A·Wᵀ (adds when acc) for activations A quantised in 1x128
// tiles and a block weight W: the FP8 GEMM of report §3.3.2, float32
// accumulation promoted at every 128-wide K-block. workers <= 0 means
// GOMAXPROCS.
func MulT(y dsv3.Matrix, a *Tiles, w *BlockWeight, acc bool, workers int) error {
	if err := a.Check("fp8: MulT activations"); err != nil {
		return err
	}
	if err := w.Check("fp8: MulT weight"); err != nil {
		return err
	}
	if a.Cols != w.In {
		return fmt.Errorf("fp8: MulT: activations have %d columns, weight [%d, %d] wants %d", a.Cols, w.Out, w.In, w.In)
	}
	if err := y.CheckShape("fp8: MulT output", a.Rows, w.Out); err != nil {
		return err
	}
	fp8x.GemmQ(a.Rows, w.Out, w.In, a.q(), w.q(), y.Data, y.Stride, acc, workers)
	return nil
}
