package router

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dsv3go/dsv3"
)

// gateLoss64 is the test's float64 model of what Backward differentiates:
// loss = Σ_t Σ_j R[t,j]·g_{t,j} (+ α·L_Bal over sequences of seqLen when
// alpha != 0), with the experts held fixed at ids. w is [E, H], x [T, H],
// both row-major float64.
func gateLoss64(c Config, w, x []float64, T int, ids []int32, R []float64, alpha float64, seqLen int) float64 {
	E, H, K := c.Experts, c.Hidden, c.TopK
	s := make([]float64, T*E)
	for t := range T {
		row := s[t*E : (t+1)*E]
		for i := range E {
			var d float64
			for j := range H {
				d += x[t*H+j] * w[i*H+j]
			}
			row[i] = d
		}
		if c.ScoringFunc == Softmax {
			m := math.Inf(-1)
			for _, v := range row {
				m = math.Max(m, v)
			}
			var z float64
			for i, v := range row {
				row[i] = math.Exp(v - m)
				z += row[i]
			}
			for i := range row {
				row[i] /= z
			}
		} else {
			for i, v := range row {
				row[i] = 1 / (1 + math.Exp(-v))
			}
		}
	}
	var loss float64
	for t := range T {
		var tot float64
		for j := range K {
			tot += s[t*E+int(ids[t*K+j])]
		}
		for j := range K {
			g := s[t*E+int(ids[t*K+j])] * float64(c.RoutedScalingFactor)
			if c.NormTopKProb {
				g /= tot
			}
			loss += R[t*K+j] * g
		}
	}
	if alpha != 0 {
		nseq := T / seqLen
		var bal float64
		for q := range nseq {
			f := make([]float64, E)
			p := make([]float64, E)
			for t := q * seqLen; t < (q+1)*seqLen; t++ {
				for j := range K {
					f[ids[t*K+j]] += float64(E) / float64(K*seqLen)
				}
				var z float64
				for i := range E {
					z += s[t*E+i]
				}
				for i := range E {
					p[i] += s[t*E+i] / z / float64(seqLen)
				}
			}
			for i := range E {
				bal += f[i] * p[i]
			}
		}
		loss += alpha * bal / float64(nseq)
	}
	return loss
}

func to64(m dsv3.Matrix) []float64 {
	out := make([]float64, 0, m.Rows*m.Cols)
	for i := 0; i < m.Rows; i++ {
		for _, v := range m.Row(i) {
			out = append(out, float64(v))
		}
	}
	return out
}

// fdGrad returns the central finite-difference gradient of f over v.
func fdGrad(v []float64, f func() float64) []float64 {
	g := make([]float64, len(v))
	for i := range v {
		h := 1e-6 * math.Max(1, math.Abs(v[i]))
		old := v[i]
		v[i] = old + h
		lp := f()
		v[i] = old - h
		lm := f()
		v[i] = old
		g[i] = (lp - lm) / (2 * h)
	}
	return g
}

func relErr64(got dsv3.Matrix, want []float64) float64 {
	var num, den float64
	g := to64(got)
	for i, w := range want {
		num = math.Max(num, math.Abs(g[i]-w))
		den = math.Max(den, math.Abs(w))
	}
	return num / den
}

