// Command gemmbench multiplies two random n×n float32 matrices with dsv3's
// GEMM (internal/gemm: packed panels, cache blocking and an AVX-512 or
// AVX2 register-tile kernel generated with avo, or pure Go) and with gonum's
// blas32.Gemm, checks that the two products agree, and prints GFLOP/s for
// both and their ratio.
//
// It shows what the float32 matrix multiply under every dsv3 layer runs at
// on this machine, next to the usual pure-Go choice. The product is
// C = A·B (the input-gradient form; the forward form A·Bᵀ runs the same
// kernel after packing) and costs 2·n³ floating-point operations. Each
// implementation runs -reps times; the best time is reported.
//
//	go run ./examples/gemmbench                 # 1024³, all cores
//	go run ./examples/gemmbench -n 2048 -workers 1
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/dsv3go/dsv3/internal/gemm"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

func main() {
	n := flag.Int("n", 1024, "matrix size: C[n,n] = A[n,n]·B[n,n]")
	workers := flag.Int("workers", 0, "worker goroutines for dsv3 (0: GOMAXPROCS)")
	reps := flag.Int("reps", 3, "repetitions of each product; the best is reported")
	flag.Parse()
	if err := run(*n, *workers, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "gemmbench:", err)
		os.Exit(1)
	}
}

func run(n, workers, reps int) error {
	if n < 1 || reps < 1 {
		return fmt.Errorf("-n %d and -reps %d must be at least 1", n, reps)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i] = rng.Float32()*2 - 1
		b[i] = rng.Float32()*2 - 1
	}
	ours, theirs := make([]float32, n*n), make([]float32, n*n)
	w := workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}

	tOurs := best(reps, func() {
		gemm.Sgemm(false, false, n, n, n, a, n, b, n, ours, n, false, workers)
	})
	ga := blas32.General{Rows: n, Cols: n, Stride: n, Data: a}
	gb := blas32.General{Rows: n, Cols: n, Stride: n, Data: b}
	gc := blas32.General{Rows: n, Cols: n, Stride: n, Data: theirs}
	tGonum := best(reps, func() {
		blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, ga, gb, 0, gc)
	})

	// Both are float32 sums of n products of values in [-1, 1): they may
	// differ by rounding, about sqrt(n)·2^-24 relative to Σ|a·b| ≈ n/4.
	var worst float64
	for i := range ours {
		worst = max(worst, math.Abs(float64(ours[i])-float64(theirs[i])))
	}
	if tol := 1e-5 * math.Sqrt(float64(n)) * float64(n) / 4; worst > tol {
		return fmt.Errorf("dsv3 and gonum differ by %g (tolerance %g)", worst, tol)
	}

	flops := 2 * float64(n) * float64(n) * float64(n)
	gOurs, gGonum := flops/tOurs.Seconds()/1e9, flops/tGonum.Seconds()/1e9
	fmt.Printf("C = A·B, %d×%d×%d float32, best of %d\n", n, n, n, reps)
	fmt.Printf("dsv3  (%s kernel, %d workers) %8.1f GFLOP/s  %v\n", gemm.Kernel(), w, gOurs, tOurs.Round(time.Microsecond))
	fmt.Printf("gonum (blas32.Gemm)              %8.1f GFLOP/s  %v\n", gGonum, tGonum.Round(time.Microsecond))
	fmt.Printf("ratio dsv3/gonum                 %8.1fx   (max difference %.2g)\n", gOurs/gGonum, worst)
	return nil
}

// best runs f reps times and returns the shortest duration.
func best(reps int, f func()) time.Duration {
	d := time.Duration(math.MaxInt64)
	for range reps {
		t := time.Now()
		f()
		d = min(d, time.Since(t))
	}
	return d
}
