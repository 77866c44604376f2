package moe

import (
	"math"
	"math/rand/v2"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/router"
)

// The test's float64 model of the layer: a loop over tokens and, for each,
// over its chosen experts, written from the equations (no grouping, no
// GEMM). The expert choice is an input (held fixed, as in the gradient
// oracle); the gate weights are recomputed from the router weight.

type ffn64 struct {
	hidden, inter int
	g, u, d       []float64 // gate_proj, up_proj [inter, hidden]; down_proj [hidden, inter]
}

func toF64(m dsv3.Matrix) []float64 {
	out := make([]float64, 0, m.Rows*m.Cols)
	for i := 0; i < m.Rows; i++ {
		for _, v := range m.Row(i) {
			out = append(out, float64(v))
		}
	}
	return out
}

func ffnOf(f *SwiGLU) *ffn64 {
	inter, hidden := f.Gate.W.Dims()
	return &ffn64{hidden: hidden, inter: inter,
		g: toF64(f.Gate.W.(dsv3.Matrix)), u: toF64(f.Up.W.(dsv3.Matrix)), d: toF64(f.Down.W.(dsv3.Matrix))}
}

// apply adds c·FFN(x) to y.
func (f *ffn64) apply(y, x []float64, c float64) {
	h := make([]float64, f.inter)
	for i := range h {
		var a, b float64
		for j, v := range x {
			a += f.g[i*f.hidden+j] * v
			b += f.u[i*f.hidden+j] * v
		}
		h[i] = a / (1 + math.Exp(-a)) * b
	}
	for o := range y {
		var s float64
		for i, v := range h {
			s += f.d[o*f.inter+i] * v
		}
		y[o] += c * s
	}
}

type moe64 struct {
	rc      router.Config
	gate    []float64 // [E, H]
	experts []*ffn64
	shared  *ffn64
}

func moeOf(m *MoE) *moe64 {
	o := &moe64{rc: m.Cfg.Router, gate: toF64(m.Gate.W.(dsv3.Matrix))}
	for _, f := range m.Experts {
		o.experts = append(o.experts, ffnOf(f))
	}
	if m.Shared != nil {
		o.shared = ffnOf(m.Shared)
	}
	return o
}

// gateWeights returns token x's weights for its experts ids.
func (o *moe64) gateWeights(x []float64, ids []int32) []float64 {
	c := o.rc
	H := c.Hidden
	s := make([]float64, c.Experts)
	for e := range s {
		for j, v := range x {
			s[e] += o.gate[e*H+j] * v
		}
	}
	if c.ScoringFunc == router.Softmax {
		m := math.Inf(-1)
		for _, v := range s {
			m = math.Max(m, v)
		}
		var z float64
		for e, v := range s {
			s[e] = math.Exp(v - m)
			z += s[e]
		}
		for e := range s {
			s[e] /= z
		}
	} else {
		for e, v := range s {
			s[e] = 1 / (1 + math.Exp(-v))
		}
	}
	w := make([]float64, len(ids))
	var tot float64
	for j, e := range ids {
		w[j] = s[e]
		tot += s[e]
	}
	for j := range w {
		if c.NormTopKProb {
			w[j] /= tot
		}
		w[j] *= float64(c.RoutedScalingFactor)
	}
	return w
}

// forward returns the layer's output for x [T·H] with experts ids [T·K].
func (o *moe64) forward(x []float64, ids []int32) []float64 {
	H, K := o.rc.Hidden, o.rc.TopK
	T := len(x) / H
	y := make([]float64, T*H)
	for t := range T {
		xt, yt := x[t*H:(t+1)*H], y[t*H:(t+1)*H]
		chosen := ids[t*K : (t+1)*K]
		w := o.gateWeights(xt, chosen)
		for j, e := range chosen {
			o.experts[e].apply(yt, xt, w[j])
		}
		if o.shared != nil {
			o.shared.apply(yt, xt, 1)
		}
	}
	return y
}

// randomMoE returns a layer with random float32 weights. For inputs from
// randInput (feature 0 near 1) the router strongly favours every fifth
// expert and never picks experts 3, 8, 13, ..., through its weight and, with
// noaux_tc, its bias, so loads are uneven and some experts receive no
// token.
func randomMoE(rng *rand.Rand, cfg Config, mode Mode) *MoE {
	m, err := New(cfg, Options{Mode: mode})
	if err != nil {
		panic(err)
	}
	for _, p := range m.Params() {
		if p.Name == "gate.e_score_correction_bias" {
			for e := range p.Value.Data {
				switch e % 5 {
				case 0:
					p.Value.Data[e] = 0.3 // favoured
				case 3:
					p.Value.Data[e] = -5 // never chosen
				default:
					p.Value.Data[e] = float32(rng.NormFloat64() * 0.05)
				}
			}
			continue
		}
		sd := 1 / math.Sqrt(float64(p.Value.Cols))
		for i := range p.Value.Data {
			p.Value.Data[i] = float32(rng.NormFloat64() * sd)
		}
		if p.Name == "gate.weight" {
			for e := 0; e < p.Value.Rows; e++ {
				switch e % 5 {
				case 0:
					p.Value.Set(e, 0, 1.5)
				case 3:
					p.Value.Set(e, 0, -8)
				}
			}
		}
	}
	return m
}

// randInput returns T random tokens whose feature 0 is near 1.
func randInput(rng *rand.Rand, T, hidden int) dsv3.Matrix {
	x := randMatrix(rng, T, hidden, 1)
	for t := range T {
		x.Set(t, 0, float32(1+0.3*rng.NormFloat64()))
	}
	return x
}

func randMatrix(rng *rand.Rand, r, c int, sd float64) dsv3.Matrix {
	m := dsv3.NewMatrix(r, c)
	for i := range m.Data {
		m.Data[i] = float32(rng.NormFloat64() * sd)
	}
	return m
}
