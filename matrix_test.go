package dsv3

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// randMatrix returns a rows×cols matrix of standard normal values.
func randMatrix(r *rand.Rand, rows, cols int) Matrix {
	m := NewMatrix(rows, cols)
	for i := range m.Data {
		m.Data[i] = float32(r.NormFloat64())
	}
	return m
}

// relErr returns max|got-want| / max|want| over the elements of got.
func relErr(got Matrix, want []float64) float64 {
	var num, den float64
	for i := 0; i < got.Rows; i++ {
		for j, v := range got.Row(i) {
			w := want[i*got.Cols+j]
			num = math.Max(num, math.Abs(float64(v)-w))
			den = math.Max(den, math.Abs(w))
		}
	}
	if den == 0 {
		return num
	}
	return num / den
}

// checkOutside fails unless big equals before everywhere outside the
// rows×cols block at (r0, c0).
func checkOutside(t *testing.T, big, before Matrix, r0, c0, rows, cols int) {
	t.Helper()
	for i := 0; i < big.Rows; i++ {
		for j := 0; j < big.Cols; j++ {
			in := i >= r0 && i < r0+rows && j >= c0 && j < c0+cols
			if !in && math.Float32bits(big.At(i, j)) != math.Float32bits(before.At(i, j)) {
				t.Fatalf("element (%d, %d) outside the view changed", i, j)
			}
		}
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

func TestMatrixViews(t *testing.T) {
	m := NewMatrix(4, 5)
	if m.Stride != 5 || len(m.Data) != 20 || !m.Contiguous() {
		t.Fatalf("NewMatrix: %+v", m)
	}
	for i, v := range m.Data {
		if v != 0 {
			t.Fatalf("NewMatrix not zeroed at %d", i)
		}
		m.Data[i] = float32(i)
	}
	if m.At(2, 3) != 13 {
		t.Errorf("At(2, 3) = %v", m.At(2, 3))
	}
	if o, i := m.Dims(); o != 4 || i != 5 {
		t.Errorf("Dims = %d, %d", o, i)
	}
	v := m.View(1, 2, 2, 3) // rows 1-2, cols 2-4
	if v.Rows != 2 || v.Cols != 3 || v.Stride != 5 || v.Contiguous() {
		t.Fatalf("View: %+v", v)
	}
	if v.At(0, 0) != 7 || v.At(1, 2) != 14 {
		t.Errorf("view elements %v %v", v.At(0, 0), v.At(1, 2))
	}
	if len(v.Data) != 5+3 {
		t.Errorf("view spans %d values, want 8 (no more than it needs)", len(v.Data))
	}
	v.Set(1, 1, -1) // shares storage
	if m.At(2, 3) != -1 {
		t.Error("View does not share storage")
	}
	row := v.Row(1)
	if len(row) != 3 || cap(row) != 3 || row[0] != 12 {
		t.Errorf("Row(1) = %v (cap %d)", row, cap(row))
	}
	s := m.Slice(1, 3)
	if s.Rows != 2 || s.Cols != 5 || s.At(0, 0) != 5 || !s.Contiguous() {
		t.Errorf("Slice: %+v", s)
	}
	if e := m.View(4, 5, 0, 0); !e.Empty() || e.Rows != 0 {
		t.Errorf("empty view at the corner: %+v", e)
	}
	if e := m.View(0, 0, 3, 0); !e.Empty() {
		t.Errorf("zero-column view: %+v", e)
	}
	if m.Empty() || !NewMatrix(0, 3).Empty() {
		t.Error("Empty")
	}
	mustPanic(t, "View past the rows", func() { m.View(3, 0, 2, 1) })
	mustPanic(t, "View past the columns", func() { m.View(0, 4, 1, 2) })
	mustPanic(t, "View at a negative offset", func() { m.View(-1, 0, 1, 1) })
	mustPanic(t, "NewMatrix(-1, 2)", func() { NewMatrix(-1, 2) })
	if one := m.View(2, 0, 1, 3); !one.Contiguous() {
		t.Error("a single-row view is contiguous")
	}
}

func TestMatrixFrom(t *testing.T) {
	d := []float32{1, 2, 3, 4, 5, 6}
	m, err := MatrixFrom(2, 3, d)
	if err != nil || m.At(1, 0) != 4 || &m.Data[0] != &d[0] {
		t.Fatalf("MatrixFrom: %+v, %v", m, err)
	}
	for _, c := range []struct {
		r, c, n int
		want    string
	}{{2, 3, 5, "needs 6 values, got 5"}, {-1, 3, 0, "negative"}, {2, -3, 0, "negative"}} {
		if _, err := MatrixFrom(c.r, c.c, make([]float32, c.n)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("MatrixFrom(%d, %d, %d values): %v, want %q", c.r, c.c, c.n, err, c.want)
		}
	}
}

func TestCloneCopyZero(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	big := randMatrix(r, 6, 7)
	before := big.Clone()
	v := big.View(1, 2, 3, 4)
	c := v.Clone()
	if c.Stride != 4 || len(c.Data) != 12 || !c.Contiguous() {
		t.Fatalf("Clone is not contiguous: %+v", c)
	}
	for i := 0; i < 3; i++ {
		for j := 0; j < 4; j++ {
			if c.At(i, j) != before.At(1+i, 2+j) {
				t.Fatalf("Clone(%d, %d) = %v, want %v", i, j, c.At(i, j), before.At(1+i, 2+j))
			}
		}
	}
	c.Set(0, 0, 99)
	if big.At(1, 2) == 99 {
		t.Error("Clone shares storage")
	}
	// CopyFrom into a strided view touches only the view.
	src := randMatrix(r, 3, 4)
	v.CopyFrom(src)
	for i := 0; i < 3; i++ {
		for j := 0; j < 4; j++ {
			if big.At(1+i, 2+j) != src.At(i, j) {
				t.Fatalf("CopyFrom (%d, %d)", i, j)
			}
		}
	}
	checkOutside(t, big, before, 1, 2, 3, 4)
	mustPanic(t, "CopyFrom of another shape", func() { v.CopyFrom(NewMatrix(4, 3)) })
	v.Zero()
	for i := 0; i < 3; i++ {
		for j := 0; j < 4; j++ {
			if big.At(1+i, 2+j) != 0 {
				t.Fatal("Zero left a value in the view")
			}
		}
	}
	checkOutside(t, big, before, 1, 2, 3, 4)
}

func TestCheckShapeFinite(t *testing.T) {
	m := NewMatrix(3, 4)
	if err := m.CheckShape("x", 3, 4); err != nil {
		t.Error(err)
	}
	if err := m.CheckShape("q_a_proj input", 3, 5); err == nil || !strings.Contains(err.Error(), "q_a_proj input: shape 3x4, want 3x5") {
		t.Errorf("CheckShape mismatch: %v", err)
	}
	bad := Matrix{Rows: 3, Cols: 4, Stride: 3, Data: make([]float32, 12)}
	if err := bad.CheckShape("w", 3, 4); err == nil || !strings.Contains(err.Error(), "stride 3") {
		t.Errorf("CheckShape of a stride below Cols: %v", err)
	}
	short := Matrix{Rows: 3, Cols: 4, Stride: 4, Data: make([]float32, 11)}
	if err := short.CheckShape("w", 3, 4); err == nil || !strings.Contains(err.Error(), "over 11 values") {
		t.Errorf("CheckShape of short data: %v", err)
	}
	if err := NewMatrix(0, 4).CheckShape("e", 0, 4); err != nil {
		t.Errorf("empty matrix: %v", err)
	}

	big := NewMatrix(4, 6)
	v := big.View(1, 1, 2, 3)
	big.Set(0, 0, float32(math.NaN())) // outside the view: ignored
	big.Set(1, 4, float32(math.Inf(1)))
	if err := v.CheckFinite("v"); err != nil {
		t.Errorf("CheckFinite looked outside the view: %v", err)
	}
	for _, c := range []struct {
		val  float32
		want string
	}{{float32(math.NaN()), "NaN at (1, 2)"}, {float32(math.Inf(1)), "+Inf at (1, 2)"}, {float32(math.Inf(-1)), "-Inf at (1, 2)"}} {
		v.Set(1, 2, c.val)
		if err := v.CheckFinite("h"); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "h:") {
			t.Errorf("CheckFinite(%v): %v, want %q", c.val, err, c.want)
		}
	}
	v.Set(0, 1, float32(math.NaN()))
	if err := v.CheckFinite("h"); err == nil || !strings.Contains(err.Error(), "(0, 1)") {
		t.Errorf("CheckFinite reports %v, want the first position (0, 1)", err)
	}
}

// TestMatMulForms checks the three root GEMM wrappers against float64 loops
// on strided views, with and without accumulation.
func TestMatMulForms(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	view := func(rows, cols int) Matrix { return randMatrix(r, rows+2, cols+3).View(1, 2, rows, cols) }
	for _, sz := range [][3]int{{1, 1, 1}, {3, 7, 5}, {17, 33, 65}, {64, 31, 129}} {
		m, n, k := sz[0], sz[1], sz[2]
		for _, acc := range []bool{false, true} {
			a, b := view(m, k), view(k, n) // c = a·b
			bt := view(n, k)               // c = a·btᵀ
			at := view(k, m)               // c = atᵀ·b
			for _, form := range []string{"MatMul", "MatMulT", "MatTMul"} {
				c := view(m, n)
				before := c.Clone()
				want := make([]float64, m*n)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						var s float64
						for p := 0; p < k; p++ {
							switch form {
							case "MatMul":
								s += float64(a.At(i, p)) * float64(b.At(p, j))
							case "MatMulT":
								s += float64(a.At(i, p)) * float64(bt.At(j, p))
							case "MatTMul":
								s += float64(at.At(p, i)) * float64(b.At(p, j))
							}
						}
						if acc {
							s += float64(before.At(i, j))
						}
						want[i*n+j] = s
					}
				}
				switch form {
				case "MatMul":
					MatMul(c, a, b, acc)
				case "MatMulT":
					MatMulT(c, a, bt, acc)
				case "MatTMul":
					MatTMul(c, at, b, acc)
				}
				if e := relErr(c, want); e > 1e-5*math.Sqrt(float64(k)) {
					t.Errorf("%s m=%d n=%d k=%d acc=%v: relative error %g", form, m, n, k, acc, e)
				}
			}
		}
	}
	mustPanic(t, "MatMul with mismatched shapes", func() { MatMul(NewMatrix(2, 2), NewMatrix(2, 3), NewMatrix(2, 2), false) })
	mustPanic(t, "MatMulT with mismatched shapes", func() { MatMulT(NewMatrix(2, 2), NewMatrix(2, 3), NewMatrix(2, 2), false) })
	mustPanic(t, "MatTMul with mismatched shapes", func() { MatTMul(NewMatrix(2, 2), NewMatrix(3, 2), NewMatrix(2, 2), false) })
}
