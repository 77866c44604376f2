package yarn

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// Layout says which values of a rotary vector form the rotated pairs.
type Layout int

const (
	// Interleaved pairs (x[2i], x[2i+1]): the DeepSeek-V3 checkpoint's and
	// the reference's layout.
	Interleaved Layout = iota
	// RotateHalf pairs (x[i], x[i+d/2]): the layout Hugging Face
	// transformers rotates after de-interleaving (see Deinterleave).
	RotateHalf
)

// String returns the layout's name.
func (l Layout) String() string {
	switch l {
	case Interleaved:
		return "interleaved"
	case RotateHalf:
		return "rotate-half"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// Block says where the rotary vectors lie in the rows of a matrix: each row
// holds Heads vectors of Dim values, head h's at columns
// [h·Stride, h·Stride+Dim).
type Block struct {
	// Heads is the number of rotary vectors per row (1 for MLA's shared key).
	Heads int
	// Stride is the column distance between consecutive heads' vectors;
	// 0 means Dim (packed).
	Stride int
	// Layout is the pair layout; the zero value is Interleaved.
	Layout Layout
}

type direction int

const (
	forward   direction = iota // y = R x
	transpose                  // y = Rᵀ x, the backward
	inverse                    // y = R⁻¹ x
)

// Rotate rotates, in place, every rotary vector of x: row r of x is a token
// at position s.Start + r mod s.Len (x has s.Count·s.Len rows), and b says
// where its vectors lie. x must have exactly (b.Heads−1)·Stride + Dim
// columns, so that a view starting at the first head's rotary part and
// running to the end of the row fits (for MLA's queries, the view after the
// no-RoPE columns). The positions [s.Start, s.Start+s.Len) must lie in the
// table.
func (t *Table) Rotate(x dsv3.Matrix, s dsv3.Seq, b Block) error {
	return t.apply(x, s, b, forward)
}

// RotateBackward applies the transposed rotation in place: given dL/dy in x
// it leaves dL/dx there. Its arguments are those of Rotate.
func (t *Table) RotateBackward(x dsv3.Matrix, s dsv3.Seq, b Block) error {
	return t.apply(x, s, b, transpose)
}

// Unrotate undoes Rotate in place. It equals RotateBackward unless the
// table's Magnitude is not 1.
func (t *Table) Unrotate(x dsv3.Matrix, s dsv3.Seq, b Block) error {
	return t.apply(x, s, b, inverse)
}

// RotateAt is Rotate for rows at arbitrary positions: row r of x is at
// position pos[r] (len(pos) = x.Rows), as when independent sequences of
// different lengths decode one token each.
func (t *Table) RotateAt(x dsv3.Matrix, pos []int, b Block) error {
	if len(pos) != x.Rows {
		return fmt.Errorf("yarn: %d positions for a matrix of %d rows", len(pos), x.Rows)
	}
	for r, p := range pos {
		if p < t.Start || p >= t.Start+t.Len {
			return fmt.Errorf("yarn: position %d of row %d outside the table's [%d, %d)", p, r, t.Start, t.Start+t.Len)
		}
	}
	stride, err := t.checkBlock(x, b)
	if err != nil {
		return err
	}
	t.run(x, func(r int) int { return pos[r] }, b, stride, forward)
	return nil
}

// minRotateWork is the number of values below which rotation stays on one
// goroutine.
const minRotateWork = 1 << 15

// checkBlock validates b and x's shape against it and returns the stride.
func (t *Table) checkBlock(x dsv3.Matrix, b Block) (int, error) {
	dim := t.Dim()
	if b.Heads < 1 {
		return 0, fmt.Errorf("yarn: block heads = %d, want >= 1", b.Heads)
	}
	stride := b.Stride
	if stride == 0 {
		stride = dim
	}
	if stride < dim {
		return 0, fmt.Errorf("yarn: block stride = %d is less than the rotary dimension %d", stride, dim)
	}
	if b.Layout != Interleaved && b.Layout != RotateHalf {
		return 0, fmt.Errorf("yarn: block layout = %v is unknown", b.Layout)
	}
	need := (b.Heads-1)*stride + dim
	if x.Cols != need {
		return 0, fmt.Errorf("yarn: rotary block has %d columns, want %d (%d heads of %d rotary values, stride %d)", x.Cols, need, b.Heads, dim, stride)
	}
	if err := x.CheckShape("yarn: rotary block", x.Rows, need); err != nil {
		return 0, err
	}
	return stride, nil
}

func (t *Table) apply(x dsv3.Matrix, s dsv3.Seq, b Block, dir direction) error {
	if s.Count < 0 || s.Len < 0 || s.Start < 0 {
		return fmt.Errorf("yarn: sequence layout %+v has a negative field", s)
	}
	if s.Count*s.Len != x.Rows {
		return fmt.Errorf("yarn: %d sequences of %d tokens need %d rows, matrix has %d", s.Count, s.Len, s.Count*s.Len, x.Rows)
	}
	stride, err := t.checkBlock(x, b)
	if err != nil {
		return err
	}
	if x.Rows == 0 {
		return nil
	}
	if s.Start < t.Start || s.Start+s.Len > t.Start+t.Len {
		return fmt.Errorf("yarn: positions [%d, %d) outside the table's [%d, %d)", s.Start, s.Start+s.Len, t.Start, t.Start+t.Len)
	}
	t.run(x, func(r int) int { return s.Start + r%s.Len }, b, stride, dir)
	return nil
}

// run rotates every row r of x at position pos(r); its arguments are valid.
func (t *Table) run(x dsv3.Matrix, pos func(r int) int, b Block, stride int, dir direction) {
	dim := t.Dim()
	inv := float32(1)
	if dir == inverse && t.mag != 1 {
		inv = float32(1 / (t.mag * t.mag))
	}
	neg := dir != forward
	grain := max(1, minRotateWork/(b.Heads*dim))
	parallel.For(x.Rows, grain, 0, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			c, sn := t.At(pos(r))
			row := x.Row(r)
			for h := 0; h < b.Heads; h++ {
				v := row[h*stride : h*stride+dim]
				switch {
				case b.Layout == Interleaved && !neg:
					rotInterleaved(v, c, sn)
				case b.Layout == Interleaved:
					rotInterleavedT(v, c, sn)
				case !neg:
					rotHalf(v, c, sn)
				default:
					rotHalfT(v, c, sn)
				}
				if inv != 1 {
					for i := range v {
						v[i] *= inv
					}
				}
			}
		}
	})
}

