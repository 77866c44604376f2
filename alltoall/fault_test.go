package alltoall_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/alltoall"
)

// runBounded runs fn on every rank of a world of size ranks and fails the
// test if the ranks have not all returned within limit.
func runBounded(t *testing.T, size int, timeout, limit time.Duration, fn func(c alltoall.Comm) error) []error {
	t.Helper()
	w, err := alltoall.NewWorld(size, alltoall.WorldOptions{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []error, 1)
	start := time.Now()
	go func() { done <- w.Run(fn) }()
	select {
	case errs := <-done:
		if el := time.Since(start); el > limit {
			t.Errorf("ranks took %v, limit %v", el, limit)
		}
		return errs
	case <-time.After(limit + 5*time.Second):
		t.Fatalf("ranks still running after %v", limit+5*time.Second)
		return nil
	}
}

// faultyComm fails its n-th communication call (counting those of the
// communicators it splits off), as a transport failing mid-dispatch.
type faultyComm struct {
	alltoall.Comm
	calls, n *atomic.Int64 // n = 0: disarmed
}

var errInjected = errors.New("injected transport failure")

func (f faultyComm) fail(op string) error {
	if n := f.n.Load(); n > 0 && f.calls.Add(1) == n {
		return fmt.Errorf("%s: %w", op, errInjected)
	}
	return nil
}

func (f faultyComm) AlltoallV(s []byte, sc, sd []int, r []byte, rc, rd []int) error {
	if err := f.fail("AlltoallV"); err != nil {
		return err
	}
	return f.Comm.AlltoallV(s, sc, sd, r, rc, rd)
}

func (f faultyComm) Exchange(s, r []alltoall.Message) error {
	if err := f.fail("Exchange"); err != nil {
		return err
	}
	return f.Comm.Exchange(s, r)
}

func (f faultyComm) AllReduce(d []float64, op alltoall.Op) error {
	if err := f.fail("AllReduce"); err != nil {
		return err
	}
	return f.Comm.AllReduce(d, op)
}

func (f faultyComm) Split(color, key int) (alltoall.Comm, error) {
	c, err := f.Comm.Split(color, key)
	return faultyComm{c, f.calls, f.n}, err
}

// faultData is rank r's input for the fault tests: 8 tokens, 2 experts each.
func faultData(r int) (dsv3.Matrix, []int32) {
	x := dsv3.NewMatrix(8, 16)
	for i := range x.Data {
		x.Data[i] = float32(i%7 + r)
	}
	ids := make([]int32, 16)
	for p := range ids {
		ids[p] = int32((p*5 + r*3) % 16)
		if p%2 == 1 && ids[p] == ids[p-1] {
			ids[p] = (ids[p] + 1) % 16
		}
	}
	return x, ids
}

func identity(e int, in, out dsv3.Matrix, workers int) error {
	out.CopyFrom(in)
	return nil
}

// TestFaultMidDispatch: one rank's transport fails at its n-th call of a
// Dispatch (every n the dispatch makes, both routes); that rank returns
// the error, the world aborts, and every other rank returns an error
// within a bounded time instead of waiting for it. The one exception is
// the last call of a two-hop dispatch, which only involves the failing
// rank's same-local-index partners: a rank that no longer needs the
// failing one may finish first, and then its results must be complete and
// correct.
func TestFaultMidDispatch(t *testing.T) {
	l := alltoall.Layout{Experts: 16, Ranks: 4, RanksPerNode: 2}
	for _, route := range []alltoall.Route{alltoall.Flat, alltoall.TwoHop} {
		type run struct {
			errs []error
			ok   []bool // a rank that returned nil had correct results
		}
		var runs []run
		for n := int64(1); ; n++ {
			var reached atomic.Bool // the failure point was inside the dispatch
			ok := make([]bool, 4)
			errs := runBounded(t, 4, 10*time.Second, 2*time.Second, func(c alltoall.Comm) error {
				calls, target := new(atomic.Int64), new(atomic.Int64)
				if c.Rank() == 3 {
					c = faultyComm{c, calls, target}
				}
				d, err := alltoall.NewDispatcher(c, l, alltoall.Options{Route: route})
				if err != nil {
					return err
				}
				if c.Rank() == 3 {
					target.Store(n) // armed for the dispatch only
					defer func() { reached.Store(calls.Load() >= n) }()
				}
				x, ids := faultData(c.Rank())
				out, rowOf, err := d.Dispatch(x, ids, 2, 16, nil, 16, identity)
				if err == nil {
					ok[c.Rank()] = true
					for p, r := range rowOf {
						ok[c.Rank()] = ok[c.Rank()] && sameBits(out.Slice(int(r), int(r)+1), x.Slice(p/2, p/2+1))
					}
				}
				return err
			})
			if !reached.Load() { // n is past the last call: everything succeeded
				for r, err := range errs {
					if err != nil || !ok[r] {
						t.Fatalf("%v, no failure injected: rank %d: %v (results correct: %v)", route, r, err, ok[r])
					}
				}
				break
			}
			runs = append(runs, run{errs, ok})
		}
		if len(runs) < 4 {
			t.Fatalf("%v: a dispatch made only %d calls", route, len(runs))
		}
		for i, rn := range runs {
			n, last := i+1, i == len(runs)-1
			if !errors.Is(rn.errs[3], errInjected) {
				t.Errorf("%v, call %d: the failing rank returned %v", route, n, rn.errs[3])
			}
			for r, err := range rn.errs[:3] {
				switch {
				case err == nil && last && route == alltoall.TwoHop && l.Local(r) != l.Local(3) && rn.ok[r]:
				case err == nil || !strings.Contains(err.Error(), "rank 3 failed"):
					t.Errorf("%v, call %d: rank %d returned %v, want an abort naming rank 3", route, n, r, err)
				}
			}
		}
		t.Logf("%v: a failure injected at each of the %d calls of a dispatch fails the ranks that need the failing one", route, len(runs))
	}
}

// TestFaultExpertError: an expert on rank 2 returns an error; every rank
// returns an error (the others one naming rank 2), and the world stays
// usable: the next dispatch succeeds.
func TestFaultExpertError(t *testing.T) {
	l := alltoall.Layout{Experts: 16, Ranks: 4, RanksPerNode: 2}
	boom := errors.New("expert exploded")
	for _, route := range []alltoall.Route{alltoall.Flat, alltoall.TwoHop} {
		errs := runBounded(t, 4, 10*time.Second, 2*time.Second, func(c alltoall.Comm) error {
			d, err := alltoall.NewDispatcher(c, l, alltoall.Options{Route: route})
			if err != nil {
				return err
			}
			x, ids := faultData(c.Rank())
			_, _, err = d.Dispatch(x, ids, 2, 16, nil, 16, func(e int, in, out dsv3.Matrix, w int) error {
				if e == 9 { // on rank 2
					return boom
				}
				return identity(e, in, out, w)
			})
			if err == nil {
				return fmt.Errorf("dispatch succeeded")
			}
			if c.Rank() == 2 && !errors.Is(err, boom) || c.Rank() != 2 && !strings.Contains(err.Error(), "rank 2") {
				return fmt.Errorf("unexpected error: %w", err)
			}
			_, _, err = d.Dispatch(x, ids, 2, 16, nil, 16, identity)
			return err
		})
		for r, err := range errs {
			if err != nil {
				t.Errorf("%v: rank %d: %v", route, r, err)
			}
		}
	}
}

// TestFaultBadInput: bad input on one rank (an expert id out of range, a
// different k, a different width, a wrong number of weights) fails every
// rank's dispatch, and the next good dispatch succeeds.
func TestFaultBadInput(t *testing.T) {
	l := alltoall.Layout{Experts: 16, Ranks: 4, RanksPerNode: 2}
	cases := []struct {
		name string
		bad  func(x dsv3.Matrix, ids []int32) (dsv3.Matrix, []int32, int, []float32)
		msg  string
	}{
		{"id out of range", func(x dsv3.Matrix, ids []int32) (dsv3.Matrix, []int32, int, []float32) {
			ids[3] = 16
			return x, ids, 2, nil
		}, "expert 16, outside [0, 16)"},
		{"k", func(x dsv3.Matrix, ids []int32) (dsv3.Matrix, []int32, int, []float32) {
			return x.Slice(0, 4), ids, 4, nil
		}, "disagree on k"},
		{"width", func(x dsv3.Matrix, ids []int32) (dsv3.Matrix, []int32, int, []float32) {
			return x.View(0, 0, x.Rows, 8), ids, 2, nil
		}, "disagree on the row width"},
		{"weights", func(x dsv3.Matrix, ids []int32) (dsv3.Matrix, []int32, int, []float32) {
			return x, ids, 2, make([]float32, 3)
		}, "3 weights for 16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := runBounded(t, 4, 10*time.Second, 2*time.Second, func(c alltoall.Comm) error {
				d, err := alltoall.NewDispatcher(c, l, alltoall.Options{Route: alltoall.TwoHop})
				if err != nil {
					return err
				}
				x, ids := faultData(c.Rank())
				k := 2
				var w []float32
				if c.Rank() == 1 {
					x, ids, k, w = tc.bad(x.Clone(), append([]int32(nil), ids...))
				}
				_, err = d.DispatchRows(x, ids, k, w)
				if err == nil {
					return fmt.Errorf("bad dispatch succeeded")
				}
				if c.Rank() == 1 || strings.HasPrefix(tc.name, "k") || tc.name == "width" {
					if !strings.Contains(err.Error(), tc.msg) {
						return fmt.Errorf("error %q does not say %q", err, tc.msg)
					}
				} else if !strings.Contains(err.Error(), "rank 1 had bad input") {
					return fmt.Errorf("error %q does not name rank 1", err)
				}
				x, ids = faultData(c.Rank())
				b, err := d.DispatchRows(x, ids, 2, nil)
				if err != nil {
					return err
				}
				_, err = d.Combine(b, b.X)
				return err
			})
			for r, err := range errs {
				if err != nil {
					t.Errorf("rank %d: %v", r, err)
				}
			}
		})
	}
}

