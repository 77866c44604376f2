package dualpipe

import (
	"fmt"
	"math"
)

// Costs are the execution times of one op on one stage, in any unit, and
// of one transfer between ranks. Table 2 of the report writes F, B, W and
// F&B.
type Costs struct {
	// F is the forward of one micro-batch on one stage.
	F float64
	// B is a full backward (input and weight gradients); an input-only
	// backward takes B-W.
	B float64
	// W is the weight-gradient part of a backward.
	W float64
	// FB is an overlapped forward+backward pair (F&B); 0 means F+B, no
	// gain from the overlap.
	FB float64
	// Comm is the time from the end of an op to the start of the op on
	// another rank that receives its activation or gradient; 0 models
	// communication fully hidden behind computation.
	Comm float64
}

// UnitCosts are the unit costs of the fixture and of the Table 2 checks:
// F = W = 1, B = 2 (so an input-only backward costs 1), F&B = 3, no
// transfer time.
func UnitCosts() Costs { return Costs{F: 1, B: 2, W: 1, FB: 3} }

// Check returns an error unless every cost is finite and non-negative and
// W <= B.
func (c Costs) Check() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"F", c.F}, {"B", c.B}, {"W", c.W}, {"F&B", c.FB}, {"Comm", c.Comm}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("dualpipe: cost %s = %v, want a finite value >= 0", f.name, f.v)
		}
	}
	if c.W > c.B {
		return fmt.Errorf("dualpipe: cost W = %v exceeds the full backward B = %v", c.W, c.B)
	}
	return nil
}

// fb returns the cost of an overlapped pair.
func (c Costs) fb() float64 {
	if c.FB == 0 {
		return c.F + c.B
	}
	return c.FB
}

// duration returns how long o runs.
func (c Costs) duration(o Op) float64 {
	switch o.Kind {
	case Forward:
		return c.F
	case Backward:
		if o.DeferW {
			return c.B - c.W
		}
		return c.B
	case WeightGrad:
		return c.W
	case ForwardBackward:
		return c.fb()
	}
	return 0
}

// Timeline is a simulated execution of a schedule: every op starts as soon
// as its rank is free and the activations or gradients it receives have
// arrived (as-soon-as-possible list scheduling in each rank's order).
type Timeline struct {
	Schedule *Schedule
	Costs    Costs
	// Start[r][i] and End[r][i] are the times of op Schedule.Ops[r][i].
	Start, End [][]float64
	// Makespan is the end of the last op; the step starts at time 0.
	Makespan float64
	// Busy[r] is the time rank r computes; Bubble[r] = Makespan - Busy[r]
	// is the time it idles.
	Busy, Bubble []float64
	// PeakActivations[r] is the largest number of micro-batches whose
	// activations rank r holds at once, counted per stage: a forward
	// allocates one when it starts, a full backward or a W frees it when it
	// ends (an input-only backward keeps it for its W).
	PeakActivations []int
}

// Simulate validates s and times it with costs c.
func Simulate(s *Schedule, c Costs) (*Timeline, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	if err := Validate(s); err != nil {
		return nil, err
	}
	start, end, err := s.sweep(c)
	if err != nil {
		return nil, err
	}
	t := &Timeline{Schedule: s, Costs: c, Start: start, End: end,
		Busy: make([]float64, s.Ranks), Bubble: make([]float64, s.Ranks), PeakActivations: make([]int, s.Ranks)}
	for r, ops := range s.Ops {
		for i, o := range ops {
			t.Busy[r] += c.duration(o)
			t.Makespan = max(t.Makespan, end[r][i])
		}
		t.PeakActivations[r] = peakActivations(ops)
	}
	for r := range t.Bubble {
		t.Bubble[r] = t.Makespan - t.Busy[r]
	}
	return t, nil
}

// peakActivations counts, along a rank's program, the micro-batches whose
// forward has started and whose activations are not yet freed.
func peakActivations(ops []Op) int {
	cur, peak := 0, 0
	for _, o := range ops {
		switch o.Kind {
		case Forward:
			cur++
			peak = max(peak, cur)
		case Backward:
			if !o.DeferW {
				cur--
			}
		case WeightGrad:
			cur--
		case ForwardBackward:
			cur++
			peak = max(peak, cur)
			cur--
		}
	}
	return peak
}

// MaxBubble returns the largest per-rank bubble.
func (t *Timeline) MaxBubble() float64 {
	m := 0.0
	for _, b := range t.Bubble {
		m = max(m, b)
	}
	return m
}

// MinBubble returns the smallest per-rank bubble.
func (t *Timeline) MinBubble() float64 {
	m := math.Inf(1)
	for _, b := range t.Bubble {
		m = min(m, b)
	}
	return m
}

// MaxPeakActivations returns the largest per-rank peak of in-flight
// activations, in micro-batches of one stage.
func (t *Timeline) MaxPeakActivations() int {
	m := 0
	for _, a := range t.PeakActivations {
		m = max(m, a)
	}
	return m
}