// TestGradientsFiniteDifference checks Backward's router-weight and input
// gradients, with and without the sequence-wise balance loss, against
// central finite differences of the float64 model, for sigmoid with and
// without normalisation and for softmax.
func TestGradientsFiniteDifference(t *testing.T) {
	configs := []Config{propertyConfigs[0], propertyConfigs[3], propertyConfigs[4], propertyConfigs[5]}
	rng := rand.New(rand.NewPCG(11, 12))
	for ci, c := range configs {
		c.Hidden = 12
		for _, alpha := range []float64{0, 0.3} {
			t.Run(fmt.Sprintf("%d_%s_norm%v_alpha%v", ci, c.ScoringFunc, c.NormTopKProb, alpha), func(t *testing.T) {
				const T, seqLen = 24, 8
				r := randRouter(rng, c, true, 0.2)
				r.W = randMatrix(rng, c.Experts, c.Hidden, 0.6)
				x := randMatrix(rng, T, c.Hidden, 1)
				rt, rec, err := r.Forward(x, true)
				if err != nil {
					t.Fatal(err)
				}
				R := make([]float64, T*c.TopK)
				dw := make([]float32, T*c.TopK)
				for i := range R {
					dw[i] = float32(rng.NormFloat64())
					R[i] = float64(dw[i])
				}
				if alpha != 0 {
					loss, err := r.SeqBalanceLoss(rec, seqLen, float32(alpha))
					if err != nil {
						t.Fatal(err)
					}
					// The loss value itself against the float64 model.
					w64, x64 := to64(r.W.(dsv3.Matrix)), to64(x)
					want := gateLoss64(c, w64, x64, T, rt.Experts, make([]float64, len(R)), alpha, seqLen)
					if math.Abs(loss-want) > 1e-6*math.Abs(want) {
						t.Fatalf("balance loss %v, float64 model %v", loss, want)
					}
				}
				dx, err := r.Backward(rec, dw)
				if err != nil {
					t.Fatal(err)
				}
				w64, x64 := to64(r.W.(dsv3.Matrix)), to64(x)
				loss := func() float64 { return gateLoss64(c, w64, x64, T, rt.Experts, R, alpha, seqLen) }
				if e := relErr64(r.Grad, fdGrad(w64, loss)); e > 1e-4 {
					t.Errorf("router weight gradient: rel err %g vs finite differences", e)
				}
				if e := relErr64(dx, fdGrad(x64, loss)); e > 1e-4 {
					t.Errorf("input gradient: rel err %g vs finite differences", e)
				}
			})
		}
	}
}

// TestBalanceOnlyGradient: Backward with nil dWeights gives exactly the
// balance loss's gradient (finite differences of the loss alone).
func TestBalanceOnlyGradient(t *testing.T) {
	c := propertyConfigs[0]
	c.Hidden = 10
	rng := rand.New(rand.NewPCG(13, 14))
	const T, seqLen = 30, 10
	r := randRouter(rng, c, true, 0.2)
	x := randMatrix(rng, T, c.Hidden, 1)
	rt, rec, err := r.Forward(x, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SeqBalanceLoss(rec, seqLen, 0.01); err != nil {
		t.Fatal(err)
	}
	dx, err := r.Backward(rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	w64, x64 := to64(r.W.(dsv3.Matrix)), to64(x)
	zero := make([]float64, T*c.TopK)
	loss := func() float64 { return gateLoss64(c, w64, x64, T, rt.Experts, zero, 0.01, seqLen) }
	if e := relErr64(r.Grad, fdGrad(w64, loss)); e > 1e-4 {
		t.Errorf("router weight gradient of L_Bal: rel err %g", e)
	}
	if e := relErr64(dx, fdGrad(x64, loss)); e > 1e-4 {
		t.Errorf("input gradient of L_Bal: rel err %g", e)
	}
}

// TestBalanceLossFavoursBalance: a router that sends every token to the
// same experts has a larger L_Bal than α (its minimum for uniform choice
// and scores is α).
func TestBalanceLossFavoursBalance(t *testing.T) {
	c := propertyConfigs[0]
	r, _ := New(c, true)
	x := dsv3.NewMatrix(16, c.Hidden)
	r.Bias.Data[0], r.Bias.Data[1], r.Bias.Data[2], r.Bias.Data[3] = 1, 1, 1, 1
	_, rec, _ := r.Forward(x, true)
	l, err := r.SeqBalanceLoss(rec, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Scores are uniform (P_i = 1/16); f = 4 for experts 0-3, 0 otherwise:
	// L = Σ f_i P_i = 4·4/16 = 1.
	if math.Abs(l-1) > 1e-12 {
		t.Fatalf("L_Bal = %v, want 1", l)
	}
}
