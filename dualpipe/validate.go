package dualpipe

import (
	"errors"
	"fmt"
	"strings"
)

// part is one piece of work inside an op: a forward, a backward (its input
// gradient, and its weight gradient unless deferred) or a deferred weight
// gradient.
type part uint8

const (
	partF part = iota
	partB
	partW
)

// work identifies one piece of work in a schedule.
type work struct {
	p part
	t Task
}

func (w work) String() string {
	k := [...]string{"F", "B", "W"}[w.p]
	return fmt.Sprintf("%s%d.%d@s%d", k, w.t.Dir, w.t.MB, w.t.Stage)
}

// parts returns the pieces of work of o.
func (o Op) parts() []work {
	switch o.Kind {
	case Forward:
		return []work{{partF, o.Task}}
	case Backward:
		return []work{{partB, o.Task}}
	case WeightGrad:
		return []work{{partW, o.Task}}
	case ForwardBackward:
		return []work{{partF, o.Task}, {partB, o.Back}}
	}
	return nil
}

// deps returns the work w waits for: the previous stage's forward (an
// activation received), its own forward and the next stage's backward (a
// gradient received) for a backward, its deferring backward for a W.
func (s *Schedule) deps(w work, buf []work) []work {
	buf = buf[:0]
	switch w.p {
	case partF:
		if w.t.Stage > 0 {
			buf = append(buf, work{partF, Task{w.t.Dir, w.t.MB, w.t.Stage - 1}})
		}
	case partB:
		buf = append(buf, work{partF, w.t})
		if w.t.Stage < s.Stages()-1 {
			buf = append(buf, work{partB, Task{w.t.Dir, w.t.MB, w.t.Stage + 1}})
		}
	case partW:
		buf = append(buf, work{partB, w.t})
	}
	return buf
}

// maxErrors caps how many problems Validate reports at once.
const maxErrors = 8

