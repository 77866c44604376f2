package deepseekv3

import (
	"fmt"
	"math"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// AdamW is the optimizer of the report's pre-training (§4.2: β1 = 0.9,
// β2 = 0.95, weight decay 0.1) with decoupled weight decay, applied to
// 2-D weights only (norm weights are 1×n and are not decayed). With
// BF16Moments the first and second moments are stored in bfloat16, as the
// report does to save memory (§3.3.3); the update itself runs in float32.
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
	BF16Moments                        bool

	step  int
	state map[string]*adamState
}

type adamState struct {
	m, v     []float32
	mb, vb   []dsv3.BF16
	numValue int
}

// NewAdamW returns the report's settings with learning rate lr.
func NewAdamW(lr float32, bf16Moments bool) *AdamW {
	return &AdamW{LR: lr, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, BF16Moments: bf16Moments, state: map[string]*adamState{}}
}

// Steps returns how many updates have been applied.
func (o *AdamW) Steps() int { return o.step }

// Step applies one update to every parameter that has a gradient, with
// the learning rate lr (the schedule's value for this step).
func (o *AdamW) Step(params []dsv3.Param, lr float32) error {
	o.step++
	b1c := 1 - math.Pow(float64(o.Beta1), float64(o.step))
	b2c := 1 - math.Pow(float64(o.Beta2), float64(o.step))
	for _, p := range params {
		if p.Grad.Empty() {
			continue
		}
		if p.Value.Rows != p.Grad.Rows || p.Value.Cols != p.Grad.Cols {
			return fmt.Errorf("deepseekv3: AdamW: %s value %dx%d, gradient %dx%d", p.Name, p.Value.Rows, p.Value.Cols, p.Grad.Rows, p.Grad.Cols)
		}
		st := o.state[p.Name]
		n := p.Value.Rows * p.Value.Cols
		if st == nil {
			st = &adamState{numValue: n}
			if o.BF16Moments {
				st.mb, st.vb = make([]dsv3.BF16, n), make([]dsv3.BF16, n)
			} else {
				st.m, st.v = make([]float32, n), make([]float32, n)
			}
			o.state[p.Name] = st
		} else if st.numValue != n {
			return fmt.Errorf("deepseekv3: AdamW: %s changed size from %d to %d", p.Name, st.numValue, n)
		}
		decay := o.WeightDecay
		if p.Value.Rows == 1 {
			decay = 0
		}
		o.update(p, st, lr, decay, float32(b1c), float32(b2c))
	}
	return nil
}

func (o *AdamW) update(p dsv3.Param, st *adamState, lr, decay, b1c, b2c float32) {
	cols := p.Value.Cols
	parallel.For(p.Value.Rows, max(1, 4096/max(cols, 1)), 0, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			w, g := p.Value.Row(i), p.Grad.Row(i)
			for j := range w {
				k := i*cols + j
				var m, v float32
				if o.BF16Moments {
					m, v = st.mb[k].Float32(), st.vb[k].Float32()
				} else {
					m, v = st.m[k], st.v[k]
				}
				m = o.Beta1*m + (1-o.Beta1)*g[j]
				v = o.Beta2*v + (1-o.Beta2)*g[j]*g[j]
				if o.BF16Moments {
					st.mb[k], st.vb[k] = dsv3.ToBF16(m), dsv3.ToBF16(v)
				} else {
					st.m[k], st.v[k] = m, v
				}
				mh, vh := m/b1c, v/b2c
				w[j] -= lr * (mh/(float32(math.Sqrt(float64(vh)))+o.Eps) + decay*w[j])
			}
		}
	})
}

// ClipGradNorm scales every gradient so that their global L2 norm is at
// most maxNorm, and returns the norm before clipping.
func ClipGradNorm(params []dsv3.Param, maxNorm float64) float64 {
	var ss float64
	for _, p := range params {
		for i := 0; i < p.Grad.Rows; i++ {
			for _, g := range p.Grad.Row(i) {
				ss += float64(g) * float64(g)
			}
		}
	}
	norm := math.Sqrt(ss)
	if maxNorm > 0 && norm > maxNorm {
		s := float32(maxNorm / (norm + 1e-6))
		for _, p := range params {
			for i := 0; i < p.Grad.Rows; i++ {
				row := p.Grad.Row(i)
				for j := range row {
					row[j] *= s
				}
			}
		}
	}
	return norm
}

// CosineLR returns the learning rate at step (0-based): a linear warm-up
// over warmup steps to peak, then a cosine decay to minLR at total.
func CosineLR(step, warmup, total int, peak, minLR float64) float64 {
	if step < warmup {
		return peak * float64(step+1) / float64(warmup)
	}
	if total <= warmup {
		return peak
	}
	t := math.Min(1, float64(step-warmup)/float64(total-warmup))
	return minLR + 0.5*(peak-minLR)*(1+math.Cos(math.Pi*t))
}
