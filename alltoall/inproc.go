package alltoall

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"time"
)

// DefaultTimeout bounds how long an in-process operation waits for its
// peers when WorldOptions.Timeout is 0.
const DefaultTimeout = 5 * time.Minute

// WorldOptions configure an in-process World.
type WorldOptions struct {
	// Timeout bounds how long any blocking operation waits for the other
	// ranks (a collective for the last rank to arrive, a send or receive
	// for its match). When it expires the world is aborted and every rank
	// gets an error. 0: DefaultTimeout; negative: wait forever (a rank
	// that fails still aborts the world through Run or Abort).
	Timeout time.Duration
}

// World is an in-process job of Size ranks, one goroutine each, that
// communicate through shared memory: a collective rendezvous copies each
// segment once, from the sender's buffer straight into the receiver's.
//
// A World fails as a whole: when one rank's function returns an error or
// panics under Run, when Abort is called, or when an operation times out,
// every blocked and every later operation on any of its communicators
// returns an error naming the cause, so that no rank hangs waiting for a
// peer that is gone.
type World struct {
	size    int
	timeout time.Duration
	root    *group

	mu      sync.Mutex
	done    chan struct{}
	cause   error
	nextGID int
	boxes   []*mailbox // per world rank: pending point-to-point operations
}

// NewWorld returns an in-process world of size ranks.
func NewWorld(size int, opt WorldOptions) (*World, error) {
	if size <= 0 {
		return nil, fmt.Errorf("alltoall: world size %d must be positive", size)
	}
	w := &World{size: size, timeout: opt.Timeout, done: make(chan struct{})}
	if w.timeout == 0 {
		w.timeout = DefaultTimeout
	}
	w.boxes = make([]*mailbox, size)
	for i := range w.boxes {
		w.boxes[i] = &mailbox{}
	}
	members := make([]int, size)
	for i := range members {
		members[i] = i
	}
	w.root = w.newGroup(members)
	return w, nil
}

// Size returns the number of ranks.
func (w *World) Size() int { return w.size }

// Comm returns rank's communicator over the whole world, for running the
// ranks on goroutines of one's own instead of with Run.
func (w *World) Comm(rank int) (Comm, error) {
	if rank < 0 || rank >= w.size {
		return nil, fmt.Errorf("alltoall: rank %d of a world of %d ranks", rank, w.size)
	}
	return &inComm{w: w, g: w.root, rank: rank}, nil
}

// Abort fails the world with cause: every operation blocked now or started
// later returns an error wrapping it. Only the first cause is kept.
func (w *World) Abort(cause error) {
	if cause == nil {
		cause = errors.New("aborted")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cause == nil {
		w.cause = cause
		close(w.done)
	}
}

// Err returns the cause of the abort, or nil while the world is healthy.
func (w *World) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cause
}

// Run calls fn(Comm(r)) for every rank r on its own goroutine and waits for
// all of them. It returns each rank's error; a rank that returns an error
// or panics aborts the world (the panic becomes that rank's error), so the
// others fail instead of waiting for it.
func (w *World) Run(fn func(c Comm) error) []error {
	errs := make([]error, w.size)
	var wg sync.WaitGroup
	for r := range w.size {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					errs[r] = fmt.Errorf("alltoall: rank %d panicked: %v\n%s", r, p, debug.Stack())
					w.Abort(errs[r])
				}
			}()
			if err := fn(&inComm{w: w, g: w.root, rank: r}); err != nil {
				errs[r] = err
				w.Abort(fmt.Errorf("rank %d failed: %w", r, err))
			}
		}()
	}
	wg.Wait()
	return errs
}

// failure returns the error an operation returns when the world has been
// aborted.
func (w *World) failure(rank int, op string) error {
	return fmt.Errorf("alltoall: in-process rank %d: %s: world aborted: %w", rank, op, w.Err())
}

// wait blocks until ch is closed, the world aborts, or the timeout expires
// (which aborts the world).
func (w *World) wait(ch <-chan struct{}, rank int, op string) error {
	select {
	case <-ch:
		return nil
	default:
	}
	var timer <-chan time.Time
	if w.timeout > 0 {
		t := time.NewTimer(w.timeout)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ch:
		return nil
	case <-w.done:
		return w.failure(rank, op)
	case <-timer:
		w.Abort(fmt.Errorf("rank %d timed out after %v in %s", rank, w.timeout, op))
		return w.failure(rank, op)
	}
}

