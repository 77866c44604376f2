package fp8

import (
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/safetensors"
	"github.com/dsv3go/dsv3/internal/testutil"
)

// checkpointWeight wraps a tiny-checkpoint FP8 weight without copying it.
func checkpointWeight(t *testing.T, s *safetensors.Set, name string) *BlockWeight {
	t.Helper()
	w, err := s.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.Tensor(name + "_scale_inv")
	if err != nil {
		t.Fatal(err)
	}
	if w.DType != safetensors.F8E4M3 || sc.DType != safetensors.F32 || len(w.Shape) != 2 {
		t.Fatalf("%s: %s %v with scales %s", name, w.DType, w.Shape, sc.DType)
	}
	b, err := BlockWeightFromBytes(w.Shape[0], w.Shape[1], w.Data, sc.Data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTinyQProjFP8GEMM runs layer 0's q_a_proj (the "wq_a" of the
// reference, [128, 256]: the tiny model has q_lora_rank 128) on the input
// the reference's gemm_impl="fp8" run fed it, and compares with its output.
func TestTinyQProjFP8GEMM(t *testing.T) {
	x := testutil.ExpectedMatrix(t, "fp8gemm_layer0_q_proj_input_seq40")
	want, shape := testutil.Expected(t, "fp8gemm_layer0_q_proj_output_seq40")
	w := checkpointWeight(t, testutil.Checkpoint(t), "model.layers.0.self_attn.q_a_proj.weight")
	if w.In != x.Cols || w.Out != shape[1] || x.Rows != shape[0] {
		t.Fatalf("q_a_proj [%d, %d] does not fit input %dx%d / output %v", w.Out, w.In, x.Rows, x.Cols, shape)
	}
	for _, workers := range []int{1, 2} {
		w.Workers = workers
		y := dsv3.NewMatrix(x.Rows, w.Out)
		ActQuant{W: w}.MulT(y, x, false)
		if e := testutil.MatrixRelErr(y, want); !(e <= 1e-5) {
			t.Errorf("workers %d: relative error %.3g > 1e-5", workers, e)
		} else {
			t.Logf("workers %d: relative error %.3g", workers, e)
		}
		// Row by row (the GEMV path) gives the same.
		for i := 0; i < x.Rows; i++ {
			ActQuant{W: w}.MulT(y.Slice(i, i+1), x.Slice(i, i+1), false)
		}
		if e := testutil.MatrixRelErr(y, want); !(e <= 1e-5) {
			t.Errorf("workers %d, row by row: relative error %.3g > 1e-5", workers, e)
		}
	}
}
