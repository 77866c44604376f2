package mla_test

import (
	"fmt"
	"math"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/mla"
	"github.com/dsv3go/dsv3/yarn"
)

func Example() {
	// The DeepSeek-V3 671B attention: what its cache keeps per token.
	v3 := mla.DeepSeekV3()
	fmt.Println("cached values per token and layer:", mla.CacheValuesPerToken(v3))
	layer, err := mla.New(v3) // no weights allocated: a loader binds them through Params()
	if err != nil {
		panic(err)
	}
	fmt.Printf("softmax scale: %.5f\n", layer.SoftmaxScale())

	// A small layer with random weights: prefill 6 tokens, then decode one,
	// through the absorbed path.
	cfg := mla.Config{
		Hidden: 32, Heads: 2, QLoraRank: 16, KVLoraRank: 16,
		QKNopeHeadDim: 8, QKRopeHeadDim: 4, VHeadDim: 8, RMSNormEps: 1e-6,
		Rope: yarn.Config{Theta: 10000, MaxPositionEmbeddings: 4096},
	}
	m, err := mla.New(cfg, mla.WithTraining(1))
	if err != nil {
		panic(err)
	}
	cache, err := mla.NewCache(cfg, 1, 64)
	if err != nil {
		panic(err)
	}
	x := dsv3.NewMatrix(7, cfg.Hidden)
	for i := range x.Data {
		x.Data[i] = float32(math.Sin(float64(i)))
	}
	y, err := m.Infer(x.Slice(0, 6), dsv3.Seq{Count: 1, Len: 6, Start: 0}, cache, mla.Absorbed)
	if err != nil {
		panic(err)
	}
	fmt.Println("prefill output:", y.Rows, "x", y.Cols)
	y, err = m.Infer(x.Slice(6, 7), dsv3.Seq{Count: 1, Len: 1, Start: 6}, cache, mla.Absorbed)
	if err != nil {
		panic(err)
	}
	fmt.Println("decode output:", y.Rows, "x", y.Cols, "- cached tokens:", cache.Len(0))
	// Output:
	// cached values per token and layer: 576
	// softmax scale: 0.13523
	// prefill output: 6 x 32
	// decode output: 1 x 32 - cached tokens: 7
}
