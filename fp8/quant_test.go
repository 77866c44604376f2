package fp8

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/safetensors"
	"github.com/dsv3go/dsv3/internal/testutil"
)

// quantCases opens fixtures/common/quant_cases.safetensors.
func quantCases(t *testing.T) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(testutil.Fixture(t, "common", "quant_cases.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func tensor(t *testing.T, f *safetensors.File, name string, dt safetensors.DType) *safetensors.Tensor {
	t.Helper()
	tn, err := f.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	if tn.DType != dt {
		t.Fatalf("%s: dtype %s, want %s", name, tn.DType, dt)
	}
	return tn
}

// f32Matrix reads a 2-D F32 tensor.
func f32Matrix(t *testing.T, f *safetensors.File, name string) dsv3.Matrix {
	t.Helper()
	tn := tensor(t, f, name, safetensors.F32)
	if len(tn.Shape) != 2 {
		t.Fatalf("%s: shape %v", name, tn.Shape)
	}
	m := dsv3.NewMatrix(tn.Shape[0], tn.Shape[1])
	for i := range m.Data {
		m.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(tn.Data[4*i:]))
	}
	return m
}

func codes(t *testing.T, f *safetensors.File, name string) ([]byte, []int) {
	t.Helper()
	tn := tensor(t, f, name, safetensors.F8E4M3)
	return tn.Data, tn.Shape
}

func TestQuantizeTilesFixture(t *testing.T) {
	f := quantCases(t)
	x := f32Matrix(t, f, "act.x_f32")
	for _, c := range []struct {
		format       ScaleFormat
		codes, scale string
	}{
		{ScaleF32, "act.q", "act.scale"},
		{ScalePow2, "act.q_ue8m0", "act.scale_ue8m0"},
	} {
		want, shape := codes(t, f, c.codes)
		ws := f32Matrix(t, f, c.scale)
		if shape[0] != x.Rows || shape[1] != x.Cols || ws.Rows != x.Rows || ws.Cols != blocks(x.Cols) {
			t.Fatalf("%s %v / %s %dx%d do not match x %dx%d", c.codes, shape, c.scale, ws.Rows, ws.Cols, x.Rows, x.Cols)
		}
		q, err := QuantizeTiles(x, c.format)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range ws.Data {
			if math.Float32bits(q.Scales[i]) != math.Float32bits(s) {
				t.Errorf("%s[%d] = %g (%#08x), want %g (%#08x)", c.scale, i, q.Scales[i], math.Float32bits(q.Scales[i]), s, math.Float32bits(s))
			}
		}
		bad := 0
		for i, w := range want {
			if byte(q.Codes[i]) != w {
				if bad++; bad <= 5 {
					t.Errorf("%s[%d] = %#02x, want %#02x (x = %g)", c.codes, i, q.Codes[i], w, x.Data[i])
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d codes differ", c.codes, bad, len(want))
		}
	}
}

func TestQuantizeWeightFixture(t *testing.T) {
	f := quantCases(t)
	w := f32Matrix(t, f, "block.w_f32")
	want, shape := codes(t, f, "block.weight")
	ws := f32Matrix(t, f, "block.weight_scale_inv")
	deq := f32Matrix(t, f, "block.dequant_f32")
	if shape[0] != w.Rows || shape[1] != w.Cols || ws.Rows != blocks(w.Rows) || ws.Cols != blocks(w.Cols) {
		t.Fatalf("block.weight %v, scales %dx%d for w %dx%d", shape, ws.Rows, ws.Cols, w.Rows, w.Cols)
	}
	b, err := QuantizeWeight(w, ScaleF32)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range ws.Data {
		if math.Float32bits(b.ScaleInv[i]) != math.Float32bits(s) {
			t.Errorf("weight_scale_inv[%d] = %g, want %g", i, b.ScaleInv[i], s)
		}
	}
	bad := 0
	for i, c := range want {
		if byte(b.Codes[i]) != c {
			if bad++; bad <= 5 {
				t.Errorf("block.weight[%d] = %#02x, want %#02x", i, b.Codes[i], c)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d codes differ", bad, len(want))
	}
	// Dequantisation of the fixture's own codes and scales, bit-exact.
	fw, err := BlockWeightFromBytes(w.Rows, w.Cols, want, tensor(t, f, "block.weight_scale_inv", safetensors.F32).Data)
	if err != nil {
		t.Fatal(err)
	}
	got := fw.Dequantize()
	for i, v := range deq.Data {
		if math.Float32bits(got.Data[i]) != math.Float32bits(v) {
			t.Fatalf("dequantised [%d] = %g, want %g", i, got.Data[i], v)
		}
	}
}

func TestGEMMFixture(t *testing.T) {
	f := quantCases(t)
	x := f32Matrix(t, f, "act.x_f32")
	wc, shape := codes(t, f, "gemm.weight")
	w, err := BlockWeightFromBytes(shape[0], shape[1], wc, tensor(t, f, "gemm.weight_scale_inv", safetensors.F32).Data)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got dsv3.Matrix) {
		t.Helper()
		want := f32Matrix(t, f, name)
		w64 := make([]float64, len(want.Data))
		for i, v := range want.Data {
			w64[i] = float64(v)
		}
		if e := testutil.MatrixRelErr(got, w64); e > 1e-5 || math.IsNaN(e) {
			t.Errorf("%s: relative error %.3g > 1e-5", name, e)
		} else {
			t.Logf("%s: relative error %.3g", name, e)
		}
	}
	for _, workers := range []int{1, 2} {
		w.Workers = workers
		y := dsv3.NewMatrix(x.Rows, w.Out)
		w.MulT(y, x, false)
		check("gemm.y_dequant", y)
		y.Zero()
		ActQuant{W: w}.MulT(y, x, false)
		check("gemm.y_fp8gemm", y)
		// The same through MulT with the fixture's own quantised input.
		ac, _ := codes(t, f, "act.q")
		as := f32Matrix(t, f, "act.scale")
		tiles := &Tiles{Rows: x.Rows, Cols: x.Cols, Codes: AsE4M3(ac), Scales: as.Data}
		y.Zero()
		if err := MulT(y, tiles, w, false, workers); err != nil {
			t.Fatal(err)
		}
		check("gemm.y_fp8gemm", y)
	}
}
