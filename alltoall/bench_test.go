package alltoall_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/alltoall"
)

// The benchmark shape: DeepSeek-V3's hidden size and routing (256 experts,
// top-8) on 4 ranks in 2 nodes of 2. DSV3_A2A_TOKENS sets the tokens per
// rank (default 1024; the full DeepSeek-V3 shape, 4096, needs about 14 GB
// in process).
const (
	benchWidth   = 7168
	benchExperts = 256
	benchTopK    = 8
)

var benchLayout = alltoall.Layout{Experts: benchExperts, Ranks: 4, RanksPerNode: 2}

func benchTokens() int {
	if v, err := strconv.Atoi(os.Getenv("DSV3_A2A_TOKENS")); err == nil && v > 0 {
		return v
	}
	return 1024
}

// benchInput is rank r's tokens: T rows of benchWidth values, each token
// choosing benchTopK distinct experts uniformly at random (so a token goes
// to about 3.6 of the 4 ranks).
func benchInput(r, T int) (dsv3.Matrix, []int32) {
	rng := rand.New(rand.NewPCG(42, uint64(r)))
	x := dsv3.NewMatrix(T, benchWidth)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	ids := make([]int32, T*benchTopK)
	for t := range T {
		for j, e := range rng.Perm(benchExperts)[:benchTopK] {
			ids[t*benchTopK+j] = int32(e)
		}
	}
	return x, ids
}

// benchRank runs n rounds of dispatch and identity combine on rank c and
// returns the traffic it sent.
func benchRank(c alltoall.Comm, opt alltoall.Options, x dsv3.Matrix, ids []int32, n int) (alltoall.Traffic, error) {
	d, err := alltoall.NewDispatcher(c, benchLayout, opt)
	if err != nil {
		return alltoall.Traffic{}, err
	}
	defer d.Close()
	for range n {
		bt, err := d.DispatchRows(x, ids, benchTopK, nil)
		if err != nil {
			return alltoall.Traffic{}, err
		}
		if _, err := d.Combine(bt, bt.X); err != nil {
			return alltoall.Traffic{}, err
		}
	}
	return d.Traffic(), nil
}

// reportBench reports GB/s (bytes moved between distinct ranks by dispatch
// and combine, all ranks, per second) and tokens/s (tokens dispatched and
// combined, all ranks).
func reportBench(b *testing.B, tr alltoall.Traffic, tokens int) {
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(tr.Inter()+tr.Intra())/s/1e9, "GB/s")
	b.ReportMetric(float64(tokens*b.N)/s, "tokens/s")
	b.ReportMetric(float64(tr.Inter())/float64(b.N)/1e6, "inter-MB/op")
}

var benchCases = []struct {
	name string
	opt  alltoall.Options
}{
	{"float32/flat", alltoall.Options{Payload: alltoall.Float32, Route: alltoall.Flat}},
	{"float32/two-hop", alltoall.Options{Payload: alltoall.Float32, Route: alltoall.TwoHop}},
	{"fp8/flat", alltoall.Options{Payload: alltoall.FP8, Route: alltoall.Flat}},
	{"fp8/two-hop", alltoall.Options{Payload: alltoall.FP8, Route: alltoall.TwoHop}},
}

// BenchmarkDispatchCombine: dispatch + combine on 4 in-process ranks
// (goroutines sharing this machine's cores and memory bandwidth).
func BenchmarkDispatchCombine(b *testing.B) {
	T := benchTokens()
	xs, ids := make([]dsv3.Matrix, 4), make([][]int32, 4)
	for r := range xs {
		xs[r], ids[r] = benchInput(r, T)
	}
	for _, bc := range benchCases {
		b.Run(fmt.Sprintf("%s/T=%d", bc.name, T), func(b *testing.B) {
			w, err := alltoall.NewWorld(4, alltoall.WorldOptions{})
			if err != nil {
				b.Fatal(err)
			}
			traffic := make([]alltoall.Traffic, 4)
			b.ResetTimer()
			errs := w.Run(func(c alltoall.Comm) error {
				var err error
				traffic[c.Rank()], err = benchRank(c, bc.opt, xs[c.Rank()], ids[c.Rank()], b.N)
				return err
			})
			b.StopTimer()
			var sum alltoall.Traffic
			for r, err := range errs {
				if err != nil {
					b.Fatalf("rank %d: %v", r, err)
				}
				sum = sum.Add(traffic[r])
			}
			reportBench(b, sum, 4*T)
		})
	}
}