// Formula returns Table 2's bubble formula for v, in the report's
// notation: PP is the number of pipeline stages.
func Formula(v Variant) string {
	switch v {
	case OneFOneB:
		return "(PP-1)(F+B)"
	case ZB1P:
		return "(PP-1)(F+B-2W)"
	case DualPipe, DualPipeV:
		return "(PP/2-1)(F&B+B-3W)"
	}
	return ""
}

// FormulaBubble evaluates Table 2's bubble for v with pp pipeline stages
// and costs c (F&B = c.FB, or F+B when c.FB is 0).
//
// With unit costs (F = W = B/2, F&B = F+B, no transfer time) the formulas
// equal every rank's simulated bubble, as the tests check for PP in {2, 4,
// 8, 16}. For other costs without transfer time, 1F1B's stays exact;
// ZB1P's (PP-1)(F+B-2W) is exact when W <= F <= B-W (the ZB-H1 paper
// assumes F = B-W = W); in that regime, with max(F, B) <= F&B <= F+B,
// DualPipe's is an upper bound that some costs do not reach. Outside it the
// ZB1P and DualPipe formulas are neither bounds nor exact, and transfer time
// (Costs.Comm) adds to all of them: Simulate gives the actual idle time.
func FormulaBubble(v Variant, pp int, c Costs) float64 {
	p := float64(pp)
	switch v {
	case OneFOneB:
		return (p - 1) * (c.F + c.B)
	case ZB1P:
		return (p - 1) * (c.F + c.B - 2*c.W)
	case DualPipe, DualPipeV:
		return (p/2 - 1) * (c.fb() + c.B - 3*c.W)
	}
	return math.NaN()
}

// Comparison is one row of Table 2 for given sizes and costs: the formula
// next to the simulated schedule.
type Comparison struct {
	Variant Variant
	// Stages is PP; Devices is the number of ranks (PP/2 for DualPipeV).
	Stages, Devices int
	// Formula is Table 2's bubble formula and FormulaBubble its value.
	Formula       string
	FormulaBubble float64
	// Timeline is the simulated schedule.
	Timeline *Timeline
	// ParamsPerDevice is the parameter memory of a device in stages (1 for
	// 1F1B and ZB1P, 2 for DualPipe and DualPipeV: Table 2's 1× and 2×);
	// ParamCopies is how many copies of the model all devices hold.
	ParamsPerDevice, ParamCopies int
	// PeakActivations is the largest per-device peak of in-flight
	// activations in micro-batches of one stage (Table 2: PP, PP, PP+1,
	// PP+1).
	PeakActivations int
}

// Compare builds and simulates the four schedules of Table 2 for pp
// pipeline stages (even) and n micro-batches with costs c, as the report
// compares them: on the same number of stages, so DualPipeV runs on pp/2
// devices.
func Compare(pp, n int, c Costs) ([]Comparison, error) {
	if pp < 2 || pp%2 != 0 {
		return nil, fmt.Errorf("dualpipe: Table 2 compares an even number of stages >= 2, got PP=%d", pp)
	}
	out := make([]Comparison, 0, len(Variants))
	for _, v := range Variants {
		ranks := pp
		if v == DualPipeV {
			ranks = pp / 2
		}
		s, err := Generate(v, ranks, n)
		if err != nil {
			return nil, err
		}
		t, err := Simulate(s, c)
		if err != nil {
			return nil, err
		}
		out = append(out, Comparison{
			Variant: v, Stages: pp, Devices: ranks,
			Formula: Formula(v), FormulaBubble: FormulaBubble(v, pp, c),
			Timeline:        t,
			ParamsPerDevice: len(s.Held(0)), ParamCopies: s.ParamCopies(),
			PeakActivations: t.MaxPeakActivations(),
		})
	}
	return out, nil
}

// SweepPoint is one simulated schedule of a sweep.
type SweepPoint struct {
	Variant                     Variant
	Ranks, Stages, MicroBatches int
	Makespan                    float64
	// MaxBubble and MinBubble are the largest and smallest per-rank idle
	// times; BubbleRate is MaxBubble / Makespan.
	MaxBubble, MinBubble, BubbleRate float64
	PeakActivations                  int
}

// Sweep simulates every variant for every number of ranks and of
// micro-batches with costs c. Combinations a variant does not accept (odd
// or too few micro-batches for DualPipe, ...) are left out.
func Sweep(variants []Variant, ranks, microBatches []int, c Costs) ([]SweepPoint, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	var out []SweepPoint
	for _, v := range variants {
		if v > DualPipeV {
			return nil, fmt.Errorf("dualpipe: unknown variant %d", v)
		}
		for _, p := range ranks {
			for _, n := range microBatches {
				s, err := Generate(v, p, n)
				if err != nil {
					continue
				}
				t, err := Simulate(s, c)
				if err != nil {
					return nil, err
				}
				out = append(out, SweepPoint{
					Variant: v, Ranks: p, Stages: s.Stages(), MicroBatches: n,
					Makespan: t.Makespan, MaxBubble: t.MaxBubble(), MinBubble: t.MinBubble(),
					BubbleRate: t.MaxBubble() / t.Makespan, PeakActivations: t.MaxPeakActivations(),
				})
			}
		}
	}
	return out, nil
}
