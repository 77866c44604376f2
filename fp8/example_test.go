package fp8_test

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/fp8"
)

func Example() {
	// Round-to-nearest-even E4M3, saturating or not.
	fmt.Println(fp8.ToE4M3(1.0625, fp8.Saturate).Float32()) // a tie: to the even 1.0
	fmt.Println(fp8.ToE4M3(1000, fp8.Saturate).Float32(), fp8.ToE4M3(1000, fp8.NonSaturate).IsNaN())

	// A 2x3 weight quantised in one 128x128 block: scale = amax/448.
	w, _ := dsv3.MatrixFrom(2, 3, []float32{0.5, -1, 2, 0.25, 0.1, -3.5})
	q, _ := fp8.QuantizeWeight(w, fp8.ScaleF32)
	fmt.Printf("weight_scale_inv %.6g, codes % x\n", q.ScaleInv[0], q.Codes)

	// It is a dsv3.Weight: y = x·Wᵀ with the codes decoded on the fly.
	x, _ := dsv3.MatrixFrom(1, 3, []float32{1, 2, 3})
	y := dsv3.NewMatrix(1, 2)
	q.MulT(y, x, false)
	fmt.Printf("weight-only %.4f\n", y.Data)

	// The FP8 GEMM: x quantised per 1x128 tile as well (scale 3/448, so
	// 1 and 2 become the E4M3 values 144 and 288 times it).
	fp8.ActQuant{W: q}.MulT(y, x, false)
	fmt.Printf("fp8 gemm    %.4f\n", y.Data)
	// Output:
	// 1
	// 448 true
	// weight_scale_inv 0.0078125, codes 68 f0 78 60 55 fe
	// weight-only [4.5000 -10.0469]
	// fp8 gemm    [4.5536 -10.0631]
}
