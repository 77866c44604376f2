package dualpipe

import (
	"testing"
)

// TestTable2UnitCosts checks the simulated bubbles against the formulas of
// Table 2 of the report with unit costs (F = W = 1, B = 2, F&B = 3) for
// PP in {2, 4, 8, 16}: every rank's bubble equals the formula exactly for
// 1F1B, ZB1P, DualPipe and DualPipeV (on PP/2 devices), DualPipe and
// DualPipeV hold at most PP+1 micro-batches of activations (and reach it
// on every rank), 1F1B and ZB1P PP, and the parameter memory is 2× for the
// bidirectional schedules.
func TestTable2UnitCosts(t *testing.T) {
	u := UnitCosts()
	want := map[Variant]func(pp float64) float64{
		OneFOneB:  func(pp float64) float64 { return (pp - 1) * (1 + 2) },
		ZB1P:      func(pp float64) float64 { return (pp - 1) * (1 + 2 - 2*1) },
		DualPipe:  func(pp float64) float64 { return (pp/2 - 1) * (3 + 2 - 3*1) },
		DualPipeV: func(pp float64) float64 { return (pp/2 - 1) * (3 + 2 - 3*1) },
	}
	for _, pp := range []int{2, 4, 8, 16} {
		for _, n := range []int{2 * pp, 2*pp + 2, 3 * pp, 4*pp + 2} {
			cs, err := Compare(pp, n, u)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				tl := c.Timeline
				w := want[c.Variant](float64(pp))
				if c.FormulaBubble != w {
					t.Errorf("%v PP=%d: FormulaBubble %v, want %v", c.Variant, pp, c.FormulaBubble, w)
				}
				for r, b := range tl.Bubble {
					if b != w {
						t.Errorf("%v PP=%d N=%d rank %d: simulated bubble %v, Table 2 gives %v", c.Variant, pp, n, r, b, w)
					}
				}
				// Makespan = busy + bubble with busy = work per rank.
				perRank := float64(n) * (u.F + u.B)
				if c.Variant == DualPipeV {
					perRank *= 2 // two stages per device, every micro-batch through both
				}
				if tl.Makespan != perRank+w {
					t.Errorf("%v PP=%d N=%d: makespan %v, want %v", c.Variant, pp, n, tl.Makespan, perRank+w)
				}
				wantAct, wantParams, wantDevices := pp, 1, pp
				switch c.Variant {
				case DualPipe:
					wantAct, wantParams = pp+1, 2
				case DualPipeV:
					wantAct, wantParams, wantDevices = pp+1, 2, pp/2
				}
				if c.PeakActivations != wantAct || c.ParamsPerDevice != wantParams || c.Devices != wantDevices {
					t.Errorf("%v PP=%d N=%d: peak activations %d, params %d×, devices %d; want %d, %d×, %d",
						c.Variant, pp, n, c.PeakActivations, c.ParamsPerDevice, c.Devices, wantAct, wantParams, wantDevices)
				}
				if c.Variant == DualPipe || c.Variant == DualPipeV {
					for r, a := range tl.PeakActivations {
						if a != pp+1 {
							t.Errorf("%v PP=%d N=%d rank %d: peak activations %d, want PP+1 = %d", c.Variant, pp, n, r, a, pp+1)
						}
					}
				}
			}
		}
	}
}

