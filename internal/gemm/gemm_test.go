package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The accuracy contract checked here, for every element of C:
//
//	|c - ref| <= 1e-5·sqrt(K)·(Σ_p |op(A)[i,p]|·|op(B)[p,j]| + |c0|)
//
// where ref = (c0 +) Σ_p op(A)[i,p]·op(B)[p,j] is computed in float64 by a
// plain loop in this file, and c0 is C's previous value (accumulate mode
// only). A float32 dot product of length K with any summation order is
// within K·2^-24 of this bound's sum; sqrt(K)·1e-5 is the customary
// probabilistic bound and leaves a margin of about 10x at K = 255. When ref is
// NaN or ±Inf, c must be NaN or the same infinity.

// sizes is the M, N and K grid the issue asks for.
var sizes = []int{1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 255}

// form is one of the four transpose combinations.
type form struct {
	name           string
	transA, transB bool
}

var forms = []form{
	{"NT", false, true},  // forward: Y = X·Wᵀ
	{"NN", false, false}, // input gradient: dX = dY·W
	{"TN", true, false},  // weight gradient: dW += dYᵀ·X
	{"TT", true, true},
}

// sentinel marks memory outside an operand's view. In A and B it is NaN, so
// reading it poisons C; in C it must survive bit for bit.
var sentinel = float32(math.NaN())

const cSentinelBits = 0x7fc0dead // a NaN with a payload the code never makes

// layout stores the logical rows×cols matrix x (x[i][j]) in a fresh buffer,
// transposed when trans, with row stride ld = stored columns + pad, and
// sentinels in the padding and in `guard` elements before and after the view.
// It returns the view (starting at the first element, ending at the last).
func layout(x [][]float32, rows, cols int, trans bool, pad int) ([]float32, int) {
	sr, sc := rows, cols
	if trans {
		sr, sc = cols, rows
	}
	ld := sc + pad
	const guard = 37
	n := 0
	if sr > 0 && sc > 0 {
		n = (sr-1)*ld + sc
	}
	buf := make([]float32, guard+n+guard)
	for i := range buf {
		buf[i] = sentinel
	}
	v := buf[guard : guard+n]
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			if trans {
				v[j*ld+i] = x[i][j]
			} else {
				v[i*ld+j] = x[i][j]
			}
		}
	}
	return v, ld
}

// randMatrix returns a rows×cols matrix of uniform values in [-1, 1).
func randMatrix(rng *rand.Rand, rows, cols int) [][]float32 {
	x := make([][]float32, rows)
	for i := range x {
		x[i] = make([]float32, cols)
		for j := range x[i] {
			x[i][j] = rng.Float32()*2 - 1
		}
	}
	return x
}

// refProduct returns Σ_p A[i,p]·B[p,j] and Σ_p |A[i,p]|·|B[p,j]| in float64.
func refProduct(A, B [][]float32, m, n, k int) (ref, mag [][]float64) {
	ref = make([][]float64, m)
	mag = make([][]float64, m)
	for i := 0; i < m; i++ {
		ref[i] = make([]float64, n)
		mag[i] = make([]float64, n)
		for p := 0; p < k; p++ {
			a := float64(A[i][p])
			for j := 0; j < n; j++ {
				b := float64(B[p][j])
				ref[i][j] += a * b
				mag[i][j] += math.Abs(a * b)
			}
		}
	}
	return ref, mag
}

