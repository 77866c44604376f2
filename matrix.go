package dsv3

import (
	"fmt"
	"math"
)

// Matrix is a row-major float32 matrix view: element (i, j) is
// Data[i*Stride+j]. Views made by Rows, View and Row share Data; nothing in
// dsv3 copies a Matrix behind the caller's back.
//
// Activations are matrices of [tokens, features]; weights are [out, in], as
// PyTorch and the checkpoints store them; a vector is a 1×n matrix.
type Matrix struct {
	Rows, Cols int
	// Stride is the distance in Data between the starts of two rows (>= Cols).
	Stride int
	Data   []float32
}

// NewMatrix returns a zeroed, contiguous rows×cols matrix.
func NewMatrix(rows, cols int) Matrix {
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("dsv3: NewMatrix(%d, %d): negative size", rows, cols))
	}
	return Matrix{Rows: rows, Cols: cols, Stride: cols, Data: make([]float32, rows*cols)}
}

// MatrixFrom wraps data as a contiguous rows×cols matrix without copying.
func MatrixFrom(rows, cols int, data []float32) (Matrix, error) {
	if rows < 0 || cols < 0 {
		return Matrix{}, fmt.Errorf("dsv3: matrix shape %dx%d is negative", rows, cols)
	}
	if len(data) != rows*cols {
		return Matrix{}, fmt.Errorf("dsv3: matrix %dx%d needs %d values, got %d", rows, cols, rows*cols, len(data))
	}
	return Matrix{Rows: rows, Cols: cols, Stride: cols, Data: data}, nil
}

// Row returns row i as a slice of length Cols sharing m's storage.
func (m Matrix) Row(i int) []float32 {
	return m.Data[i*m.Stride : i*m.Stride+m.Cols : i*m.Stride+m.Cols]
}

// At returns element (i, j).
func (m Matrix) At(i, j int) float32 { return m.Data[i*m.Stride+j] }

// Set sets element (i, j) to v.
func (m Matrix) Set(i, j int, v float32) { m.Data[i*m.Stride+j] = v }

// Slice returns the view of rows [r0, r1).
func (m Matrix) Slice(r0, r1 int) Matrix {
	return m.View(r0, 0, r1-r0, m.Cols)
}

// View returns the rows×cols view whose top-left element is (r0, c0).
func (m Matrix) View(r0, c0, rows, cols int) Matrix {
	if r0 < 0 || c0 < 0 || rows < 0 || cols < 0 || r0+rows > m.Rows || c0+cols > m.Cols {
		panic(fmt.Sprintf("dsv3: view (%d,%d)+%dx%d outside a %dx%d matrix", r0, c0, rows, cols, m.Rows, m.Cols))
	}
	if rows == 0 || cols == 0 {
		return Matrix{Rows: rows, Cols: cols, Stride: m.Stride}
	}
	off := r0*m.Stride + c0
	return Matrix{Rows: rows, Cols: cols, Stride: m.Stride, Data: m.Data[off : off+(rows-1)*m.Stride+cols]}
}

// Contiguous reports whether the rows follow one another without gaps.
func (m Matrix) Contiguous() bool { return m.Stride == m.Cols || m.Rows <= 1 }

// Clone returns a contiguous copy of m.
func (m Matrix) Clone() Matrix {
	c := NewMatrix(m.Rows, m.Cols)
	c.CopyFrom(m)
	return c
}

// CopyFrom copies src, which must have m's shape, into m.
func (m Matrix) CopyFrom(src Matrix) {
	if src.Rows != m.Rows || src.Cols != m.Cols {
		panic(fmt.Sprintf("dsv3: copy of a %dx%d matrix into a %dx%d one", src.Rows, src.Cols, m.Rows, m.Cols))
	}
	for i := 0; i < m.Rows; i++ {
		copy(m.Row(i), src.Row(i))
	}
}

// Zero sets every element of m to 0.
func (m Matrix) Zero() {
	for i := 0; i < m.Rows; i++ {
		clear(m.Row(i))
	}
}

// Empty reports whether m has no elements.
func (m Matrix) Empty() bool { return m.Rows == 0 || m.Cols == 0 }

// CheckShape returns an error naming what unless m is rows×cols.
func (m Matrix) CheckShape(what string, rows, cols int) error {
	if m.Rows != rows || m.Cols != cols {
		return fmt.Errorf("%s: shape %dx%d, want %dx%d", what, m.Rows, m.Cols, rows, cols)
	}
	if m.Rows > 0 && m.Cols > 0 && (m.Stride < m.Cols || len(m.Data) < (m.Rows-1)*m.Stride+m.Cols) {
		return fmt.Errorf("%s: %dx%d view with stride %d over %d values is malformed", what, m.Rows, m.Cols, m.Stride, len(m.Data))
	}
	return nil
}

// CheckFinite returns an error naming what and the first position of a NaN
// or infinity in m.
func (m Matrix) CheckFinite(what string) error {
	for i := 0; i < m.Rows; i++ {
		for j, v := range m.Row(i) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%s: non-finite value %v at (%d, %d)", what, v, i, j)
			}
		}
	}
	return nil
}
