// Package parallel splits loops over a bounded number of goroutines.
//
// Every numeric kernel of dsv3 that runs in parallel goes through this
// package, so the worker count is decided in one place: by default
// runtime.GOMAXPROCS(0), or an explicit count so that benchmarks can pin one
// or two workers.
package parallel

import (
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// Workers returns the worker count to use for a requested count w: w itself
// when w > 0, else runtime.GOMAXPROCS(0).
func Workers(w int) int {
	if w > 0 {
		return w
	}
	return runtime.GOMAXPROCS(0)
}

// For runs body(lo, hi) over [0, n) split into at most workers contiguous
// chunks of at least grain items each, and waits for all of them. With one
// chunk it runs on the calling goroutine. workers <= 0 means GOMAXPROCS.
func For(n, grain, workers int, body func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	w := Workers(workers)
	if maxw := (n + grain - 1) / grain; w > maxw {
		w = maxw
	}
	if w <= 1 {
		body(0, n)
		return
	}
	var wg sync.WaitGroup
	wg.Add(w - 1)
	for i := 1; i < w; i++ {
		lo, hi := i*n/w, (i+1)*n/w
		go func() {
			defer wg.Done()
			body(lo, hi)
		}()
	}
	body(0, n/w)
	wg.Wait()
}

// Dynamic runs body(i) for every i in [0, n) on at most workers goroutines
// that take items in order from a shared counter, so uneven items (experts
// with different token counts, blocks at matrix edges) balance themselves.
// workers <= 0 means GOMAXPROCS.
func Dynamic(n, workers int, body func(i int)) {
	if n <= 0 {
		return
	}
	w := Workers(workers)
	if w > n {
		w = n
	}
	if w <= 1 {
		for i := 0; i < n; i++ {
			body(i)
		}
		return
	}
	var next atomic.Int64
	take := func() int { return int(next.Add(1) - 1) }
	var wg sync.WaitGroup
	wg.Add(w - 1)
	run := func() {
		for i := take(); i < n; i = take() {
			body(i)
		}
	}
	for i := 1; i < w; i++ {
		go func() {
			defer wg.Done()
			run()
		}()
	}
	run()
	wg.Wait()
}

// BySize runs body(i, w) once for every item i with sizes[i] > 0, biggest
// first (ties: lower index), for uneven work such as experts with
// different token counts: an item larger than its fair share of the work
// still to do runs alone with all workers (w = workers), the rest run
// concurrently with one worker each (w = 1), taking the next-biggest as
// they finish. workers <= 0 means GOMAXPROCS.
func BySize(sizes []int, workers int, body func(i, w int)) {
	w := Workers(workers)
	order := make([]int, 0, len(sizes))
	remaining := 0
	for i, s := range sizes {
		if s > 0 {
			order = append(order, i)
			remaining += s
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return sizes[order[a]] > sizes[order[b]] })
	k := 0
	for ; k < len(order) && w > 1 && sizes[order[k]]*w > remaining; k++ {
		body(order[k], w)
		remaining -= sizes[order[k]]
	}
	rest := order[k:]
	Dynamic(len(rest), w, func(j int) { body(rest[j], 1) })
}