// check runs one product with kernel set ks in a fresh strided layout and
// compares it with the float64 reference (ref, mag are for the top-left
// m×n×k corner of A and B). It returns a description of the first failure.
func check(ks *kernelSet, f form, m, n, k int, A, B [][]float32, ref, mag [][]float64, acc bool, pad, workers int, rng *rand.Rand) string {
	a, lda := layout(A, m, k, f.transA, pad)
	b, ldb := layout(B, k, n, f.transB, (pad+2)%6)
	ldc := n + (pad+1)%4
	const guard = 29
	cbuf := make([]float32, guard+(m-1)*ldc+n+guard)
	for i := range cbuf {
		cbuf[i] = math.Float32frombits(cSentinelBits)
	}
	c := cbuf[guard : guard+(m-1)*ldc+n]
	c0 := make([]float32, m*n)
	// Overwrite mode must not read C: start it as NaN. Accumulate mode
	// starts from values in [-1, 1).
	fill := float32(math.NaN())
	off := rng.IntN(len(noise))
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			if acc {
				fill = noise[(off+i*n+j)%len(noise)]
			}
			c0[i*n+j] = fill
			c[i*ldc+j] = fill
		}
	}
	run(ks, f.transA, f.transB, m, n, k, a, lda, b, ldb, c, ldc, acc, workers)
	tol := 1e-5 * math.Sqrt(float64(max(k, 1)))
	for i := 0; i < m; i++ {
		ci, c0i := c[i*ldc:i*ldc+n], c0[i*n:i*n+n]
		for j, v := range ci {
			want, bound := ref[i][j], mag[i][j]
			if acc {
				want += float64(c0i[j])
				bound += math.Abs(float64(c0i[j]))
			}
			if got := float64(v); !near(got, want, tol*bound) {
				return fmt.Sprintf("C[%d,%d] = %g, want %g (tolerance %g)", i, j, got, want, tol*bound)
			}
		}
	}
	// Everything outside the view: the guards and the row padding.
	outside := func(lo, hi int) string {
		for i := lo; i < hi; i++ {
			if math.Float32bits(cbuf[i]) != cSentinelBits {
				return fmt.Sprintf("wrote %g at offset %d outside C's view (ldc %d)", cbuf[i], i-guard, ldc)
			}
		}
		return ""
	}
	if msg := outside(0, guard); msg != "" {
		return msg
	}
	if msg := outside(len(cbuf)-guard, len(cbuf)); msg != "" {
		return msg
	}
	for i := 0; i+1 < m; i++ {
		if msg := outside(guard+i*ldc+n, guard+(i+1)*ldc); msg != "" {
			return msg
		}
	}
	return ""
}

// noise is a pool of values in [-1, 1) for C's starting values.
var noise = func() []float32 {
	rng := rand.New(rand.NewPCG(9, 9))
	v := make([]float32, 4099)
	for i := range v {
		v[i] = rng.Float32()*2 - 1
	}
	return v
}()

// near reports whether got matches want within tol, with NaN matching NaN
// and infinities matching exactly.
func near(got, want, tol float64) bool {
	switch {
	case math.IsNaN(want):
		return math.IsNaN(got)
	case math.IsInf(want, 0):
		return got == want
	}
	return math.Abs(got-want) <= tol
}

// TestSgemmGrid checks every kernel set this CPU runs against the float64
// reference for all M, N, K in sizes, the four transpose forms, both modes,
// and strided views with guarded padding, on the GEMV, small-M and blocked
// paths.
func TestSgemmGrid(t *testing.T) {
	// Every K of the grid is below smallMinK: take the small-M path anyway
	// (NT with M from 2 to 8), so that the grid covers it too.
	defer withSmallMinK(1)()
	rng := rand.New(rand.NewPCG(1, 2))
	kmax := sizes[len(sizes)-1]
	A := randMatrix(rng, kmax, kmax)
	B := randMatrix(rng, kmax, kmax)
	// ref(M,N,K) is the top-left corner of the product over the first K
	// depths, so one float64 pass over K with a snapshot per size serves the
	// whole grid.
	refs := map[int][2][][]float64{}
	for _, k := range sizes {
		ref, mag := refProduct(A, B, kmax, kmax, k)
		refs[k] = [2][][]float64{ref, mag}
	}
	for _, ks := range kernelSets {
		t.Run(ks.name, func(t *testing.T) {
			// The full grid, except: under the race detector (which checks
			// the parallel driver, not the arithmetic) every set runs a small
			// grid, and the pure-Go set runs every M and N with fewer K when
			// assembly sets are dispatched instead (they run the full grid).
			// Where the pure-Go set is the dispatched one (the purego build,
			// which CI runs with -short, and other architectures) it runs
			// the full grid, -short or not: about five CPU-seconds.
			msizes, ksizes := sizes, sizes
			switch {
			case raceEnabled:
				msizes, ksizes = []int{1, 3, 16, 17, 65, 129}, []int{1, 17, 255}
			case ks.name == "go" && ks != active:
				ksizes = []int{1, 16, 17, 255}
			}
			fails, count := 0, 0
			for _, f := range forms {
				for _, m := range msizes {
					for _, n := range msizes {
						for _, k := range ksizes {
							for _, acc := range []bool{false, true} {
								count++
								pad := count % 6
								msg := check(ks, f, m, n, k, A, B, refs[k][0], refs[k][1], acc, pad, 2, rng)
								if msg != "" {
									fails++
									if fails <= 10 {
										t.Errorf("%s %s m=%d n=%d k=%d acc=%v pad=%d: %s", ks.name, f.name, m, n, k, acc, pad, msg)
									}
								}
							}
						}
					}
				}
			}
			if fails > 0 {
				t.Errorf("%d of %d products failed", fails, count)
			}
		})
	}
}

