package router

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// Router is the gate of one DeepSeekMoE layer: it scores every routed
// expert for every token and chooses each token's TopK experts and their
// gate weights. Its parameters are named relative to "mlp.gate.":
// "weight" [n_routed_experts, hidden_size] and, with topk_method
// "noaux_tc", "e_score_correction_bias" [n_routed_experts], which has no
// gradient (it is moved by a BiasUpdater, not by the optimizer).
//
// A Router keeps no per-call state: Forward returns a Record for Backward,
// so several micro-batches can be in flight.
type Router struct {
	Cfg Config
	// W is the expert centroid matrix e_i as rows [Experts, Hidden]: a
	// float32 Matrix for training, or any dsv3.Weight (a BF16Weight as in
	// the checkpoint) for inference. A nil W makes Forward fail until a
	// loader fills it through Params' Slot.
	W dsv3.Weight
	// Grad is dL/dW, accumulated by Backward; empty for inference.
	Grad dsv3.Matrix
	// Bias is the selection bias b_i (1×Experts), empty unless
	// Cfg.UsesBias().
	Bias dsv3.Matrix
	// Workers bounds the goroutines of the per-token work (0: GOMAXPROCS).
	Workers int
}

// New returns a router for cfg with a zero float32 weight and zero bias,
// and a weight gradient when train is true.
func New(cfg Config, train bool) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Router{Cfg: cfg, W: dsv3.NewMatrix(cfg.Experts, cfg.Hidden)}
	if train {
		r.Grad = dsv3.NewMatrix(cfg.Experts, cfg.Hidden)
	}
	if cfg.UsesBias() {
		r.Bias = dsv3.NewMatrix(1, cfg.Experts)
	}
	return r, nil
}

// Params returns "weight" and, with a bias, "e_score_correction_bias"
// (no gradient), names relative to "mlp.gate.".
func (r *Router) Params() []dsv3.Param {
	p := dsv3.Param{Name: "weight", Grad: r.Grad, Slot: &r.W}
	if w, ok := r.W.(dsv3.Matrix); ok {
		p.Value = w
	}
	ps := []dsv3.Param{p}
	if r.Cfg.UsesBias() {
		ps = append(ps, dsv3.Param{Name: "e_score_correction_bias", Value: r.Bias})
	}
	return ps
}

// Routing is the router's choice for a batch of tokens, stored flat: the
// choices of token t are at [t*K, (t+1)*K).
type Routing struct {
	// Tokens is the number of tokens T; K the experts per token.
	Tokens, K int
	// Experts holds the chosen expert ids, for each token in descending
	// order of biased score s+b (ties: the lower expert id first).
	Experts []int32
	// Weights holds the gate weights g of those experts (report eq. 13):
	// their unbiased scores, divided by their sum when norm_topk_prob,
	// times routed_scaling_factor.
	Weights []float32
	// Load counts, per expert, the tokens that chose it.
	Load []int32
}

// Token returns the experts and weights of token t (views, not copies).
func (rt *Routing) Token(t int) ([]int32, []float32) {
	return rt.Experts[t*rt.K : (t+1)*rt.K], rt.Weights[t*rt.K : (t+1)*rt.K]
}

// record is what Backward needs from a Forward.
type record struct {
	x   dsv3.Matrix
	s   dsv3.Matrix // [T, E] unbiased scores
	sum []float32   // per token Σ of the chosen scores (NormTopKProb)
	rt  *Routing
	bal *balanceTerm
}

// tokenGrain is the smallest run of tokens a goroutine takes.
const tokenGrain = 16