// TestFaultTimeout: a rank that never arrives (it hangs, without failing)
// makes the others return an error once the world's timeout expires.
func TestFaultTimeout(t *testing.T) {
	l := alltoall.Layout{Experts: 16, Ranks: 4, RanksPerNode: 2}
	release := make(chan struct{})
	var once sync.Once
	var others atomic.Int64
	errs := runBounded(t, 4, 200*time.Millisecond, 3*time.Second, func(c alltoall.Comm) error {
		d, err := alltoall.NewDispatcher(c, l, alltoall.Options{})
		if err != nil {
			return err
		}
		x, ids := faultData(c.Rank())
		if c.Rank() == 0 {
			<-release // hangs until the others have given up
			_, err := d.DispatchRows(x, ids, 2, nil)
			return err
		}
		_, err = d.DispatchRows(x, ids, 2, nil)
		if others.Add(1) == 3 {
			once.Do(func() { close(release) })
		}
		return err
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("rank %d returned %v, want a time-out error", r, err)
		}
	}
}

// TestFaultPanic: a rank that panics aborts the world; the others return
// errors and Run reports the panic as that rank's error.
func TestFaultPanic(t *testing.T) {
	errs := runBounded(t, 3, 10*time.Second, 2*time.Second, func(c alltoall.Comm) error {
		if c.Rank() == 1 {
			panic("rank 1 is broken")
		}
		return c.AllReduce([]float64{1}, alltoall.Sum)
	})
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "rank 1 is broken") {
		t.Errorf("rank 1 returned %v", errs[1])
	}
	for _, r := range []int{0, 2} {
		if errs[r] == nil || !strings.Contains(errs[r].Error(), "panicked") {
			t.Errorf("rank %d returned %v", r, errs[r])
		}
	}
}