// TestSgemmNonFinite checks that NaN and ±Inf in A or B reach exactly the
// elements of C the float64 reference says they reach, on the GEMV and the
// blocked paths.
func TestSgemmNonFinite(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := [][3]int{{1, 40, 37}, {40, 1, 37}, {33, 70, 300}, {5, 3, 2}}
	for _, ks := range kernelSets {
		for _, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			A := randMatrix(rng, m, k)
			B := randMatrix(rng, k, n)
			A[m/2][k/3] = float32(math.NaN())
			A[m-1][k-1] = float32(math.Inf(1))
			B[0][n-1] = float32(math.Inf(-1))
			B[k/2][n/2] = 0 // Inf·0 = NaN where row m-1 meets it
			if k > 1 {
				A[0][k/2] = float32(math.Inf(1))
			}
			ref, mag := refProduct(A, B, m, n, k)
			for _, f := range forms {
				for _, acc := range []bool{false, true} {
					if msg := check(ks, f, m, n, k, A, B, ref, mag, acc, 1, 2, rng); msg != "" {
						t.Errorf("%s %s %dx%dx%d acc=%v: %s", ks.name, f.name, m, n, k, acc, msg)
					}
				}
			}
		}
	}
}

// TestSgemmWorkersAgree checks that 1, 2, 3 and 8 workers (and the default)
// give bit-identical results: every element of C is computed by one worker
// in the same order whatever the split.
func TestSgemmWorkersAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	shapes := [][3]int{{300, 200, 260}, {37, 400, 513}, {1, 3000, 200}, {3000, 1, 100}, {20, 33, 700}}
	for _, ks := range kernelSets {
		for _, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			if ks.name == "go" && raceEnabled && m*n*k > 1<<22 {
				continue
			}
			for _, f := range forms {
				A := randMatrix(rng, m, k)
				B := randMatrix(rng, k, n)
				a, lda := layout(A, m, k, f.transA, 3)
				b, ldb := layout(B, k, n, f.transB, 1)
				var first []float32
				for _, w := range []int{1, 2, 3, 8, 0} {
					c := make([]float32, m*n)
					for i := range c {
						c[i] = float32(i % 7)
					}
					run(ks, f.transA, f.transB, m, n, k, a, lda, b, ldb, c, n, true, w)
					if first == nil {
						first = c
					} else if !slices.Equal(first, c) {
						t.Errorf("%s %s %dx%dx%d: %d workers differ from 1 worker", ks.name, f.name, m, n, k, w)
					}
				}
			}
		}
	}
}

