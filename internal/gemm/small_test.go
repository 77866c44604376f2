package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSmallM checks the small-M forward path (A m×k, B stored n×k, C m×n
// with 2 <= m <= 8) of every kernel set against a float64 loop written
// here: odd k and n (vector tails, right-edge groups), k longer than one
// bounded call (smallChunk), strided views with NaN padding, both modes,
// NaN and ±Inf propagation, and 1, 2 and 3 workers bit-identical.
func TestSmallM(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	type shape struct{ n, k int }
	shapes := []shape{{1, 1}, {3, 5}, {13, 17}, {37, 100}, {9, 255}, {70, 33}}
	if !raceEnabled {
		shapes = append(shapes, shape{11, smallChunk + 37}, shape{5, 2*smallChunk + 16})
	}
	for _, ks := range kernelSets {
		for m := 2; m <= smallMaxM; m++ {
			for si, sh := range shapes {
				n, k := sh.n, sh.k
				A := randMatrix(rng, m, k)
				W := randMatrix(rng, n, k) // B as stored: [n, k]
				nonFinite := si%2 == 1
				if nonFinite {
					A[m-1][k/2] = float32(math.NaN())
					W[n-1][k-1] = float32(math.Inf(1))
					if m > 2 {
						A[1][k-1] = 0 // 0·Inf = NaN in C[1, n-1]
					}
				}
				for _, acc := range []bool{false, true} {
					msg := checkSmall(ks, m, n, k, A, W, acc, 1+si%3, rng)
					if msg != "" {
						t.Errorf("%s m=%d n=%d k=%d acc=%v: %s", ks.name, m, n, k, acc, msg)
					}
				}
			}
		}
	}
}

// checkSmall runs one small-M product with 1, 2 and 3 workers on strided
// views padded with NaN, checks that the three agree bit for bit, and
// compares the result with a float64 loop.
func checkSmall(ks *kernelSet, m, n, k int, A, W [][]float32, acc bool, pad int, rng *rand.Rand) string {
	lda, ldb, ldc := k+pad, k+pad+1, n+pad
	nan := float32(math.NaN())
	a := make([]float32, (m-1)*lda+k)
	b := make([]float32, (n-1)*ldb+k)
	for i := range a {
		a[i] = nan
	}
	for i := range b {
		b[i] = nan
	}
	for i := 0; i < m; i++ {
		copy(a[i*lda:], A[i])
	}
	for j := 0; j < n; j++ {
		copy(b[j*ldb:], W[j])
	}
	c0 := make([]float32, (m-1)*ldc+n)
	for i := range c0 {
		c0[i] = math.Float32frombits(cSentinelBits)
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			c0[i*ldc+j] = nan // overwrite mode must not read C
			if acc {
				c0[i*ldc+j] = rng.Float32()*2 - 1
			}
		}
	}
	var first []float32
	for _, w := range []int{1, 2, 3} {
		c := slices.Clone(c0)
		smallMRun(ks, m, n, k, a, lda, b, ldb, c, ldc, acc, w)
		if first == nil {
			first = c
			continue
		}
		for i := range c {
			if math.Float32bits(c[i]) != math.Float32bits(first[i]) {
				return fmt.Sprintf("%d workers differ from 1 worker at offset %d", w, i)
			}
		}
	}
	tol := 1e-5 * math.Sqrt(float64(k))
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var want, bound float64
			for p := 0; p < k; p++ {
				v := float64(A[i][p]) * float64(W[j][p])
				want += v
				bound += math.Abs(v)
			}
			if acc {
				want += float64(c0[i*ldc+j])
				bound += math.Abs(float64(c0[i*ldc+j]))
			}
			if got := float64(first[i*ldc+j]); !near(got, want, tol*bound) {
				return fmt.Sprintf("C[%d,%d] = %g, want %g (tolerance %g)", i, j, got, want, tol*bound)
			}
		}
		for j := n; j < ldc && i+1 < m; j++ {
			if math.Float32bits(first[i*ldc+j]) != cSentinelBits {
				return fmt.Sprintf("wrote C[%d,%d] in the row padding", i, j)
			}
		}
	}
	return ""
}

// TestSmallMDispatch checks which products take the small-M path.
func TestSmallMDispatch(t *testing.T) {
	for _, ks := range kernelSets {
		for _, tc := range []struct {
			m, k           int
			transA, transB bool
			want           bool
		}{
			{2, smallMinK, false, true, true}, {8, smallMinK, false, true, true},
			{8, smallMinK - 1, false, true, false},
			{9, smallMinK, false, true, false}, {1, smallMinK, false, true, false},
			{4, smallMinK, false, false, false}, {4, smallMinK, true, true, false},
		} {
			const n = 3
			k := tc.k
			a := make([]float32, 16*k)
			b := make([]float32, 16*k)
			c := make([]float32, 16*n)
			if got := smallM(ks, tc.transA, tc.transB, tc.m, n, k, a, k, b, k, c, n, false, 1); got != tc.want {
				t.Errorf("%s m=%d k=%d transA=%v transB=%v: small-M path %v, want %v", ks.name, tc.m, k, tc.transA, tc.transB, got, tc.want)
			}
		}
	}
}

// withSmallMinK sets smallMinK for a test and returns the function that
// restores it.
func withSmallMinK(k int) func() {
	old := smallMinK
	smallMinK = k
	return func() { smallMinK = old }
}
