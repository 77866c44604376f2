package moe

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/dsv3go/dsv3"
)

// An expert-parallel Dispatcher simulated in one process, written against
// the Dispatcher contract only: n ranks (goroutines), each holding the
// experts e with owner(e) == rank and its own tokens. Dispatch is a
// collective call: every rank posts its rows, each rank runs its experts
// over the rows of all ranks (rank order, then pair order), and every rank
// collects the results for its own pairs. Its method signature uses only
// builtin and dsv3 types, as the alltoall package's must.

type barrier struct {
	mu         sync.Mutex
	cond       *sync.Cond
	n, cnt, gn int
}

func newBarrier(n int) *barrier {
	b := &barrier{n: n}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *barrier) wait() {
	b.mu.Lock()
	g := b.gn
	b.cnt++
	if b.cnt == b.n {
		b.cnt = 0
		b.gn++
		b.cond.Broadcast()
	} else {
		for g == b.gn {
			b.cond.Wait()
		}
	}
	b.mu.Unlock()
}

type epPost struct {
	x       dsv3.Matrix
	experts []int32
	k       int
	scale   []float32
	rows    [][]float32 // per pair: its result row, filled by the owner
}

type epWorld struct {
	n     int
	owner func(e int) int
	bar   *barrier
	posts []epPost
}

type epRank struct {
	w    *epWorld
	rank int
}

func (d epRank) Dispatch(x dsv3.Matrix, experts []int32, k, nExperts int, scale []float32, outCols int,
	expert func(expert int, in, out dsv3.Matrix, workers int) error) (dsv3.Matrix, []int32, error) {
	w := d.w
	w.posts[d.rank] = epPost{x: x, experts: experts, k: k, scale: scale, rows: make([][]float32, len(experts))}
	w.bar.wait()
	var err error
	for e := range nExperts {
		if w.owner(e) != d.rank {
			continue
		}
		type src struct{ rank, pair int }
		var srcs []src
		for r := range w.n {
			for p, ee := range w.posts[r].experts {
				if int(ee) == e {
					srcs = append(srcs, src{r, p})
				}
			}
		}
		if len(srcs) == 0 {
			continue
		}
		in := dsv3.NewMatrix(len(srcs), x.Cols)
		for i, s := range srcs {
			post := w.posts[s.rank]
			c := float32(1)
			if post.scale != nil {
				c = post.scale[s.pair]
			}
			for j, v := range post.x.Row(s.pair / post.k) {
				in.Set(i, j, c*v)
			}
		}
		out := dsv3.NewMatrix(len(srcs), outCols)
		if e2 := expert(e, in, out, 1); e2 != nil && err == nil {
			err = fmt.Errorf("rank %d expert %d: %w", d.rank, e, e2)
		}
		for i, s := range srcs {
			w.posts[s.rank].rows[s.pair] = out.Row(i)
		}
	}
	w.bar.wait()
	mine := w.posts[d.rank]
	out := dsv3.NewMatrix(len(experts), outCols)
	rowOf := make([]int32, len(experts))
	for p := range experts {
		rowOf[p] = int32(p)
		copy(out.Row(p), mine.rows[p])
	}
	w.bar.wait() // nobody reuses posts before everyone has read them
	return out, rowOf, err
}

// TestExpertParallelDispatcher: two ranks, experts interleaved between
// them, each rank with its own tokens, give the single-process layer's
// outputs, input gradients and expert gradients; the replicated router and
// shared-expert gradients sum to the single-process ones.
func TestExpertParallelDispatcher(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	cfg := testConfigs[0]
	full := randomMoE(rng, cfg, Training)
	const ranks = 2
	Ts := []int{37, 50}
	world := &epWorld{n: ranks, owner: func(e int) int { return e % ranks }, bar: newBarrier(ranks), posts: make([]epPost, ranks)}
	layers := make([]*MoE, ranks)
	xs, dys := make([]dsv3.Matrix, ranks), make([]dsv3.Matrix, ranks)
	x := dsv3.NewMatrix(Ts[0]+Ts[1], cfg.Hidden)
	dy := dsv3.NewMatrix(Ts[0]+Ts[1], cfg.Hidden)
	values := map[string]dsv3.Matrix{}
	for _, p := range full.Params() {
		values[p.Name] = p.Value
	}
	off := 0
	for r := range ranks {
		l, err := New(cfg, Options{Mode: Training, LocalExperts: func(e int) bool { return world.owner(e) == r }})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Params() {
			p.Value.CopyFrom(values[p.Name])
		}
		l.Dispatcher = epRank{world, r}
		layers[r] = l
		xs[r], dys[r] = randInput(rng, Ts[r], cfg.Hidden), randMatrix(rng, Ts[r], cfg.Hidden, 1)
		x.Slice(off, off+Ts[r]).CopyFrom(xs[r])
		dy.Slice(off, off+Ts[r]).CopyFrom(dys[r])
		off += Ts[r]
	}
	ys, dxs := make([]dsv3.Matrix, ranks), make([]dsv3.Matrix, ranks)
	errs := make([]error, ranks)
	var wg sync.WaitGroup
	for r := range ranks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 { // two steps: gradients accumulate alike
				y, rec, err := layers[r].Apply(xs[r], true)
				if err != nil {
					errs[r] = err
					return
				}
				ys[r] = y
				if dxs[r], errs[r] = layers[r].ApplyBackward(rec, dys[r]); errs[r] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	var y, dx dsv3.Matrix
	for range 2 {
		var rec dsv3.Record
		var err error
		if y, rec, err = full.Apply(x, true); err != nil {
			t.Fatal(err)
		}
		if dx, err = full.ApplyBackward(rec, dy); err != nil {
			t.Fatal(err)
		}
	}
	off = 0
	for r := range ranks {
		if e := relErr(ys[r], toF64(y.Slice(off, off+Ts[r]))); e > 1e-6 {
			t.Errorf("rank %d output: rel err %g", r, e)
		}
		if e := relErr(dxs[r], toF64(dx.Slice(off, off+Ts[r]))); e > 1e-6 {
			t.Errorf("rank %d input gradient: rel err %g", r, e)
		}
		off += Ts[r]
	}
	for _, p := range full.Params() {
		if p.Grad.Empty() {
			continue
		}
		sum := dsv3.NewMatrix(p.Grad.Rows, p.Grad.Cols)
		holders := 0
		for _, l := range layers {
			for _, q := range l.Params() {
				if q.Name == p.Name {
					addInto(sum, q.Grad)
					holders++
				}
			}
		}
		if holders == 0 {
			t.Errorf("%s held by no rank", p.Name)
		}
		if e := relErr(sum, toF64(p.Grad)); e > 1e-5 {
			t.Errorf("%s: gradient summed over %d ranks has rel err %g", p.Name, holders, e)
		}
	}
}