// TestSgemmEdgeSizes checks k == 0 (C cleared, or untouched when
// accumulating) and m == 0 or n == 0 (nothing touched, nil slices allowed).
func TestSgemmEdgeSizes(t *testing.T) {
	for _, acc := range []bool{false, true} {
		c := []float32{1, 2, 3, 4, 5, 6}
		Sgemm(false, true, 2, 3, 0, nil, 0, nil, 0, c, 3, acc, 0)
		want := []float32{0, 0, 0, 0, 0, 0}
		if acc {
			want = []float32{1, 2, 3, 4, 5, 6}
		}
		if !slices.Equal(c, want) {
			t.Errorf("k=0 acc=%v: C = %v, want %v", acc, c, want)
		}
	}
	c := []float32{7}
	Sgemm(false, false, 0, 5, 3, nil, 3, make([]float32, 15), 5, nil, 5, false, 0)
	Sgemm(false, false, 3, 0, 3, make([]float32, 9), 3, nil, 0, nil, 0, false, 0)
	Sgemm(true, true, 0, 0, 0, nil, 0, nil, 0, c, 1, false, 0)
	if c[0] != 7 {
		t.Errorf("empty product changed C to %v", c)
	}
}

// TestSgemmPanics checks that inconsistent shapes are reported by name.
func TestSgemmPanics(t *testing.T) {
	cases := []struct {
		name string
		f    func()
		want string
	}{
		{"negative", func() { Sgemm(false, false, -1, 2, 2, nil, 2, nil, 2, nil, 2, false, 1) }, "negative size"},
		{"short A", func() {
			Sgemm(false, false, 2, 2, 2, make([]float32, 3), 2, make([]float32, 4), 2, make([]float32, 4), 2, false, 1)
		}, "A has 3 elements"},
		{"lda", func() {
			Sgemm(true, false, 3, 2, 2, make([]float32, 6), 2, make([]float32, 4), 2, make([]float32, 6), 2, false, 1)
		}, "A row stride 2 < 3"},
		{"short B", func() {
			Sgemm(false, true, 2, 2, 3, make([]float32, 6), 3, make([]float32, 5), 3, make([]float32, 4), 2, false, 1)
		}, "B has 5 elements"},
		{"ldc", func() {
			Sgemm(false, false, 2, 2, 2, make([]float32, 4), 2, make([]float32, 4), 2, make([]float32, 4), 1, false, 1)
		}, "C row stride 1 < 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tc.want) {
					t.Errorf("panic %v, want one containing %q", r, tc.want)
				}
			}()
			tc.f()
		})
	}
}

// TestDispatch checks that Sgemm uses the first (fastest) kernel set and
// that the pure-Go twin is always available.
func TestDispatch(t *testing.T) {
	names := make([]string, len(kernelSets))
	for i, ks := range kernelSets {
		names[i] = ks.name
	}
	t.Logf("kernel sets on this CPU: %v (dispatch: %s)", names, active.name)
	if active != kernelSets[0] || names[len(names)-1] != "go" {
		t.Errorf("dispatch %s over sets %v: want the first, with go last", active.name, names)
	}
	for _, ks := range kernelSets {
		if len(ks.micro) != ks.mr+1 || ks.kc <= 0 || ks.nc%ks.nr != 0 {
			t.Errorf("%s: inconsistent set (mr %d, %d micro-kernels, kc %d, nc %d, nr %d)", ks.name, ks.mr, len(ks.micro)-1, ks.kc, ks.nc, ks.nr)
		}
	}
}