// TestFormulaRegimes states where Table 2's formulas hold beyond unit
// costs, over a grid of costs with no transfer time: when the weight
// gradient is the shortest op and the forward no longer than the
// input-gradient backward (W <= F <= B-W) and the overlapped pair takes
// between max(F, B) and F+B, the 1F1B and ZB1P formulas are exact on every
// rank and DualPipe's is an upper bound, reached by the worst rank for
// some costs and not for others. 1F1B's is exact for any costs.
func TestFormulaRegimes(t *testing.T) {
	q := []float64{0.5, 1, 1.5, 2, 3}
	var strict, tight int
	for _, f := range q {
		for _, w := range q {
			for _, bi := range q {
				for _, gain := range []float64{0, 0.5, 1} {
					c := Costs{F: f, W: w, B: bi + w}
					c.FB = c.F + c.B - gain*min(c.F, c.B)
					inRegime := w <= f && f <= bi
					for _, pp := range []int{4, 8} {
						cs, err := Compare(pp, 2*pp+4, c)
						if err != nil {
							t.Fatal(err)
						}
						for _, x := range cs {
							got, formula := x.Timeline.MaxBubble(), x.FormulaBubble
							switch {
							case x.Variant == OneFOneB || (x.Variant == ZB1P && inRegime):
								if got != formula {
									t.Errorf("%v PP=%d costs %+v: bubble %v, formula %v", x.Variant, pp, c, got, formula)
								}
							case inRegime:
								if got > formula+1e-9 {
									t.Errorf("%v PP=%d costs %+v: bubble %v above the formula %v", x.Variant, pp, c, got, formula)
								}
								if got < formula-1e-9 {
									strict++
								} else {
									tight++
								}
							}
						}
					}
				}
			}
		}
	}
	if strict == 0 || tight == 0 {
		t.Errorf("DualPipe's formula was strict %d times and tight %d times; the grid should show both", strict, tight)
	}
	// Transfer time is not in the formulas: it only adds.
	c := UnitCosts()
	c.Comm = 0.25
	cs, err := Compare(8, 20, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range cs {
		if x.Timeline.MinBubble() <= x.FormulaBubble {
			t.Errorf("%v with transfers: bubble %v not above the formula %v", x.Variant, x.Timeline.MinBubble(), x.FormulaBubble)
		}
	}
}

// TestSimulateHandComputed checks the simulator on a schedule small enough
// to time by hand: 1F1B on 2 ranks with 2 micro-batches, F=1, B=2, a
// transfer of 0.5.
func TestSimulateHandComputed(t *testing.T) {
	s, err := NewOneFOneB(2, 2)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := Simulate(s, Costs{F: 1, B: 2, W: 1, Comm: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	// rank 0: F0 [0,1]  F1 [1,2]  B0 waits for rank 1's B0: [4.5+0.5... ]
	// rank 1: F0 [1.5,2.5] B0 [2.5,4.5] F1 [4.5,5.5] B1 [5.5,7.5]
	// rank 0: B0 [5,7] B1 [8,10]
	wantStart := [][]float64{{0, 1, 5, 8}, {1.5, 2.5, 4.5, 5.5}}
	wantEnd := [][]float64{{1, 2, 7, 10}, {2.5, 4.5, 5.5, 7.5}}
	for r := range wantStart {
		for i := range wantStart[r] {
			if tl.Start[r][i] != wantStart[r][i] || tl.End[r][i] != wantEnd[r][i] {
				t.Errorf("rank %d op %d (%v): [%v, %v], want [%v, %v]", r, i, s.Ops[r][i], tl.Start[r][i], tl.End[r][i], wantStart[r][i], wantEnd[r][i])
			}
		}
	}
	if tl.Makespan != 10 || tl.Bubble[0] != 4 || tl.Bubble[1] != 4 || tl.PeakActivations[0] != 2 || tl.PeakActivations[1] != 1 {
		t.Errorf("makespan %v bubble %v peak %v, want 10 [4 4] [2 1]", tl.Makespan, tl.Bubble, tl.PeakActivations)
	}
}

func TestSweep(t *testing.T) {
	pts, err := Sweep(Variants, []int{2, 4, 8}, []int{8, 9, 16, 32}, UnitCosts())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[Variant]int{}
	for _, p := range pts {
		seen[p.Variant]++
		if p.Variant == DualPipe && (p.MicroBatches%2 != 0 || p.MicroBatches < 2*p.Ranks) {
			t.Errorf("sweep kept an invalid DualPipe size P=%d N=%d", p.Ranks, p.MicroBatches)
		}
		if p.BubbleRate != p.MaxBubble/p.Makespan {
			t.Errorf("bubble rate %v", p.BubbleRate)
		}
	}
	// 1F1B and ZB1P: all 12; DualPipe: N in {8, 16, 32} for P=2, 4 and
	// {16, 32} for P=8; DualPipeV: every N >= 2P.
	if seen[OneFOneB] != 12 || seen[ZB1P] != 12 || seen[DualPipe] != 8 || seen[DualPipeV] != 10 {
		t.Errorf("sweep points per variant: %v", seen)
	}
	// The bubble does not depend on N for these schedules with unit costs,
	// so the bubble rate falls as N grows.
	var last float64 = 1
	for _, p := range pts {
		if p.Variant == DualPipe && p.Ranks == 8 {
			if p.BubbleRate >= last {
				t.Errorf("DualPipe P=8: bubble rate %v at N=%d does not fall", p.BubbleRate, p.MicroBatches)
			}
			last = p.BubbleRate
		}
	}
	if _, err := Sweep([]Variant{Variant(9)}, []int{2}, []int{4}, UnitCosts()); err == nil {
		t.Errorf("Sweep with an unknown variant: no error")
	}
}
