package parallel

import (
	"sync"
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

func TestBySize(t *testing.T) {
	sizes := []int{5, 0, 100, 5, 1, 0, 7}
	for _, w := range []int{1, 2, 4} {
		var mu sync.Mutex
		seen := map[int]int{}
		var order []int
		BySize(sizes, w, func(i, workers int) {
			mu.Lock()
			seen[i]++
			order = append(order, i)
			mu.Unlock()
			// With 2 workers only item 2 (100 of 118) exceeds its fair
			// share; the rest (7 of 18 remaining, ...) run one worker each.
			if w == 2 && i == 2 && workers != 2 {
				t.Errorf("w=2: the item larger than its fair share ran with %d workers", workers)
			}
			if w == 2 && i != 2 && workers != 1 {
				t.Errorf("w=2: item %d ran with %d workers", i, workers)
			}
		})
		for i, s := range sizes {
			if want := map[bool]int{true: 1, false: 0}[s > 0]; seen[i] != want {
				t.Errorf("w=%d: item %d (size %d) ran %d times", w, i, s, seen[i])
			}
		}
		if w == 1 && (len(order) != 5 || order[0] != 2 || order[1] != 6 || order[2] != 0 || order[3] != 3 || order[4] != 4) {
			t.Errorf("one worker: order %v, want biggest first with ties by index [2 6 0 3 4]", order)
		}
	}
}