// TestPackRows checks each set's transposing pack against the definition,
// including the zero padding lanes and that nothing past k·stride is written.
func TestPackRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, ks := range kernelSets {
		for _, rows := range []int{1, 3, 4, 5, 6, 8, 14, 16, 17, 32} {
			for _, stride := range []int{rows, rows + 3, 32} {
				if stride < rows {
					continue
				}
				for _, k := range []int{1, 15, 16, 33, 256, 300} {
					ld := k + 5
					src := make([]float32, rows*ld)
					for i := range src {
						src[i] = rng.Float32()
					}
					dst := make([]float32, k*stride+7)
					for i := range dst {
						dst[i] = -1
					}
					ks.packRows(dst, src, ld, rows, k, stride)
					for p := 0; p < k; p++ {
						for i := 0; i < stride; i++ {
							want := float32(0)
							if i < rows {
								want = src[i*ld+p]
							}
							if got := dst[p*stride+i]; got != want {
								t.Fatalf("%s rows=%d stride=%d k=%d: dst[%d*stride+%d] = %g, want %g", ks.name, rows, stride, k, p, i, got, want)
							}
						}
					}
					for i := k * stride; i < len(dst); i++ {
						if dst[i] != -1 {
							t.Fatalf("%s rows=%d stride=%d k=%d: wrote past the panel at %d", ks.name, rows, stride, k, i)
						}
					}
				}
			}
		}
	}
}

// TestGemvLong checks the single-row and single-column paths with vectors
// longer than one bounded assembly call (gemvChunk), in every form.
func TestGemvLong(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	long := 2*gemvChunk + 37
	shapes := [][3]int{{1, 5, long}, {1, long, 5}, {5, 1, long}, {long, 1, 6}}
	for _, ks := range kernelSets {
		for _, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			A := randMatrix(rng, m, k)
			B := randMatrix(rng, k, n)
			ref, mag := refProduct(A, B, m, n, k)
			for _, f := range forms {
				for _, acc := range []bool{false, true} {
					if msg := check(ks, f, m, n, k, A, B, ref, mag, acc, 2, 2, rng); msg != "" {
						t.Errorf("%s %s %dx%dx%d acc=%v: %s", ks.name, f.name, m, n, k, acc, msg)
					}
				}
			}
		}
	}
}

// TestPackCols checks each set's copying pack against the definition,
// including the zero padding and that nothing past k·stride is written.
func TestPackCols(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, ks := range kernelSets {
		for _, cols := range []int{1, 3, 6, 14, 16, 17, 31, 32, 40} {
			for _, stride := range []int{cols, cols + 1, 32} {
				if stride < cols {
					continue
				}
				for _, k := range []int{1, 2, 9, 384} {
					ld := cols + 7
					src := make([]float32, (k-1)*ld+cols)
					for i := range src {
						src[i] = rng.Float32()
					}
					dst := make([]float32, k*stride+40)
					for i := range dst {
						dst[i] = -1
					}
					ks.packCols(dst, src, ld, cols, k, stride)
					for p := 0; p < k; p++ {
						for j := 0; j < stride; j++ {
							want := float32(0)
							if j < cols {
								want = src[p*ld+j]
							}
							if got := dst[p*stride+j]; got != want {
								t.Fatalf("%s cols=%d stride=%d k=%d: dst[%d*stride+%d] = %g, want %g", ks.name, cols, stride, k, p, j, got, want)
							}
						}
					}
					for i := k * stride; i < len(dst); i++ {
						if dst[i] != -1 {
							t.Fatalf("%s cols=%d stride=%d k=%d: wrote past the panel at %d", ks.name, cols, stride, k, i)
						}
					}
				}
			}
		}
	}
}

// TestSgemmConcurrent runs independent products from several goroutines at
// once (the pooled packing buffers are shared) and checks each against the
// same product run alone.
func TestSgemmConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const m, n, k = 100, 130, 400 // enough work for two workers
	a, b := randSlice(rng, m*k), randSlice(rng, n*k)
	want := make([]float32, m*n)
	Sgemm(false, true, m, n, k, a, k, b, k, want, n, false, 1)
	const goroutines = 6
	errs := make(chan string, goroutines)
	for g := 0; g < goroutines; g++ {
		go func() {
			c := make([]float32, m*n)
			for range 5 {
				Sgemm(false, true, m, n, k, a, k, b, k, c, n, false, 2)
				if !slices.Equal(c, want) {
					errs <- "concurrent product differs from the product run alone"
					return
				}
			}
			errs <- ""
		}()
	}
	for g := 0; g < goroutines; g++ {
		if msg := <-errs; msg != "" {
			t.Error(msg)
		}
	}
}
