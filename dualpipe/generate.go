package dualpipe

import "fmt"

// Generate returns the schedule of variant v for the given number of ranks
// and micro-batches. For DualPipeV, ranks is the number of devices, which
// hold 2·ranks stages.
func Generate(v Variant, ranks, microBatches int) (*Schedule, error) {
	switch v {
	case OneFOneB:
		return NewOneFOneB(ranks, microBatches)
	case ZB1P:
		return NewZB1P(ranks, microBatches)
	case DualPipe:
		return NewDualPipe(ranks, microBatches)
	case DualPipeV:
		return NewDualPipeV(ranks, microBatches)
	}
	return nil, fmt.Errorf("dualpipe: unknown variant %d", v)
}

// NewDualPipe returns the DualPipe schedule for p ranks and n micro-batches
// (n/2 fed at each end). p must be even and at least 2, n even and at
// least 2p, as in the reference implementation.
//
// The per-rank order is the one the reference DualPipe.step
// (deepseek-ai/DualPipe, dualpipe/dualpipe.py) executes. With H = p/2,
// h = min(r, p-1-r) and M = n/2, rank r runs, in "phases" (phase 0 is its
// direction-0 module on the first half of the ranks and its direction-1
// module on the second half):
//
//	1 nF0      2(H-h-1) forwards of phase 0
//	2 nF0F1    h+1 times: forward phase 0, forward phase 1
//	3 nB1W1F1  H-h-1 times: input-only backward phase 1, W, forward phase 1
//	4 nF0B1F1B0 M-2H+h+1 times: F&B (forward phase 0, backward phase 1),
//	           F&B (forward phase 1, backward phase 0); on the two middle
//	           ranks the first forward/backward pair runs unoverlapped
//	5 nB1F1B0  H-h-1 times: backward phase 1, F&B (forward 1, backward 0)
//	6 nB1B0    h+1 times: backward phase 1, backward phase 0; from pair
//	           (h+1)/2 on the backwards are input-only (on even h the
//	           switch happens after that pair's phase-1 backward)
//	7 nWB0     H-h-1 times: W, input-only backward phase 0
//	8 nW       h+1 W ops draining the FIFO of deferred weight gradients
func NewDualPipe(p, n int) (*Schedule, error) {
	if p < 2 || p%2 != 0 {
		return nil, fmt.Errorf("dualpipe: DualPipe needs an even number of ranks >= 2, got P=%d", p)
	}
	if n%2 != 0 {
		return nil, fmt.Errorf("dualpipe: DualPipe needs an even number of micro-batches (half enter at each end), got N=%d", n)
	}
	if n < 2*p {
		return nil, fmt.Errorf("dualpipe: DualPipe needs N >= 2P micro-batches, got N=%d for P=%d (want >= %d)", n, p, 2*p)
	}
	s := &Schedule{Variant: DualPipe, Ranks: p, MicroBatches: n, Ops: make([][]Op, p)}
	for r := 0; r < p; r++ {
		s.Ops[r] = traceDual(s, r, p/2, min(r, p-1-r), n/2)
	}
	return s, nil
}

// NewDualPipeV returns the DualPipeV schedule for the given number of
// ranks (holding 2·ranks stages) and n micro-batches, n >= 2·ranks, in the
// order the reference DualPipeV.step (dualpipe/dualpipev.py) executes: the
// same eight steps as NewDualPipe with H = ranks, h = r and M = n, phase
// j being module j on every rank, and the unoverlapped first pair on the
// last rank, where the V turns.
func NewDualPipeV(ranks, n int) (*Schedule, error) {
	if ranks < 1 {
		return nil, fmt.Errorf("dualpipe: DualPipeV needs at least 1 rank, got %d", ranks)
	}
	if n < 2*ranks {
		return nil, fmt.Errorf("dualpipe: DualPipeV needs N >= 2·ranks micro-batches, got N=%d for %d ranks (want >= %d)", n, ranks, 2*ranks)
	}
	s := &Schedule{Variant: DualPipeV, Ranks: ranks, MicroBatches: n, Ops: make([][]Op, ranks)}
	for r := 0; r < ranks; r++ {
		s.Ops[r] = traceDual(s, r, ranks, r, n)
	}
	return s, nil
}

