// Package testutil gives tests access to the reference fixtures in
// ../shared/fixtures (relative to the repository root): raw arrays, the
// manifest, and the tiny checkpoint's tensors decoded to float32 by an
// independent, table-free decoder (so that tests of the fp8 package do not
// check its decoder against itself).
//
// A test that needs the fixtures skips with a clear message when the folder
// is absent (a user who fetched the module alone), and fails instead when
// the CI environment variable is set: CI always has them.
package testutil

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/safetensors"
)

// repoRoot walks up from the working directory to the directory holding
// go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// SharedDir returns the path of ../shared joined with parts, skipping the
// test (or failing it under CI) when it does not exist.
func SharedDir(t testing.TB, parts ...string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(append([]string{root, "..", "shared"}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("reference fixture %s is missing under CI: %v", p, err)
		}
		t.Skipf("reference fixture %s not present (it lives in ../shared beside the repository); skipping", p)
	}
	return p
}

// Fixture returns the path of ../shared/fixtures joined with parts.
func Fixture(t testing.TB, parts ...string) string {
	t.Helper()
	return SharedDir(t, append([]string{"fixtures"}, parts...)...)
}

// ReadJSON decodes the JSON file at path into v.
func ReadJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Array is one entry of fixtures/tiny/expected/manifest.json "arrays".
type Array struct {
	File        string          `json:"file"`
	DType       string          `json:"dtype"`
	Shape       []int           `json:"shape"`
	Description string          `json:"description"`
	Check       json.RawMessage `json:"check"`
	Input       string          `json:"input"`
	Param       string          `json:"param"`
	Rows        []int           `json:"rows"`
}

// Manifest is fixtures/tiny/expected/manifest.json, parsed loosely: the
// arrays, with the rest kept raw.
type Manifest struct {
	Arrays map[string]Array `json:"arrays"`
	Raw    map[string]json.RawMessage
}

// TinyManifest reads the tiny fixture's manifest.
func TinyManifest(t testing.TB) *Manifest {
	t.Helper()
	p := Fixture(t, "tiny", "expected", "manifest.json")
	m := &Manifest{}
	ReadJSON(t, p, m)
	ReadJSON(t, p, &m.Raw)
	return m
}

// Expected reads the named array of the tiny fixture ("attn_layer0_input_f32_seq40")
// as float64 values (f32 arrays are widened exactly) with its shape.
func Expected(t testing.TB, name string) ([]float64, []int) {
	t.Helper()
	m := TinyManifest(t)
	a, ok := m.Arrays[name]
	if !ok {
		t.Fatalf("manifest has no array %q", name)
	}
	b, err := os.ReadFile(Fixture(t, "tiny", "expected", a.File))
	if err != nil {
		t.Fatal(err)
	}
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	out := make([]float64, n)
	switch a.DType {
	case "f32":
		if len(b) != 4*n {
			t.Fatalf("%s: %d bytes, want %d", a.File, len(b), 4*n)
		}
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case "f64":
		if len(b) != 8*n {
			t.Fatalf("%s: %d bytes, want %d", a.File, len(b), 8*n)
		}
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
	default:
		t.Fatalf("%s: dtype %q", name, a.DType)
	}
	return out, a.Shape
}

// ExpectedMatrix reads a two-dimensional float32 array of the tiny fixture
// as a Matrix.
func ExpectedMatrix(t testing.TB, name string) dsv3.Matrix {
	t.Helper()
	v, shape := Expected(t, name)
	if len(shape) != 2 {
		t.Fatalf("%s: shape %v is not two-dimensional", name, shape)
	}
	m := dsv3.NewMatrix(shape[0], shape[1])
	for i, x := range v {
		m.Data[i] = float32(x)
	}
	return m
}

// Checkpoint opens the tiny checkpoint (through its index).
func Checkpoint(t testing.TB) *safetensors.Set {
	t.Helper()
	s, err := safetensors.OpenDir(Fixture(t, "tiny"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// E4M3 decodes one float8_e4m3fn code from its definition: sign, 4-bit
// exponent with bias 7, 3-bit mantissa, subnormals at exponent 0, NaN for
// S.1111.111, no infinities.
func E4M3(c byte) float32 {
	sign := float32(1)
	if c&0x80 != 0 {
		sign = -1
	}
	e := int(c>>3) & 0xf
	m := float32(c & 7)
	if e == 15 && c&7 == 7 {
		return float32(math.NaN())
	}
	if e == 0 {
		return sign * m / 8 * float32(math.Ldexp(1, -6))
	}
	return sign * (1 + m/8) * float32(math.Ldexp(1, e-7))
}

// TensorF32 returns the named checkpoint tensor as a float32 matrix: F32,
// BF16 and F16 are widened; an F8_E4M3 weight is dequantised with its
// "<name>_scale_inv" (code value × scale of its 128×128 block), as the
// reference does. A 1-D tensor becomes a 1×n matrix.
func TensorF32(t testing.TB, s *safetensors.Set, name string) dsv3.Matrix {
	t.Helper()
	tn, err := s.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	rows, cols := 1, 1
	switch len(tn.Shape) {
	case 1:
		cols = tn.Shape[0]
	case 2:
		rows, cols = tn.Shape[0], tn.Shape[1]
	default:
		t.Fatalf("%s: shape %v", name, tn.Shape)
	}
	m := dsv3.NewMatrix(rows, cols)
	d := tn.Data
	switch tn.DType {
	case safetensors.F32:
		for i := range m.Data {
			m.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case safetensors.BF16:
		for i := range m.Data {
			m.Data[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(d[2*i:])) << 16)
		}
	case safetensors.F8E4M3:
		sc := TensorF32(t, s, name+"_scale_inv")
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				m.Data[i*cols+j] = E4M3(d[i*cols+j]) * sc.At(i/128, j/128)
			}
		}
	default:
		t.Fatalf("%s: dtype %s not handled", name, tn.DType)
	}
	return m
}

// RelErr returns max|got-want| / max|want|, the fixtures' strict measure.
func RelErr(got []float32, want []float64) float64 {
	var num, den float64
	for i, w := range want {
		num = math.Max(num, math.Abs(float64(got[i])-w))
		den = math.Max(den, math.Abs(w))
	}
	if den == 0 {
		return num
	}
	return num / den
}

// MatrixRelErr is RelErr for a Matrix against a row-major want.
func MatrixRelErr(got dsv3.Matrix, want []float64) float64 {
	flat := make([]float32, 0, got.Rows*got.Cols)
	for i := 0; i < got.Rows; i++ {
		flat = append(flat, got.Row(i)...)
	}
	return RelErr(flat, want)
}
