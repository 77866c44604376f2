package yarn_test

import (
	"fmt"
	"math"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/yarn"
)

// The DeepSeek-V3 671B rotary embedding: YaRN with factor 40 over 4096
// original positions, beta_fast 32, beta_slow 1.
func Example() {
	r, err := yarn.New(yarn.DeepSeekV3())
	if err != nil {
		panic(err)
	}
	low, high := r.CorrectionRange()
	f := r.Frequencies()
	fmt.Printf("YaRN on: %v, correction range [%d, %d]\n", r.YaRN(), low, high)
	fmt.Printf("pair 0 turns %.4f rad per position (kept); pair 31 %.4g = plain %.4g / 40\n", f[0], f[31], math.Pow(10000, -62.0/64))
	fmt.Printf("mscale %.5f, softmax scale for 128+64 dims %.5f\n", yarn.Mscale(40, 1), r.SoftmaxScale(128+64))

	// Rotate one token's shared key (64 values, interleaved pairs) at
	// position 4096 and undo it.
	tab, err := r.Table(4096, 1)
	if err != nil {
		panic(err)
	}
	k := dsv3.NewMatrix(1, 64)
	k.Data[0] = 1 // pair 0 = 1 + 0i
	s := dsv3.Seq{Count: 1, Len: 1, Start: 4096}
	if err := tab.Rotate(k, s, yarn.Block{Heads: 1}); err != nil {
		panic(err)
	}
	fmt.Printf("pair 0 after rotation: (%.4f, %.4f)\n", k.Data[0], k.Data[1])
	if err := tab.Unrotate(k, s, yarn.Block{Heads: 1}); err != nil {
		panic(err)
	}
	fmt.Printf("after the inverse: (%.4f, %.4f)\n", k.Data[0], k.Data[1])
	// Output:
	// YaRN on: true, correction range [10, 23]
	// pair 0 turns 1.0000 rad per position (kept); pair 31 3.334e-06 = plain 0.0001334 / 40
	// mscale 1.36889, softmax scale for 128+64 dims 0.13523
	// pair 0 after rotation: (0.8040, -0.5946)
	// after the inverse: (1.0000, 0.0000)
}