// A group is the shared state of one communicator: its members (world
// ranks, in communicator order) and the current collective round.
type group struct {
	w       *World
	id      int
	members []int
	mu      sync.Mutex
	cur     *round
}

// A round is one collective call: each member posts a value; the last to
// arrive runs finish over all posts and releases the others.
type round struct {
	posts   []any
	arrived int
	result  any
	done    chan struct{}
}

func (w *World) newGroup(members []int) *group {
	w.mu.Lock()
	id := w.nextGID
	w.nextGID++
	w.mu.Unlock()
	return &group{w: w, id: id, members: members, cur: &round{posts: make([]any, len(members)), done: make(chan struct{})}}
}

// collect posts v as member idx's contribution to the current round and
// waits for the others; it returns the round (posts and finish's result).
func (g *group) collect(idx int, v any, op string, finish func(posts []any) any) (*round, error) {
	if err := g.w.Err(); err != nil {
		return nil, g.w.failure(g.members[idx], op)
	}
	g.mu.Lock()
	r := g.cur
	r.posts[idx] = v
	r.arrived++
	if r.arrived == len(g.members) {
		if finish != nil {
			r.result = finish(r.posts)
		}
		g.cur = &round{posts: make([]any, len(g.members)), done: make(chan struct{})}
		close(r.done)
	}
	g.mu.Unlock()
	if err := g.w.wait(r.done, g.members[idx], op); err != nil {
		return nil, err
	}
	return r, nil
}

// inComm is one rank's view of a group.
type inComm struct {
	w    *World
	g    *group
	rank int // index in g.members
}

func (c *inComm) Rank() int { return c.rank }
func (c *inComm) Size() int { return len(c.g.members) }

func (c *inComm) worldRank() int { return c.g.members[c.rank] }

type a2aPost struct {
	send           []byte
	counts, displs []int
}

// AlltoallV implements Comm: after every rank has posted its buffers each
// copies its segments straight from the senders' buffers, and a second
// rendezvous keeps the send buffers alive until all have copied.
func (c *inComm) AlltoallV(send []byte, sendCounts, sendDispls []int, recv []byte, recvCounts, recvDispls []int) error {
	n := c.Size()
	if err := checkV("send", send, sendCounts, sendDispls, n); err != nil {
		return err
	}
	if err := checkV("receive", recv, recvCounts, recvDispls, n); err != nil {
		return err
	}
	r, err := c.g.collect(c.rank, a2aPost{send, sendCounts, sendDispls}, "AlltoallV", nil)
	if err != nil {
		return err
	}
	var bad error
	for i := range n {
		p := r.posts[i].(a2aPost)
		if p.counts[c.rank] != recvCounts[i] {
			bad = fmt.Errorf("alltoall: in-process rank %d: AlltoallV: rank %d sends %d bytes, this rank expects %d",
				c.worldRank(), c.g.members[i], p.counts[c.rank], recvCounts[i])
			break
		}
		d := p.displs[c.rank]
		copy(recv[recvDispls[i]:recvDispls[i]+recvCounts[i]], p.send[d:d+recvCounts[i]])
	}
	if bad != nil {
		c.w.Abort(bad)
		return bad
	}
	_, err = c.g.collect(c.rank, nil, "AlltoallV", nil)
	return err
}

// AllReduce implements Comm: the last rank to arrive reduces in rank
// order, so every rank gets bit-identical results.
func (c *inComm) AllReduce(data []float64, op Op) error {
	if op > Min {
		return fmt.Errorf("alltoall: AllReduce with unknown %v", op)
	}
	r, err := c.g.collect(c.rank, data, "AllReduce", func(posts []any) any {
		first := posts[0].([]float64)
		for _, p := range posts[1:] {
			if len(p.([]float64)) != len(first) {
				return fmt.Errorf("AllReduce over %d and %d values", len(first), len(p.([]float64)))
			}
		}
		out := append([]float64(nil), first...)
		for _, p := range posts[1:] {
			for i, v := range p.([]float64) {
				out[i] = op.apply(out[i], v)
			}
		}
		return out
	})
	if err != nil {
		return err
	}
	switch res := r.result.(type) {
	case error:
		err := fmt.Errorf("alltoall: in-process rank %d: %w", c.worldRank(), res)
		c.w.Abort(err)
		return err
	case []float64:
		copy(data, res)
	}
	return nil
}

type splitPost struct{ color, key int }

