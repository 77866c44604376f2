package fp8

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/fp8x"
)

// BlockSize is the edge of the quantisation blocks: 1x128 activation tiles
// and 128x128 weight blocks.
const BlockSize = fp8x.Block

// MinAmax is the floor the reference puts under a block's largest
// magnitude before computing its scale, max(amax, 1e-4)/448, so that an
// all-zero block has a finite scale.
const MinAmax = fp8x.MinAmax

// ScaleFormat selects how block scales are stored.
type ScaleFormat uint8

const (
	// ScaleF32 keeps s = max(amax, 1e-4)/448 as a float32.
	ScaleF32 ScaleFormat = iota
	// ScalePow2 rounds s up to a power of two, 2^ceil(log2 s): the ue8m0
	// scale format (an 8-bit exponent), which the report recommends for
	// the activations after attention and before the MoE's SwiGLU.
	ScalePow2
)

// Scale returns the scale of an activation tile whose largest magnitude is
// amax: max(amax, 1e-4)/448, rounded up to a power of two with ScalePow2.
func Scale(amax float32, f ScaleFormat) float32 { return fp8x.Scale(amax, f == ScalePow2) }

// WeightScale returns the scale of a 128x128 weight block whose largest
// magnitude is amax: amax/448 (no floor: weights may be tiny), 1 for an
// all-zero block, rounded up to a power of two with ScalePow2.
func WeightScale(amax float32, f ScaleFormat) float32 { return fp8x.WeightScale(amax, f == ScalePow2) }

// blocks returns ceil(n/128).
func blocks(n int) int { return fp8x.Blocks(n) }

// Tiles is a matrix quantised per 1x128 tile along its rows: element (i, j)
// is approximately Codes[i*Cols+j].Float32() · Scales[i*ScaleCols()+j/128].
type Tiles struct {
	Rows, Cols int
	Codes      []E4M3    // Rows×Cols, row-major
	Scales     []float32 // Rows×ceil(Cols/128), row-major
}

// NewTiles returns zeroed storage for a rows×cols matrix of tiles.
func NewTiles(rows, cols int) *Tiles {
	return &Tiles{Rows: rows, Cols: cols, Codes: make([]E4M3, rows*cols), Scales: make([]float32, rows*blocks(cols))}
}

// ScaleCols returns ceil(Cols/128), the number of tiles per row.
func (t *Tiles) ScaleCols() int { return blocks(t.Cols) }

// Check returns an error unless the slices match the shape.
func (t *Tiles) Check(what string) error {
	switch {
	case t.Rows < 0 || t.Cols < 0:
		return fmt.Errorf("%s: negative shape %dx%d", what, t.Rows, t.Cols)
	case len(t.Codes) != t.Rows*t.Cols:
		return fmt.Errorf("%s: %dx%d tiles need %d codes, have %d", what, t.Rows, t.Cols, t.Rows*t.Cols, len(t.Codes))
	case len(t.Scales) != t.Rows*t.ScaleCols():
		return fmt.Errorf("%s: %dx%d tiles need %d scales, have %d", what, t.Rows, t.Cols, t.Rows*t.ScaleCols(), len(t.Scales))
	}
	return nil
}

// QuantizeTiles quantises x per 1x128 tile (report §3.3.2): each tile's
// scale is Scale(max |x| over the tile, f) and its codes the saturating
// round-to-nearest-even E4M3 of x/scale, as the reference's act_quant.
// A NaN in a tile makes its scale NaN; an infinity makes it +Inf.
func QuantizeTiles(x dsv3.Matrix, f ScaleFormat) (*Tiles, error) {
	if err := x.CheckShape("fp8: QuantizeTiles input", x.Rows, x.Cols); err != nil {
		return nil, err
	}
	t := NewTiles(x.Rows, x.Cols)
	t.quantize(x, f)
	return t, nil
}

// QuantizeTilesInto is QuantizeTiles into existing storage of x's shape.
func QuantizeTilesInto(t *Tiles, x dsv3.Matrix, f ScaleFormat) error {
	if err := x.CheckShape("fp8: QuantizeTilesInto input", t.Rows, t.Cols); err != nil {
		return err
	}
	if err := t.Check("fp8: QuantizeTilesInto tiles"); err != nil {
		return err
	}
	t.quantize(x, f)
	return nil
}

func (t *Tiles) quantize(x dsv3.Matrix, f ScaleFormat) {
	if t.Rows == 0 || t.Cols == 0 {
		return
	}
	fp8x.QuantizeRows(t.Rows, t.Cols, x.Data, x.Stride, bytesOf(t.Codes), t.Cols, t.Scales, t.ScaleCols(), f == ScalePow2)
}

// Dequantize returns the float32 matrix the tiles represent, code value
// times tile scale. (A tile whose largest magnitude is within a rounding
// step of the float32 range may dequantise to ±Inf.)
func (t *Tiles) Dequantize() dsv3.Matrix {
	m := dsv3.NewMatrix(t.Rows, t.Cols)
	sc := t.ScaleCols()
	for i := 0; i < t.Rows; i++ {
		row := m.Row(i)
		fp8x.Active.Decode(row, bytesOf(t.Codes[i*t.Cols:(i+1)*t.Cols]))
		for j := range row {
			row[j] *= t.Scales[i*sc+j/BlockSize]
		}
	}
	return m
}

// q returns the kernel view of the tiles.
func (t *Tiles) q() *fp8x.Q {
	return &fp8x.Q{Codes: bytesOf(t.Codes), Stride: t.Cols, Scales: t.Scales, ScaleStride: t.ScaleCols(), Group: 1}
}
