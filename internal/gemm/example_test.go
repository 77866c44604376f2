package gemm_test

import (
	"fmt"

	"github.com/dsv3go/dsv3/internal/gemm"
)

// The three products of a linear layer y = x·Wᵀ, for 2 tokens, 3 inputs
// and 2 outputs, with row-major storage and W stored [out, in].
func ExampleSgemm() {
	x := []float32{1, 2, 3, 4, 5, 6}        // X  [2 tokens, 3 in]
	w := []float32{1, 0, -1, 0.5, 0.5, 0.5} // W  [2 out, 3 in]
	dy := []float32{1, 0, 0, 1}             // dY [2 tokens, 2 out]
	y, dx, dw := make([]float32, 4), make([]float32, 6), make([]float32, 6)

	// Forward: Y = X·Wᵀ (m=2 tokens, n=2 outputs, k=3 inputs).
	gemm.Sgemm(false, true, 2, 2, 3, x, 3, w, 3, y, 2, false, 0)
	// Input gradient: dX = dY·W (m=2, n=3, k=2).
	gemm.Sgemm(false, false, 2, 3, 2, dy, 2, w, 3, dx, 3, false, 0)
	// Weight gradient, accumulated: dW += dYᵀ·X (m=2, n=3, k=2 tokens).
	gemm.Sgemm(true, false, 2, 3, 2, dy, 2, x, 3, dw, 3, true, 0)

	fmt.Println("Y  =", y)
	fmt.Println("dX =", dx)
	fmt.Println("dW =", dw)
	// Output:
	// Y  = [-2 3 -2 7.5]
	// dX = [1 0 -1 0.5 0.5 0.5]
	// dW = [1 2 3 4 5 6]
}
