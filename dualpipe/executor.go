package dualpipe

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/dsv3go/dsv3"
)

// Stage is one pipeline stage (a chunk of consecutive layers) as a rank
// runs it. Several micro-batches are in flight at once, so a stage keeps
// no per-call state: what a backward needs travels in the records.
//
// The executor calls a stage from one goroutine at a time, except that an
// Overlapper's ForwardBackward may run the other stage of its rank
// concurrently with its own forward.
type Stage interface {
	// Forward maps the input activation x to the output y and returns the
	// record its backward needs.
	Forward(x dsv3.Matrix) (y dsv3.Matrix, rec dsv3.Record, err error)
	// Backward takes a Forward record and dL/dy and returns dL/dx. With
	// deferW false it also accumulates the parameter gradients; with
	// deferW true it may leave them for BackwardWeight and return in w what
	// that needs (nil when nothing was deferred).
	Backward(rec dsv3.Record, dy dsv3.Matrix, deferW bool) (dx dsv3.Matrix, w dsv3.Record, err error)
	// BackwardWeight accumulates the parameter gradients that a Backward
	// with deferW left in w.
	BackwardWeight(w dsv3.Record) error
	// Params lists the stage's parameters; DualPipe sums the gradients of a
	// stage's two copies through it.
	Params() []dsv3.Param
}

// Overlapper is implemented by stages that run an overlapped F&B pair
// themselves (the reference's overlapped_forward_backward hook): the
// forward of x on the receiver and, at the same time, the full backward of
// rec with dy on back, the other stage of the same rank. It returns what
// Forward and Backward would. Without it the executor runs the forward,
// then the backward. The executor turns a panic on its own goroutine into
// an error; goroutines the hook starts must recover their own.
type Overlapper interface {
	ForwardBackward(x dsv3.Matrix, back Stage, rec dsv3.Record, dy dsv3.Matrix) (y dsv3.Matrix, frec dsv3.Record, dx dsv3.Matrix, err error)
}

// LossFunc computes the loss of micro-batch mb (its index in the whole
// batch) from the last stage's output y and returns dL/dy (y's shape).
type LossFunc func(mb int, y dsv3.Matrix) (loss float64, dy dsv3.Matrix, err error)

// Executor runs pipeline steps: one goroutine per rank, each running its
// program of Schedule with its chunks.
type Executor struct {
	// Schedule is the schedule to run; Step validates it.
	Schedule *Schedule
	// Chunks[r][j] is rank r's copy of stage Schedule.Held(r)[j]. Every
	// element must be a distinct value: DualPipe's two copies of a stage
	// are separate objects with the same parameter values.
	Chunks [][]Stage
	// Loss is evaluated on the last stage of each direction.
	Loss LossFunc
}

// tag identifies one transfer: an activation (grad false) or a gradient
// for the op on the receiving rank that works on task.
type tag struct {
	grad bool
	task Task
}

// mailbox is a rank's receive side: one single-use buffered slot per tag,
// so sends never block and receives match by tag, not by posting order.
type mailbox struct {
	mu    sync.Mutex
	slots map[tag]chan dsv3.Matrix
}

func (m *mailbox) slot(k tag) chan dsv3.Matrix {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.slots[k]
	if !ok {
		c = make(chan dsv3.Matrix, 1)
		m.slots[k] = c
	}
	return c
}

func (m *mailbox) send(k tag, x dsv3.Matrix) { m.slot(k) <- x }

func (m *mailbox) recv(ctx context.Context, k tag) (dsv3.Matrix, error) {
	c := m.slot(k)
	select {
	case x := <-c:
		m.mu.Lock()
		delete(m.slots, k)
		m.mu.Unlock()
		return x, nil
	case <-ctx.Done():
		return dsv3.Matrix{}, ctx.Err()
	}
}

