package dsv3_test

import (
	"fmt"

	"github.com/dsv3go/dsv3"
)

// Rounding to bfloat16 keeps 8 significant bits, ties to even.
func ExampleToBF16() {
	for _, f := range []float32{1, 1.00390625, 1.01171875, 3.14159265, 3.4e38} {
		h := dsv3.ToBF16(f)
		fmt.Printf("%-10v -> %#04x = %v\n", f, uint16(h), h.Float32())
	}
	// Output:
	// 1          -> 0x3f80 = 1
	// 1.0039062  -> 0x3f80 = 1
	// 1.0117188  -> 0x3f82 = 1.015625
	// 3.1415927  -> 0x4049 = 3.140625
	// 3.4e+38    -> 0x7f80 = +Inf
}

// A Linear layer's forward and backward: y = x·Wᵀ, dx = dy·W, and dW += dyᵀ·x.
func ExampleLinear() {
	l := dsv3.NewLinear(2, 3, true) // W is [out=2, in=3]
	w := l.W.(dsv3.Matrix)
	copy(w.Data, []float32{
		1, 0, -1,
		2, 1, 0,
	})
	x, _ := dsv3.MatrixFrom(1, 3, []float32{1, 2, 3})
	y, rec := l.Forward(x, true)
	fmt.Println("y =", y.Data)

	dy, _ := dsv3.MatrixFrom(1, 2, []float32{1, 1}) // dL/dy for L = sum(y)
	dx := l.Backward(rec, dy)
	fmt.Println("dx =", dx.Data)
	fmt.Println("dW =", l.Grad.Data)
	// Output:
	// y = [-2 4]
	// dx = [3 1 -1]
	// dW = [1 2 3 1 2 3]
}

// RMSNorm scales each row to unit root mean square, then by its weight.
func ExampleRMSNorm() {
	n := dsv3.NewRMSNorm(4, 1e-6, false)
	copy(n.Weight.Data, []float32{1, 1, 2, 0.5})
	x, _ := dsv3.MatrixFrom(1, 4, []float32{1, -1, 1, -1}) // mean(x²) = 1
	y, _ := n.Forward(x, false)
	for _, v := range y.Row(0) {
		fmt.Printf("%.4f ", v)
	}
	fmt.Println()
	// Output:
	// 1.0000 -1.0000 2.0000 -0.5000
}