// dualTracer replays the control flow of the reference step() for one rank
// and records the compute operations it performs.
type dualTracer struct {
	s        *Schedule
	r        int
	second   bool   // DualPipe: rank in the second half (phase = module XOR second)
	fCount   [2]int // forwards started per module
	bCount   [2]int // backwards started per module
	deferred []Task // FIFO of deferred weight gradients
	ops      []Op
	step     int
}

func (t *dualTracer) module(phase int) int {
	if t.second {
		return phase ^ 1
	}
	return phase
}

func (t *dualTracer) task(module, mb int) Task {
	dir := 0
	if t.s.Variant == DualPipe {
		dir = module
	}
	return Task{Dir: dir, MB: mb, Stage: t.s.Held(t.r)[module]}
}

func (t *dualTracer) nextF(phase int) Task {
	m := t.module(phase)
	tk := t.task(m, t.fCount[m])
	t.fCount[m]++
	return tk
}

func (t *dualTracer) nextB(phase int) Task {
	m := t.module(phase)
	tk := t.task(m, t.bCount[m])
	t.bCount[m]++
	return tk
}

func (t *dualTracer) forward(phase int) {
	t.ops = append(t.ops, Op{Kind: Forward, Task: t.nextF(phase), Step: t.step})
}

func (t *dualTracer) backward(phase int, zb bool) {
	tk := t.nextB(phase)
	if zb {
		t.deferred = append(t.deferred, tk)
	}
	t.ops = append(t.ops, Op{Kind: Backward, Task: tk, DeferW: zb, Step: t.step})
}

func (t *dualTracer) weight() {
	tk := t.deferred[0]
	t.deferred = t.deferred[1:]
	t.ops = append(t.ops, Op{Kind: WeightGrad, Task: tk, Step: t.step})
}

func (t *dualTracer) forwardBackward(phase0, phase1 int) {
	f := t.nextF(phase0)
	b := t.nextB(phase1)
	t.ops = append(t.ops, Op{Kind: ForwardBackward, Task: f, Back: b, Step: t.step})
}

// traceDual emits rank r's program. H is the number of rank pairs
// (DualPipe: P/2) or of ranks (DualPipeV), h the rank's distance from its
// end of the pipeline, M the micro-batches per direction.
func traceDual(s *Schedule, r, H, h, M int) []Op {
	t := &dualTracer{s: s, r: r, second: s.Variant == DualPipe && r >= H}
	middle := h == H-1

	t.step = 1 // nF0
	for i := 0; i < (H-h-1)*2; i++ {
		t.forward(0)
	}
	t.step = 2 // nF0F1
	for i := 0; i < h+1; i++ {
		t.forward(0)
		t.forward(1)
	}
	t.step = 3 // nB1W1F1, zero bubble
	for i := 0; i < H-h-1; i++ {
		t.backward(1, true)
		t.weight()
		t.forward(1)
	}
	t.step = 4 // main: nF0B1F1B0
	for i := 0; i < M-2*H+h+1; i++ {
		if i == 0 && middle {
			// The reference does not overlap this pair, to shorten the
			// bubble at the turn of the pipeline.
			t.forward(0)
			t.backward(1, false)
		} else {
			t.forwardBackward(0, 1)
		}
		t.forwardBackward(1, 0)
	}
	t.step = 5 // nB1F1B0
	for i := 0; i < H-h-1; i++ {
		t.backward(1, false)
		t.forwardBackward(1, 0)
	}
	t.step = 6 // nB1B0, the second half zero bubble
	zb := false
	n6 := h + 1
	for i := 0; i < n6; i++ {
		if i == n6/2 && h%2 == 1 {
			zb = true
		}
		t.backward(1, zb)
		if i == n6/2 && h%2 == 0 {
			zb = true
		}
		t.backward(0, zb)
	}
	t.step = 7 // nWB0, zero bubble
	for i := 0; i < H-h-1; i++ {
		t.weight()
		t.backward(0, true)
	}
	t.step = 8 // nW
	for i := 0; i < h+1; i++ {
		t.weight()
	}
	if len(t.deferred) != 0 {
		panic(fmt.Sprintf("dualpipe: internal error: rank %d ends with %d deferred weight gradients", r, len(t.deferred)))
	}
	return t.ops
}

