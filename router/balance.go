package router

import (
	"fmt"
	"math"
	"sync"
)

// BiasUpdater implements the auxiliary-loss-free balancing of report
// §2.1.2: it accumulates per-expert token counts over all micro-batches of
// one training step and, once per optimizer step, moves each expert's
// selection bias by the bias update speed γ toward balance:
//
//	b_i += γ · sign(mean_j load_j − load_i)
//
// (decreased for an overloaded expert, increased for an underloaded one,
// unchanged at the mean). The report uses γ = 0.001 for most of training
// and 0 at the end. Add and AddLoad are safe for concurrent use.
type BiasUpdater struct {
	// Gamma is γ, the bias update speed.
	Gamma float32

	mu   sync.Mutex
	load []int64
}

// NewBiasUpdater returns an updater for experts routed experts.
func NewBiasUpdater(experts int, gamma float32) (*BiasUpdater, error) {
	if experts <= 0 {
		return nil, fmt.Errorf("router: bias updater for %d experts", experts)
	}
	if math.IsNaN(float64(gamma)) || math.IsInf(float64(gamma), 0) || gamma < 0 {
		return nil, fmt.Errorf("router: bias update speed gamma %v must be finite and >= 0", gamma)
	}
	return &BiasUpdater{Gamma: gamma, load: make([]int64, experts)}, nil
}

// Add accumulates the load of one micro-batch's routing.
func (u *BiasUpdater) Add(rt *Routing) error {
	return addLoad(u, rt.Load)
}

// AddLoad accumulates per-expert token counts (for example counts already
// summed over expert-parallel ranks); len(load) must be the expert count.
func (u *BiasUpdater) AddLoad(load []int32) error {
	return addLoad(u, load)
}

func addLoad(u *BiasUpdater, load []int32) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(load) != len(u.load) {
		return fmt.Errorf("router: load has %d experts, the bias updater %d", len(load), len(u.load))
	}
	for i, n := range load {
		u.load[i] += int64(n)
	}
	return nil
}

// Load returns a copy of the counts accumulated since the last Step.
func (u *BiasUpdater) Load() []int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]int64(nil), u.load...)
}

// Step applies b_i += γ·sign(mean − load_i) to bias (the router's
// Bias.Row(0)) with the counts accumulated since the last Step, then
// resets them. A step with no tokens leaves bias unchanged.
func (u *BiasUpdater) Step(bias []float32) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(bias) != len(u.load) {
		return fmt.Errorf("router: e_score_correction_bias has %d values, the bias updater %d experts", len(bias), len(u.load))
	}
	var tot int64
	for _, n := range u.load {
		tot += n
	}
	if tot > 0 {
		// Compare load_i·E with Σ load, exactly in integers.
		e := int64(len(u.load))
		for i, n := range u.load {
			switch {
			case n*e < tot:
				bias[i] += u.Gamma
			case n*e > tot:
				bias[i] -= u.Gamma
			}
		}
	}
	clear(u.load)
	return nil
}