// Split implements Comm.
func (c *inComm) Split(color, key int) (Comm, error) {
	if color < 0 {
		return nil, fmt.Errorf("alltoall: Split color %d must be >= 0", color)
	}
	r, err := c.g.collect(c.rank, splitPost{color, key}, "Split", func(posts []any) any {
		byColor := map[int][]int{} // color -> indices in this group
		for i, p := range posts {
			sp := p.(splitPost)
			byColor[sp.color] = append(byColor[sp.color], i)
		}
		groups := make([]*group, len(posts))
		index := make([]int, len(posts))
		colors := make([]int, 0, len(byColor))
		for col := range byColor {
			colors = append(colors, col)
		}
		sort.Ints(colors) // deterministic group ids
		for _, col := range colors {
			idx := byColor[col]
			sort.SliceStable(idx, func(a, b int) bool {
				return posts[idx[a]].(splitPost).key < posts[idx[b]].(splitPost).key
			})
			members := make([]int, len(idx))
			for j, i := range idx {
				members[j] = c.g.members[i]
			}
			ng := c.w.newGroup(members)
			for j, i := range idx {
				groups[i], index[i] = ng, j
			}
		}
		return [2]any{groups, index}
	})
	if err != nil {
		return nil, err
	}
	res := r.result.([2]any)
	return &inComm{w: c.w, g: res[0].([]*group)[c.rank], rank: res[1].([]int)[c.rank]}, nil
}

// Close implements Comm (nothing to release in process).
func (c *inComm) Close() error { return nil }

// Point-to-point: each world rank has a mailbox of the sends addressed to
// it that no receive has matched yet and of its receives that no send has
// matched yet. Matching copies the bytes once, from the sender's buffer
// into the receiver's, and completes both operations; sends and receives
// of one (group, source, tag) match in the order they were posted.

type p2pOp struct {
	group, src, tag int // src: the sender's world rank
	data            []byte
	done            chan struct{}
	err             error
}

type mailbox struct {
	mu    sync.Mutex
	sends []*p2pOp // sends to this rank, waiting for a receive
	recvs []*p2pOp // receives by this rank, waiting for a send
}

// take removes and returns the first operation of ops matching (group,
// src, tag), or nil.
func take(ops *[]*p2pOp, group, src, tag int) *p2pOp {
	for i, o := range *ops {
		if o.group == group && o.src == src && o.tag == tag {
			*ops = append((*ops)[:i], (*ops)[i+1:]...)
			return o
		}
	}
	return nil
}

// complete copies a send into a receive and releases both.
func complete(send, recv *p2pOp, to int) {
	if len(send.data) != len(recv.data) {
		err := fmt.Errorf("alltoall: in-process message from rank %d to rank %d with tag %d has %d bytes, the receive expects %d",
			send.src, to, send.tag, len(send.data), len(recv.data))
		send.err, recv.err = err, err
	} else {
		copy(recv.data, send.data)
	}
	close(send.done)
	close(recv.done)
}

// Exchange implements Comm.
func (c *inComm) Exchange(sends, recvs []Message) error {
	n := c.Size()
	if err := checkMessages("send", sends, n); err != nil {
		return err
	}
	if err := checkMessages("receive", recvs, n); err != nil {
		return err
	}
	if err := c.w.Err(); err != nil {
		return c.w.failure(c.worldRank(), "Exchange")
	}
	me := c.worldRank()
	ops := make([]*p2pOp, 0, len(sends)+len(recvs))
	box := c.w.boxes[me]
	for _, m := range recvs {
		op := &p2pOp{group: c.g.id, src: c.g.members[m.Peer], tag: m.Tag, data: m.Data, done: make(chan struct{})}
		ops = append(ops, op)
		box.mu.Lock()
		s := take(&box.sends, op.group, op.src, op.tag)
		if s == nil {
			box.recvs = append(box.recvs, op)
		}
		box.mu.Unlock()
		if s != nil {
			complete(s, op, me)
		}
	}
	for _, m := range sends {
		to := c.g.members[m.Peer]
		op := &p2pOp{group: c.g.id, src: me, tag: m.Tag, data: m.Data, done: make(chan struct{})}
		ops = append(ops, op)
		tb := c.w.boxes[to]
		tb.mu.Lock()
		r := take(&tb.recvs, op.group, op.src, op.tag)
		if r == nil {
			tb.sends = append(tb.sends, op)
		}
		tb.mu.Unlock()
		if r != nil {
			complete(op, r, to)
		}
	}
	for _, op := range ops {
		if err := c.w.wait(op.done, me, "Exchange"); err != nil {
			return err
		}
		if op.err != nil {
			c.w.Abort(op.err)
			return op.err
		}
	}
	return nil
}