// check validates the executor's configuration for n inputs.
func (e *Executor) check(n int) error {
	s := e.Schedule
	if s == nil {
		return errors.New("dualpipe: Executor.Schedule is nil")
	}
	if err := Validate(s); err != nil {
		return err
	}
	if e.Loss == nil {
		return errors.New("dualpipe: Executor.Loss is nil")
	}
	if n != s.MicroBatches {
		return fmt.Errorf("dualpipe: %d input micro-batches, the schedule has %d", n, s.MicroBatches)
	}
	if len(e.Chunks) != s.Ranks {
		return fmt.Errorf("dualpipe: Executor.Chunks has %d ranks, the schedule %d", len(e.Chunks), s.Ranks)
	}
	type where struct{ r, j int }
	var all []where
	for r, ch := range e.Chunks {
		if len(ch) != len(s.Held(r)) {
			return fmt.Errorf("dualpipe: Executor.Chunks[%d] has %d stages, want %d (stages %v)", r, len(ch), len(s.Held(r)), s.Held(r))
		}
		for j, st := range ch {
			if st == nil {
				return fmt.Errorf("dualpipe: Executor.Chunks[%d][%d] (stage %d) is nil", r, j, s.Held(r)[j])
			}
			for _, w := range all {
				if sameStage(e.Chunks[w.r][w.j], st) {
					return fmt.Errorf("dualpipe: Executor.Chunks[%d][%d] and [%d][%d] are the same Stage value; every rank needs its own copy", w.r, w.j, r, j)
				}
			}
			all = append(all, where{r, j})
		}
	}
	if s.Variant == DualPipe {
		for st := 0; st < s.Ranks; st++ {
			if err := compatibleParams(st, e.Chunks[st][0].Params(), e.Chunks[s.Ranks-1-st][1].Params()); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameStage reports whether a and b are the same comparable value.
func sameStage(a, b Stage) (same bool) {
	defer func() {
		if recover() != nil {
			same = false // not comparable: cannot be the same pointer
		}
	}()
	return a == b
}

func compatibleParams(stage int, a, b []dsv3.Param) error {
	if len(a) != len(b) {
		return fmt.Errorf("dualpipe: the two copies of stage %d have %d and %d parameters", stage, len(a), len(b))
	}
	for i := range a {
		ga, gb := a[i].Grad, b[i].Grad
		if a[i].Name != b[i].Name || ga.Rows != gb.Rows || ga.Cols != gb.Cols {
			return fmt.Errorf("dualpipe: the two copies of stage %d differ at parameter %d: %q %dx%d and %q %dx%d",
				stage, i, a[i].Name, ga.Rows, ga.Cols, b[i].Name, gb.Rows, gb.Cols)
		}
	}
	return nil
}

// Step runs one training step over inputs (Schedule.MicroBatches
// micro-batches, in batch order: for DualPipe the first half enters at
// rank 0, the second at rank P-1) and returns the loss of every
// micro-batch, in the same order.
//
// Parameter gradients accumulate into the stages' gradients; for DualPipe,
// Step then sets both copies of each stage to the sum of the two, so zero
// them (dsv3.ZeroGrads) before the next step. Step returns the first error
// of any rank (a stage's error or panic, a loss error, the context's
// cancellation); the other ranks stop at their next receive.
func (e *Executor) Step(ctx context.Context, inputs []dsv3.Matrix) ([]float64, error) {
	if err := e.check(len(inputs)); err != nil {
		return nil, err
	}
	s := e.Schedule
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	boxes := make([]*mailbox, s.Ranks)
	for r := range boxes {
		boxes[r] = &mailbox{slots: map[tag]chan dsv3.Matrix{}}
	}
	losses := make([]float64, s.MicroBatches)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for r := 0; r < s.Ranks; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rk := &rankRun{e: e, s: s, r: r, inputs: inputs, boxes: boxes, losses: losses,
				recs: map[Task]stageRecord{}, dys: map[Task]dsv3.Matrix{}, ws: map[Task]dsv3.Record{}}
			if err := rk.run(ctx); err != nil {
				once.Do(func() { firstErr = err })
				cancel()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if s.Variant == DualPipe {
		for st := 0; st < s.Ranks; st++ {
			sumGrads(e.Chunks[st][0].Params(), e.Chunks[s.Ranks-1-st][1].Params())
		}
	}
	return losses, nil
}

// sumGrads sets the gradients in a and b to their sum.
func sumGrads(a, b []dsv3.Param) {
	for i := range a {
		ga, gb := a[i].Grad, b[i].Grad
		for row := 0; row < ga.Rows; row++ {
			ra, rb := ga.Row(row), gb.Row(row)
			for j := range ra {
				ra[j] += rb[j]
			}
			copy(rb, ra)
		}
	}
}

// stageRecord is what a rank keeps between a forward and its backward.
type stageRecord struct {
	rec        dsv3.Record
	rows, cols int // the input's shape, which dx must have
}

// rankRun is one rank's state during a step.
type rankRun struct {
	e      *Executor
	s      *Schedule
	r      int
	inputs []dsv3.Matrix
	boxes  []*mailbox
	losses []float64
	recs   map[Task]stageRecord // forward records awaiting their backward
	dys    map[Task]dsv3.Matrix // loss gradients of the last stage
	ws     map[Task]dsv3.Record // deferred weight-gradient work
}

func (k *rankRun) run(ctx context.Context) (err error) {
	var cur Op
	idx := -1
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("dualpipe: rank %d op %d (%v): panic: %v\n%s", k.r, idx, cur, p, debug.Stack())
		}
	}()
	for i, o := range k.s.Ops[k.r] {
		cur, idx = o, i
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dualpipe: rank %d before op %d (%v): %w", k.r, i, o, err)
		}
		if err := k.do(ctx, o); err != nil {
			return fmt.Errorf("dualpipe: rank %d op %d (%v): %w", k.r, i, o, err)
		}
	}
	return nil
}

func (k *rankRun) stage(t Task) Stage {
	return k.e.Chunks[k.r][k.s.Module(k.r, t)]
}

// input returns the forward input of t: the batch's micro-batch on the
// first stage, else the activation the previous stage sends.
func (k *rankRun) input(ctx context.Context, t Task) (dsv3.Matrix, error) {
	if t.Stage == 0 {
		return k.inputs[k.s.GlobalMB(t.Dir, t.MB)], nil
	}
	return k.boxes[k.r].recv(ctx, tag{false, t})
}

// outGrad returns dL/dy for the backward of t: the loss gradient on the
// last stage, else the gradient the next stage sends.
func (k *rankRun) outGrad(ctx context.Context, t Task) (dsv3.Matrix, error) {
	if t.Stage == k.s.Stages()-1 {
		dy, ok := k.dys[t]
		if !ok {
			return dsv3.Matrix{}, fmt.Errorf("no loss gradient for %v", work{partB, t})
		}
		delete(k.dys, t)
		return dy, nil
	}
	return k.boxes[k.r].recv(ctx, tag{true, t})
}

// afterForward keeps the record of t and hands y on: to the loss on the
// last stage, else to the next stage's rank.
func (k *rankRun) afterForward(t Task, x, y dsv3.Matrix, rec dsv3.Record) error {
	k.recs[t] = stageRecord{rec: rec, rows: x.Rows, cols: x.Cols}
	if t.Stage == k.s.Stages()-1 {
		mb := k.s.GlobalMB(t.Dir, t.MB)
		loss, dy, err := k.e.Loss(mb, y)
		if err != nil {
			return fmt.Errorf("loss of micro-batch %d: %w", mb, err)
		}
		if dy.Rows != y.Rows || dy.Cols != y.Cols {
			return fmt.Errorf("loss of micro-batch %d: gradient is %dx%d, the output %dx%d", mb, dy.Rows, dy.Cols, y.Rows, y.Cols)
		}
		k.losses[mb] = loss
		k.dys[t] = dy
		return nil
	}
	next := Task{t.Dir, t.MB, t.Stage + 1}
	k.boxes[k.s.RankOf(next.Dir, next.Stage)].send(tag{false, next}, y)
	return nil
}

// takeRecord removes and returns the forward record of t.
func (k *rankRun) takeRecord(t Task) (stageRecord, error) {
	sr, ok := k.recs[t]
	if !ok {
		return stageRecord{}, fmt.Errorf("no forward record for %v", work{partB, t})
	}
	delete(k.recs, t)
	return sr, nil
}

// afterBackward checks dx and sends it to the previous stage's rank.
func (k *rankRun) afterBackward(t Task, sr stageRecord, dx dsv3.Matrix) error {
	if dx.Rows != sr.rows || dx.Cols != sr.cols {
		return fmt.Errorf("stage %d backward returned dx %dx%d for a %dx%d input", t.Stage, dx.Rows, dx.Cols, sr.rows, sr.cols)
	}
	if t.Stage > 0 {
		prev := Task{t.Dir, t.MB, t.Stage - 1}
		k.boxes[k.s.RankOf(prev.Dir, prev.Stage)].send(tag{true, prev}, dx)
	}
	return nil
}

func (k *rankRun) do(ctx context.Context, o Op) error {
	switch o.Kind {
	case Forward:
		x, err := k.input(ctx, o.Task)
		if err != nil {
			return err
		}
		y, rec, err := k.stage(o.Task).Forward(x)
		if err != nil {
			return fmt.Errorf("stage %d forward: %w", o.Stage, err)
		}
		return k.afterForward(o.Task, x, y, rec)

	case Backward:
		dy, err := k.outGrad(ctx, o.Task)
		if err != nil {
			return err
		}
		sr, err := k.takeRecord(o.Task)
		if err != nil {
			return err
		}
		dx, w, err := k.stage(o.Task).Backward(sr.rec, dy, o.DeferW)
		if err != nil {
			return fmt.Errorf("stage %d backward: %w", o.Stage, err)
		}
		if o.DeferW {
			k.ws[o.Task] = w
		}
		return k.afterBackward(o.Task, sr, dx)

	case WeightGrad:
		w, ok := k.ws[o.Task]
		if !ok {
			return fmt.Errorf("no deferred weight gradient for %v", o.Task)
		}
		delete(k.ws, o.Task)
		if w == nil {
			return nil
		}
		if err := k.stage(o.Task).BackwardWeight(w); err != nil {
			return fmt.Errorf("stage %d weight gradient: %w", o.Stage, err)
		}
		return nil

	case ForwardBackward:
		// Receive both inputs first, as the reference batches both
		// receives before the overlapped pair.
		x, err := k.input(ctx, o.Task)
		if err != nil {
			return err
		}
		dy, err := k.outGrad(ctx, o.Back)
		if err != nil {
			return err
		}
		sr, err := k.takeRecord(o.Back)
		if err != nil {
			return err
		}
		fs, bs := k.stage(o.Task), k.stage(o.Back)
		var (
			y, dx dsv3.Matrix
			frec  dsv3.Record
		)
		if ov, ok := fs.(Overlapper); ok {
			y, frec, dx, err = ov.ForwardBackward(x, bs, sr.rec, dy)
			if err != nil {
				return fmt.Errorf("stages %d and %d overlapped forward-backward: %w", o.Stage, o.Back.Stage, err)
			}
		} else {
			if y, frec, err = fs.Forward(x); err != nil {
				return fmt.Errorf("stage %d forward: %w", o.Stage, err)
			}
			if dx, _, err = bs.Backward(sr.rec, dy, false); err != nil {
				return fmt.Errorf("stage %d backward: %w", o.Back.Stage, err)
			}
		}
		if err := k.afterForward(o.Task, x, y, frec); err != nil {
			return err
		}
		return k.afterBackward(o.Back, sr, dx)
	}
	return fmt.Errorf("unknown op kind %d", o.Kind)
}
