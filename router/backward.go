package router

import (
	"fmt"
	"math"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// balanceTerm is the sequence-wise balance loss registered on a record.
type balanceTerm struct {
	alpha  float64
	seqLen int
	f      []float64 // [sequences, E]: f_i of each sequence (eq. 18)
	sumS   []float32 // per token Σ_j s_{j,t} (eq. 19)
}

// SeqBalanceLoss returns the complementary sequence-wise balance loss of
// the Forward that produced rec (report eqs. 17-20), for the tokens split
// into consecutive sequences of seqLen:
//
//	L_Bal = α Σ_i f_i P_i,  f_i = N_r/(K_r T) Σ_t 1(expert i chosen by t),
//	s'_{i,t} = s_{i,t} / Σ_j s_{j,t},  P_i = (1/T) Σ_t s'_{i,t},
//
// with T = seqLen, averaged over the sequences (alpha is config.json's
// aux_loss_alpha). The indicator counts the experts actually chosen (after
// the bias and the group limit). It also registers the loss on rec, so that
// the next Backward(rec, ...) adds its gradient (f held constant, as the
// indicator has none); a second call replaces the first.
func (r *Router) SeqBalanceLoss(rec dsv3.Record, seqLen int, alpha float32) (float64, error) {
	rc, ok := rec.(*record)
	if !ok || rc == nil {
		return 0, fmt.Errorf("router: SeqBalanceLoss needs the record of a training Forward, got %T", rec)
	}
	T, E, K := rc.rt.Tokens, r.Cfg.Experts, r.Cfg.TopK
	if seqLen <= 0 || T%seqLen != 0 {
		return 0, fmt.Errorf("router: sequence length %d does not divide the %d tokens", seqLen, T)
	}
	if math.IsNaN(float64(alpha)) || math.IsInf(float64(alpha), 0) {
		return 0, fmt.Errorf("router: balance factor alpha %v is not finite", alpha)
	}
	nseq := T / seqLen
	bt := &balanceTerm{alpha: float64(alpha), seqLen: seqLen, f: make([]float64, nseq*E), sumS: make([]float32, T)}
	p := make([]float64, E)
	var loss float64
	for q := range nseq {
		f := bt.f[q*E : (q+1)*E]
		clear(p)
		for t := q * seqLen; t < (q+1)*seqLen; t++ {
			ids, _ := rc.rt.Token(t)
			for _, e := range ids {
				f[e]++
			}
			row := rc.s.Row(t)
			var z float64
			for _, v := range row {
				z += float64(v)
			}
			bt.sumS[t] = float32(z)
			for j, v := range row {
				p[j] += float64(v) / z
			}
		}
		var l float64
		for i := range f {
			f[i] *= float64(E) / float64(K*seqLen)
			l += f[i] * p[i] / float64(seqLen)
		}
		loss += l
	}
	rc.bal = bt
	return bt.alpha * loss / float64(nseq), nil
}

// Backward takes the record of a training Forward and dL/dWeights
// (one value per chosen expert, aligned with Routing.Weights; nil when only
// a registered balance loss contributes), adds dL/dW to Grad (when
// present) and returns dL/dx.
//
// Gradients flow through the gate weights of the chosen experts: the
// scaling by routed_scaling_factor, the normalisation by their sum and the
// sigmoid (or softmax) of their scores, plus the balance loss registered by
// SeqBalanceLoss. The bias and the discrete choice have no gradient. W must
// be a float32 Matrix.
func (r *Router) Backward(rec dsv3.Record, dWeights []float32) (dsv3.Matrix, error) {
	rc, ok := rec.(*record)
	if !ok || rc == nil {
		return dsv3.Matrix{}, fmt.Errorf("router: Backward needs the record of a training Forward, got %T", rec)
	}
	c := r.Cfg
	T, E, K := rc.rt.Tokens, c.Experts, c.TopK
	if dWeights != nil && len(dWeights) != T*K {
		return dsv3.Matrix{}, fmt.Errorf("router: dWeights has %d values, want tokens %d × num_experts_per_tok %d = %d", len(dWeights), T, K, T*K)
	}
	w, ok := r.W.(dsv3.Matrix)
	if !ok {
		return dsv3.Matrix{}, fmt.Errorf("router: backward needs a float32 weight, have %T", r.W)
	}
	dl := dsv3.NewMatrix(T, E) // dL/dlogits
	scale := float64(c.RoutedScalingFactor)
	bal := rc.bal
	parallel.For(T, tokenGrain, r.Workers, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			s, d := rc.s.Row(t), dl.Row(t) // d holds dL/ds first
			ids, _ := rc.rt.Token(t)
			if dWeights != nil {
				g := dWeights[t*K : (t+1)*K]
				if c.NormTopKProb {
					// w_j = c s_j / S  =>  dL/ds_j = c/S (g_j - Σ_i g_i s_i / S)
					S := float64(rc.sum[t]) + 1e-20
					var dot float64
					for j, e := range ids {
						dot += float64(g[j]) * float64(s[e])
					}
					for j, e := range ids {
						d[e] += float32(scale / S * (float64(g[j]) - dot/S))
					}
				} else {
					for j, e := range ids {
						d[e] += float32(scale * float64(g[j]))
					}
				}
			}
			if bal != nil {
				// dL/ds'_{i,t} = α f_i / (T·nseq); s' = s/Z
				// => dL/ds_j = (g'_j - Σ_i g'_i s'_i) / Z.
				q := t / bal.seqLen
				f := bal.f[q*E : (q+1)*E]
				k := bal.alpha / float64(bal.seqLen) / float64(T/bal.seqLen)
				z := float64(bal.sumS[t])
				var dot float64
				for i, v := range s {
					dot += f[i] * float64(v) / z
				}
				for i := range d {
					d[i] += float32(k * (f[i] - dot) / z)
				}
			}
			if c.ScoringFunc == Softmax {
				var dot float64
				for i, v := range s {
					dot += float64(d[i]) * float64(v)
				}
				for i, v := range s {
					d[i] = v * (d[i] - float32(dot))
				}
			} else {
				for i, v := range s {
					d[i] *= v * (1 - v)
				}
			}
		}
	})
	dx := dsv3.NewMatrix(T, c.Hidden)
	dsv3.MatMul(dx, dl, w, false)
	if !r.Grad.Empty() {
		dsv3.MatTMul(r.Grad, dl, rc.x, true)
	}
	return dx, nil
}