// NewOneFOneB returns the 1F1B schedule for p ranks and n micro-batches:
// rank r runs min(p-1-r, n) warm-up forwards, then alternates one forward
// and one full backward, then drains the remaining backwards.
func NewOneFOneB(p, n int) (*Schedule, error) {
	if err := checkLinear("1F1B", p, n); err != nil {
		return nil, err
	}
	s := &Schedule{Variant: OneFOneB, Ranks: p, MicroBatches: n, Ops: make([][]Op, p)}
	for r := 0; r < p; r++ {
		warm := min(p-1-r, n)
		ops := make([]Op, 0, 2*n)
		for k := 0; k < warm; k++ {
			ops = append(ops, Op{Kind: Forward, Task: Task{MB: k, Stage: r}, Step: 1})
		}
		for k := 0; k < n-warm; k++ {
			ops = append(ops,
				Op{Kind: Forward, Task: Task{MB: warm + k, Stage: r}, Step: 2},
				Op{Kind: Backward, Task: Task{MB: k, Stage: r}, Step: 2})
		}
		for k := n - warm; k < n; k++ {
			ops = append(ops, Op{Kind: Backward, Task: Task{MB: k, Stage: r}, Step: 3})
		}
		s.Ops[r] = ops
	}
	return s, nil
}

// NewZB1P returns the zero-bubble ZB-H1 schedule for p ranks and n
// micro-batches: the 1F1B order with every backward split into an
// input-gradient B (deferred weight gradient) and a W, where rank r runs
// each W r backwards after its B (FIFO), and the W ops still pending after
// the last B at the end. Rank r then holds at most p micro-batches'
// activations, as rank 0 does in 1F1B, and with F = B - W = W the bubble
// shrinks from (p-1)(F+B) to (p-1)(F+B-2W).
func NewZB1P(p, n int) (*Schedule, error) {
	if err := checkLinear("ZB1P", p, n); err != nil {
		return nil, err
	}
	s := &Schedule{Variant: ZB1P, Ranks: p, MicroBatches: n, Ops: make([][]Op, p)}
	for r := 0; r < p; r++ {
		warm := min(p-1-r, n)
		lag := r
		ops := make([]Op, 0, 3*n)
		nextW := 0
		task := func(mb int) Task { return Task{MB: mb, Stage: r} }
		for k := 0; k < warm; k++ {
			ops = append(ops, Op{Kind: Forward, Task: task(k), Step: 1})
		}
		for k := 0; k < n-warm; k++ {
			ops = append(ops,
				Op{Kind: Forward, Task: task(warm + k), Step: 2},
				Op{Kind: Backward, Task: task(k), DeferW: true, Step: 2})
			if k-nextW >= lag {
				ops = append(ops, Op{Kind: WeightGrad, Task: task(nextW), Step: 2})
				nextW++
			}
		}
		for k := n - warm; k < n; k++ {
			ops = append(ops, Op{Kind: Backward, Task: task(k), DeferW: true, Step: 3})
			if k-nextW >= lag {
				ops = append(ops, Op{Kind: WeightGrad, Task: task(nextW), Step: 3})
				nextW++
			}
		}
		for ; nextW < n; nextW++ {
			ops = append(ops, Op{Kind: WeightGrad, Task: task(nextW), Step: 3})
		}
		s.Ops[r] = ops
	}
	return s, nil
}

func checkLinear(name string, p, n int) error {
	if p < 1 {
		return fmt.Errorf("dualpipe: %s needs at least 1 rank, got P=%d", name, p)
	}
	if n < 1 {
		return fmt.Errorf("dualpipe: %s needs at least 1 micro-batch, got N=%d", name, n)
	}
	return nil
}
