package parallel

import (
	"sync/atomic"
	"testing"
)

func TestForCoversEachIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 100, 1001} {
		for _, w := range []int{0, 1, 2, 3, 8} {
			for _, grain := range []int{1, 4, 64} {
				hits := make([]int32, n)
				For(n, grain, w, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						atomic.AddInt32(&hits[i], 1)
					}
				})
				for i, h := range hits {
					if h != 1 {
						t.Fatalf("n=%d w=%d grain=%d: index %d visited %d times", n, w, grain, i, h)
					}
				}
			}
		}
	}
}

func TestDynamicCoversEachIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, 5, 257} {
		for _, w := range []int{0, 1, 2, 16} {
			hits := make([]int32, n)
			Dynamic(n, w, func(i int) { atomic.AddInt32(&hits[i], 1) })
			for i, h := range hits {
				if h != 1 {
					t.Fatalf("n=%d w=%d: index %d visited %d times", n, w, i, h)
				}
			}
		}
	}
}

func TestWorkers(t *testing.T) {
	if Workers(3) != 3 {
		t.Fatal("explicit count not kept")
	}
	if Workers(0) < 1 {
		t.Fatal("default count below 1")
	}
}