// Forward scores x [T, Hidden] and chooses each token's experts. With
// train it also returns the Record that Backward and SeqBalanceLoss need
// (x is kept in it, not copied: leave x unchanged until Backward).
//
// It returns an error when x has the wrong width, x holds a NaN or an
// infinity, W is missing or has the wrong shape, or a score is NaN.
func (r *Router) Forward(x dsv3.Matrix, train bool) (*Routing, dsv3.Record, error) {
	c := r.Cfg
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	if err := r.checkParams(); err != nil {
		return nil, nil, err
	}
	if err := x.CheckShape("router input", x.Rows, c.Hidden); err != nil {
		return nil, nil, err
	}
	if err := checkFinite(x, r.Workers); err != nil {
		return nil, nil, err
	}
	T, E, K := x.Rows, c.Experts, c.TopK
	s := dsv3.NewMatrix(T, E)
	r.W.MulT(s, x, false)
	rt := &Routing{Tokens: T, K: K, Experts: make([]int32, T*K), Weights: make([]float32, T*K), Load: make([]int32, E)}
	var sum []float32
	if train && c.NormTopKProb {
		sum = make([]float32, T)
	}
	var bias []float32
	if c.UsesBias() {
		bias = r.Bias.Row(0)
	}
	var bad atomic.Int64 // 1 + first token with a NaN score, 0 if none
	parallel.For(T, tokenGrain, r.Workers, func(lo, hi int) {
		sc := newScratch(c)
		for t := lo; t < hi; t++ {
			row := s.Row(t)
			if !score(c.ScoringFunc, row) {
				bad.CompareAndSwap(0, int64(t)+1)
				continue
			}
			ids, w := rt.Token(t)
			sc.choose(c, row, bias, ids)
			tot := weigh(c, row, ids, w)
			if sum != nil {
				sum[t] = tot
			}
		}
	})
	if b := bad.Load(); b != 0 {
		t := int(b - 1)
		for j, v := range s.Row(t) {
			if v != v {
				return nil, nil, fmt.Errorf("router: NaN affinity score for token %d, expert %d (the router weight holds a NaN or infinity)", t, j)
			}
		}
		return nil, nil, fmt.Errorf("router: NaN affinity score for token %d", t)
	}
	for _, e := range rt.Experts {
		rt.Load[e]++
	}
	if !train {
		return rt, nil, nil
	}
	return rt, &record{x: x, s: s, sum: sum, rt: rt}, nil
}

func (r *Router) checkParams() error {
	c := r.Cfg
	if r.W == nil {
		return fmt.Errorf("router: weight is not set (fill it through Params()' Slot)")
	}
	if out, in := r.W.Dims(); out != c.Experts || in != c.Hidden {
		return fmt.Errorf("router: weight shape [%d, %d], want [n_routed_experts %d, hidden_size %d]", out, in, c.Experts, c.Hidden)
	}
	if c.UsesBias() {
		if err := r.Bias.CheckShape("router: e_score_correction_bias", 1, c.Experts); err != nil {
			return err
		}
		if err := r.Bias.CheckFinite("router: e_score_correction_bias"); err != nil {
			return err
		}
	}
	return nil
}

// checkFinite returns an error naming the first non-finite value of x,
// checking rows in parallel (v·0 is NaN exactly for NaN and ±Inf).
func checkFinite(x dsv3.Matrix, workers int) error {
	var bad atomic.Bool
	parallel.For(x.Rows, 64, workers, func(lo, hi int) {
		for i := lo; i < hi && !bad.Load(); i++ {
			row := x.Row(i)
			var a0, a1, a2, a3 float32
			j := 0
			for ; j+4 <= len(row); j += 4 {
				a0 += row[j] * 0
				a1 += row[j+1] * 0
				a2 += row[j+2] * 0
				a3 += row[j+3] * 0
			}
			for ; j < len(row); j++ {
				a0 += row[j] * 0
			}
			if a0+a1+a2+a3 != 0 {
				bad.Store(true)
			}
		}
	})
	if bad.Load() {
		return x.CheckFinite("router input")
	}
	return nil
}

// score turns the logits of one token into affinities in place and
// reports whether they are all non-NaN.
func score(fn string, row []float32) bool {
	if fn == Softmax {
		m := float32(math.Inf(-1))
		for _, v := range row {
			if v != v {
				return false
			}
			m = max(m, v)
		}
		var z float64
		for j, v := range row {
			e := float32(math.Exp(float64(v - m)))
			row[j] = e
			z += float64(e)
		}
		inv := float32(1 / z)
		for j := range row {
			row[j] *= inv
		}
		return true
	}
	for j, v := range row {
		if v != v {
			return false
		}
		row[j] = sigmoid(v)
	}
	return true
}

func sigmoid(v float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(v))))
}

// weigh writes the gate weights of the chosen experts and returns the sum
// of their unbiased scores.
func weigh(c Config, s []float32, ids []int32, w []float32) float32 {
	var tot float32
	for j, e := range ids {
		w[j] = s[e]
		tot += s[e]
	}
	if c.NormTopKProb {
		// As the reference: divide by the sum, then scale. The tiny
		// constant only guards a sum that underflowed to zero.
		d := tot + 1e-20
		for j := range w {
			w[j] /= d
		}
	}
	for j := range w {
		w[j] *= c.RoutedScalingFactor
	}
	return tot
}