// Validate checks that s is a correct pipeline schedule:
//
//   - the shape: Ranks ranks, valid kinds, directions, micro-batches and
//     stages, every op on the rank that holds its stage (Schedule.RankOf),
//     an overlapped pair on two different chunks of its rank;
//   - per stage and micro-batch, exactly one forward and one backward, the
//     forward before the backward, and exactly one W for a deferred
//     backward (none otherwise), after it; so every activation and
//     gradient a rank sends has exactly one matching receive;
//   - no deadlock: executing the ranks' programs in order, each op waiting
//     for the activations and gradients it receives (sends are buffered,
//     as in Executor), every op runs.
//
// It returns nil or an error listing up to eight problems.
func Validate(s *Schedule) error {
	if s == nil {
		return errors.New("dualpipe: nil schedule")
	}
	if err := s.checkShape(); err != nil {
		return err
	}
	var errs []error
	add := func(format string, args ...any) {
		if len(errs) < maxErrors {
			errs = append(errs, fmt.Errorf("dualpipe: "+format, args...))
		}
	}
	type pos struct{ rank, idx int }
	seen := map[work][]pos{}
	S, D, M := s.Stages(), s.Dirs(), s.DirMicroBatches()
	for r, ops := range s.Ops {
		for i, o := range ops {
			if o.Kind > ForwardBackward {
				add("rank %d op %d: unknown kind %d", r, i, o.Kind)
				continue
			}
			tasks := []Task{o.Task}
			if o.Kind == ForwardBackward {
				tasks = append(tasks, o.Back)
			}
			ok := true
			for _, t := range tasks {
				switch {
				case t.Dir < 0 || t.Dir >= D:
					add("rank %d op %d (%v): direction %d, want 0..%d", r, i, o, t.Dir, D-1)
					ok = false
				case t.MB < 0 || t.MB >= M:
					add("rank %d op %d (%v): micro-batch %d, want 0..%d", r, i, o, t.MB, M-1)
					ok = false
				case t.Stage < 0 || t.Stage >= S:
					add("rank %d op %d (%v): stage %d, want 0..%d", r, i, o, t.Stage, S-1)
					ok = false
				case s.RankOf(t.Dir, t.Stage) != r:
					add("rank %d op %d (%v): stage %d of direction %d lives on rank %d", r, i, o, t.Stage, t.Dir, s.RankOf(t.Dir, t.Stage))
					ok = false
				}
			}
			if !ok {
				continue
			}
			if o.Kind == ForwardBackward && s.Module(r, o.Task) == s.Module(r, o.Back) {
				add("rank %d op %d (%v): an overlapped F&B pair must run on the rank's two different chunks", r, i, o)
				continue
			}
			if o.Kind == ForwardBackward && o.DeferW {
				add("rank %d op %d (%v): the backward of an overlapped F&B pair is always full (DeferW set)", r, i, o)
				continue
			}
			for _, w := range o.parts() {
				seen[w] = append(seen[w], pos{r, i})
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Exactly one F and one B per (direction, micro-batch, stage), F before
	// B, and a W exactly for the deferred backwards, after them.
	deferred := map[Task]bool{}
	for _, ops := range s.Ops {
		for _, o := range ops {
			if o.Kind == Backward && o.DeferW {
				deferred[o.Task] = true
			}
		}
	}
	for d := 0; d < D; d++ {
		for m := 0; m < M; m++ {
			for st := 0; st < S; st++ {
				t := Task{d, m, st}
				rank := s.RankOf(d, st)
				f, b, w := seen[work{partF, t}], seen[work{partB, t}], seen[work{partW, t}]
				if len(f) != 1 {
					add("%v runs %d times, want once%s", work{partF, t}, len(f), s.lostSend(work{partF, t}, len(f)))
				}
				if len(b) != 1 {
					add("%v runs %d times, want once%s", work{partB, t}, len(b), s.lostSend(work{partB, t}, len(b)))
				}
				if len(f) == 1 && len(b) == 1 && b[0].idx <= f[0].idx {
					add("rank %d runs the backward %v (op %d) before its forward (op %d)", rank, work{partB, t}, b[0].idx, f[0].idx)
				}
				switch {
				case deferred[t] && len(w) != 1:
					add("the weight gradient deferred by Bi%d.%d@s%d runs %d times, want once", d, m, st, len(w))
				case !deferred[t] && len(w) != 0:
					add("W%d.%d@s%d has no deferring input-only backward (its B is full)", d, m, st)
				case deferred[t] && len(b) == 1 && w[0].idx <= b[0].idx:
					add("rank %d runs %v (op %d) before its input-only backward (op %d)", rank, work{partW, t}, w[0].idx, b[0].idx)
				}
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if _, _, err := s.sweep(Costs{}); err != nil {
		return err
	}
	return nil
}

// lostSend explains which transfer a missing or repeated piece of work
// leaves unmatched.
func (s *Schedule) lostSend(w work, n int) string {
	if n > 1 {
		return ""
	}
	t := w.t
	switch w.p {
	case partF:
		if t.Stage > 0 {
			return fmt.Sprintf(": the activation rank %d sends to rank %d has no matching receive",
				s.RankOf(t.Dir, t.Stage-1), s.RankOf(t.Dir, t.Stage))
		}
	case partB:
		if t.Stage < s.Stages()-1 {
			return fmt.Sprintf(": the gradient rank %d sends to rank %d has no matching receive",
				s.RankOf(t.Dir, t.Stage+1), s.RankOf(t.Dir, t.Stage))
		}
	}
	return ""
}

func (s *Schedule) checkShape() error {
	switch s.Variant {
	case OneFOneB, ZB1P, DualPipe, DualPipeV:
	default:
		return fmt.Errorf("dualpipe: unknown variant %d", s.Variant)
	}
	if s.Ranks < 1 {
		return fmt.Errorf("dualpipe: %d ranks, want >= 1", s.Ranks)
	}
	if s.Variant == DualPipe && s.Ranks%2 != 0 {
		return fmt.Errorf("dualpipe: DualPipe needs an even number of ranks, got P=%d", s.Ranks)
	}
	if s.MicroBatches < 1 {
		return fmt.Errorf("dualpipe: %d micro-batches, want >= 1", s.MicroBatches)
	}
	if s.Variant == DualPipe && s.MicroBatches%2 != 0 {
		return fmt.Errorf("dualpipe: DualPipe needs an even number of micro-batches, got N=%d", s.MicroBatches)
	}
	if len(s.Ops) != s.Ranks {
		return fmt.Errorf("dualpipe: schedule has programs for %d ranks, want %d", len(s.Ops), s.Ranks)
	}
	return nil
}

// sweep executes the ranks' programs in order, each op starting as soon as
// its rank is free and the work it waits for has finished (plus c.Comm when
// that work ran on another rank), and returns every op's start and end
// time. Op durations come from c; with zero costs it is the deadlock check.
// It assumes checkShape passed.
func (s *Schedule) sweep(c Costs) (start, end [][]float64, err error) {
	P := s.Ranks
	start = make([][]float64, P)
	end = make([][]float64, P)
	for r := range P {
		start[r] = make([]float64, len(s.Ops[r]))
		end[r] = make([]float64, len(s.Ops[r]))
	}
	done := map[work]float64{} // finish time of the work done so far
	next := make([]int, P)
	free := make([]float64, P)
	var buf []work
	remaining := 0
	for _, ops := range s.Ops {
		remaining += len(ops)
	}
	for remaining > 0 {
		progress := false
		for r := range P {
			for next[r] < len(s.Ops[r]) {
				o := s.Ops[r][next[r]]
				t0 := free[r]
				ready := true
				for _, w := range o.parts() {
					buf = s.deps(w, buf)
					for _, d := range buf {
						fin, ok := done[d]
						if !ok {
							ready = false
							break
						}
						if s.RankOf(d.t.Dir, d.t.Stage) != r {
							fin += c.Comm
						}
						t0 = max(t0, fin)
					}
					if !ready {
						break
					}
				}
				if !ready {
					break
				}
				t1 := t0 + c.duration(o)
				for _, w := range o.parts() {
					done[w] = t1
				}
				start[r][next[r]], end[r][next[r]] = t0, t1
				free[r] = t1
				next[r]++
				remaining--
				progress = true
			}
		}
		if !progress {
			return nil, nil, s.deadlock(next, done)
		}
	}
	return start, end, nil
}

// deadlock describes what every stuck rank waits for.
func (s *Schedule) deadlock(next []int, done map[work]float64) error {
	var b strings.Builder
	b.WriteString("dualpipe: deadlock:")
	var buf []work
	for r, i := range next {
		if i >= len(s.Ops[r]) {
			continue
		}
		o := s.Ops[r][i]
		var waits []string
		for _, w := range o.parts() {
			buf = s.deps(w, buf)
			for _, d := range buf {
				if _, ok := done[d]; !ok {
					waits = append(waits, fmt.Sprintf("%v on rank %d", d, s.RankOf(d.t.Dir, d.t.Stage)))
				}
			}
		}
		fmt.Fprintf(&b, " rank %d waits at op %d (%v) for %s;", r, i, o, strings.Join(waits, " and "))
	}
	return errors.New(strings.TrimSuffix(b.String(), ";"))
}