// rotInterleaved sets (v[2i], v[2i+1]) to the pair times (c[i] + i·s[i]).
func rotInterleaved(v, c, s []float32) {
	n := len(c)
	s = s[:n]
	v = v[:2*n]
	for i := 0; i < n; i++ {
		p := v[2*i : 2*i+2 : 2*i+2]
		a, b := p[0], p[1]
		p[0] = a*c[i] - b*s[i]
		p[1] = a*s[i] + b*c[i]
	}
}

// rotInterleavedT multiplies by the conjugate (c[i] − i·s[i]).
func rotInterleavedT(v, c, s []float32) {
	n := len(c)
	s = s[:n]
	v = v[:2*n]
	for i := 0; i < n; i++ {
		p := v[2*i : 2*i+2 : 2*i+2]
		a, b := p[0], p[1]
		p[0] = a*c[i] + b*s[i]
		p[1] = b*c[i] - a*s[i]
	}
}

// rotHalf rotates the pairs (v[i], v[i+n]).
func rotHalf(v, c, s []float32) {
	n := len(c)
	s = s[:n]
	x, y := v[:n], v[n:2*n]
	for i := 0; i < n; i++ {
		a, b := x[i], y[i]
		x[i] = a*c[i] - b*s[i]
		y[i] = a*s[i] + b*c[i]
	}
}

// rotHalfT rotates the pairs (v[i], v[i+n]) by the transpose.
func rotHalfT(v, c, s []float32) {
	n := len(c)
	s = s[:n]
	x, y := v[:n], v[n:2*n]
	for i := 0; i < n; i++ {
		a, b := x[i], y[i]
		x[i] = a*c[i] + b*s[i]
		y[i] = b*c[i] - a*s[i]
	}
}

// Deinterleave writes the rotate-half arrangement of the interleaved
// vector src into dst: dst[i] = src[2i], dst[n/2+i] = src[2i+1], as Hugging
// Face transformers permutes DeepSeek-V3's q_pe and k_pe. src and dst must
// have the same even length and must not overlap.
func Deinterleave(dst, src []float32) error {
	if len(src)%2 != 0 || len(dst) != len(src) {
		return fmt.Errorf("yarn: deinterleave of %d values into %d, want equal even lengths", len(src), len(dst))
	}
	n := len(src) / 2
	for i := 0; i < n; i++ {
		dst[i], dst[n+i] = src[2*i], src[2*i+1]
	}
	return nil
}

// Interleave undoes Deinterleave: dst[2i] = src[i], dst[2i+1] = src[n/2+i].
func Interleave(dst, src []float32) error {
	if len(src)%2 != 0 || len(dst) != len(src) {
		return fmt.Errorf("yarn: interleave of %d values into %d, want equal even lengths", len(src), len(dst))
	}
	n := len(src) / 2
	for i := 0; i < n; i++ {
		dst[2*i], dst[2*i+1] = src[i], src[n+i]
	}
	return nil
}
