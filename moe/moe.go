package moe

import (
	"fmt"
	"strconv"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
	"github.com/dsv3go/dsv3/router"
)

// Config is a DeepSeekMoE layer's configuration (config.json names).
type Config struct {
	// Hidden is hidden_size.
	Hidden int
	// Intermediate is moe_intermediate_size: the width of each routed
	// expert and of each shared expert.
	Intermediate int
	// SharedExperts is n_shared_experts: N_s. They are stored as one
	// SwiGLU of width N_s × moe_intermediate_size. 0: none.
	SharedExperts int
	// Router configures the gate (n_routed_experts, num_experts_per_tok,
	// n_group, topk_group, topk_method, scoring_func, norm_topk_prob,
	// routed_scaling_factor); Router.Hidden must equal Hidden.
	Router router.Config
}

// Validate returns an error naming the first inconsistent field.
func (c Config) Validate() error {
	switch {
	case c.Hidden <= 0:
		return fmt.Errorf("moe: hidden_size %d must be positive", c.Hidden)
	case c.Intermediate <= 0:
		return fmt.Errorf("moe: moe_intermediate_size %d must be positive", c.Intermediate)
	case c.SharedExperts < 0:
		return fmt.Errorf("moe: n_shared_experts %d must be >= 0", c.SharedExperts)
	case c.Router.Hidden != c.Hidden:
		return fmt.Errorf("moe: router hidden_size %d, layer hidden_size %d", c.Router.Hidden, c.Hidden)
	}
	return c.Router.Validate()
}

// Options are the constructor's choices beyond the configuration.
type Options struct {
	// Mode: Inference (no weights allocated; a loader fills every
	// Param.Slot), Float32, or Training (float32 weights and gradients).
	Mode Mode
	// LocalExperts, when not nil, says which routed experts this process
	// holds (expert parallelism); the others stay nil and are not listed by
	// Params. nil: all.
	LocalExperts func(expert int) bool
}

// MoE is a DeepSeekMoE layer (report eq. 12), without the residual:
//
//	h'_t = Σ_{i≤N_s} FFN^(s)_i(u_t) + Σ_{i≤N_r} g_{i,t} FFN^(r)_i(u_t)
//
// with the gate weights g from Gate (package router). Its parameters are
// named relative to "mlp.": "gate.weight", "gate.e_score_correction_bias",
// "experts.{i}.{gate,up,down}_proj.weight" and
// "shared_experts.{gate,up,down}_proj.weight".
//
// Forward routes the tokens, hands (tokens, chosen experts) to the
// Dispatcher, which groups the rows per expert and runs one GEMM per
// expert and projection over its rows, combines each token's expert
// outputs with its gate weights, and adds the shared experts' output.
// Backward propagates into every expert, the shared experts, the router
// (through the gate weights) and the input.
type MoE struct {
	Cfg Config
	// Gate is the router.
	Gate *router.Router
	// Experts are the routed experts; nil for experts held elsewhere.
	Experts []*SwiGLU
	// Shared is the shared experts' SwiGLU; nil when n_shared_experts is 0.
	Shared *SwiGLU
	// Dispatcher places the routed experts' work; nil means Local.
	Dispatcher Dispatcher
	// Balance, when set, receives the expert load of every training
	// forward, so that UpdateBias can move the router's bias once per
	// optimizer step (with expert parallelism, sum the counts of all ranks
	// into it instead).
	Balance *router.BiasUpdater
	// Workers bounds the goroutines (0: GOMAXPROCS).
	Workers int
}

// New returns a MoE layer for cfg, allocated as opt.Mode says.
func New(cfg Config, opt Options) (*MoE, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opt.Mode < Inference || opt.Mode > Training {
		return nil, fmt.Errorf("moe: unknown %v", opt.Mode)
	}
	g, err := router.New(cfg.Router, opt.Mode == Training)
	if err != nil {
		return nil, err
	}
	if opt.Mode == Inference {
		g.W = nil // the loader fills it (BF16 in the checkpoint)
	}
	m := &MoE{Cfg: cfg, Gate: g, Experts: make([]*SwiGLU, cfg.Router.Experts)}
	for e := range m.Experts {
		if opt.LocalExperts == nil || opt.LocalExperts(e) {
			if m.Experts[e], err = NewSwiGLU(cfg.Hidden, cfg.Intermediate, opt.Mode); err != nil {
				return nil, err
			}
		}
	}
	if cfg.SharedExperts > 0 {
		if m.Shared, err = NewSwiGLU(cfg.Hidden, cfg.SharedExperts*cfg.Intermediate, opt.Mode); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Params lists the parameters with names relative to "mlp.".
func (m *MoE) Params() []dsv3.Param {
	ps := dsv3.PrefixParams("gate.", m.Gate.Params())
	for e, f := range m.Experts {
		if f != nil {
			ps = append(ps, dsv3.PrefixParams("experts."+strconv.Itoa(e)+".", f.Params())...)
		}
	}
	if m.Shared != nil {
		ps = append(ps, dsv3.PrefixParams("shared_experts.", m.Shared.Params())...)
	}
	return ps
}

// UpdateBias applies the load accumulated in Balance to the router's bias
// (b_i += γ·sign(mean − load_i)) and resets it; call it once per optimizer
// step.
func (m *MoE) UpdateBias() error {
	if m.Balance == nil {
		return fmt.Errorf("moe: UpdateBias without a Balance updater")
	}
	if !m.Cfg.Router.UsesBias() {
		return fmt.Errorf("moe: topk_method %q has no e_score_correction_bias to update", m.Cfg.Router.TopKMethod)
	}
	return m.Balance.Step(m.Gate.Bias.Row(0))
}

func (m *MoE) dispatcher() Dispatcher {
	if m.Dispatcher != nil {
		return m.Dispatcher
	}
	return Local{Workers: m.Workers}
}

// record is what Backward needs from one Forward.
type record struct {
	x      dsv3.Matrix
	rt     *router.Routing
	gate   dsv3.Record
	out    dsv3.Matrix // expert outputs per pair (unweighted), rows rowOf
	rowOf  []int32
	expert []*ffnRecord
	shared *ffnRecord
}

// Routing returns the expert choice recorded by a training Forward (nil
// for another record): its Load is this micro-batch's per-expert count.
func Routing(rec dsv3.Record) *router.Routing {
	if r, ok := rec.(*record); ok && r != nil {
		return r.rt
	}
	return nil
}

func (m *MoE) check() error {
	if err := m.Cfg.Validate(); err != nil {
		return err
	}
	if len(m.Experts) != m.Cfg.Router.Experts {
		return fmt.Errorf("moe: %d experts, n_routed_experts %d", len(m.Experts), m.Cfg.Router.Experts)
	}
	check := func(prefix string, f *SwiGLU, inter int) error {
		if err := f.Check(prefix); err != nil {
			return err
		}
		if h, i := f.dims(); h != m.Cfg.Hidden || i != inter {
			return fmt.Errorf("moe: %sgate_proj.weight is [%d, %d], want [%d, %d]", prefix, i, h, inter, m.Cfg.Hidden)
		}
		return nil
	}
	for e, f := range m.Experts {
		if f != nil {
			if err := check("experts."+strconv.Itoa(e)+".", f, m.Cfg.Intermediate); err != nil {
				return err
			}
		}
	}
	if m.Shared != nil {
		return check("shared_experts.", m.Shared, m.Cfg.SharedExperts*m.Cfg.Intermediate)
	}
	if m.Cfg.SharedExperts > 0 {
		return fmt.Errorf("moe: n_shared_experts %d but Shared is nil", m.Cfg.SharedExperts)
	}
	return nil
}

// Apply maps x [T, hidden] to the layer's output [T, hidden] (before the
// residual add) and, with train, returns the record for Backward (x is
// kept in it, not copied). Bad input, a missing or misshapen weight, a NaN
// score and dispatcher failures are errors.
func (m *MoE) Apply(x dsv3.Matrix, train bool) (dsv3.Matrix, dsv3.Record, error) {
	if err := m.check(); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	H, K, E := m.Cfg.Hidden, m.Cfg.Router.TopK, m.Cfg.Router.Experts
	if err := x.CheckShape("moe: input", x.Rows, H); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	rt, grec, err := m.Gate.Forward(x, train)
	if err != nil {
		return dsv3.Matrix{}, nil, err
	}
	if train && m.Balance != nil {
		if err := m.Balance.Add(rt); err != nil {
			return dsv3.Matrix{}, nil, err
		}
	}
	W := workersOf(m.Workers)
	T := x.Rows
	y := dsv3.NewMatrix(T, H)
	var rec *record
	if train {
		rec = &record{x: x, rt: rt, gate: grec, expert: make([]*ffnRecord, E)}
	}
	if m.Shared != nil {
		sr := m.Shared.forwardInto(y, x, false, train, W)
		if train {
			rec.shared = sr
		}
	}
	out, rowOf, err := m.dispatcher().Dispatch(x, rt.Experts, K, E, nil, H, func(e int, in, out dsv3.Matrix, workers int) error {
		f := m.expert(e)
		if f == nil {
			return fmt.Errorf("experts.%d is not held by this process", e)
		}
		r := f.forwardInto(out, in, false, train, workers)
		if train {
			rec.expert[e] = r
		}
		return nil
	})
	if err != nil {
		return dsv3.Matrix{}, nil, err
	}
	if err := checkRows(out, rowOf, H, "output"); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	// y_t += Σ_j g_{t,j} · out[rowOf[t*K+j]]
	parallel.For(T, 16, W, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			yt := y.Row(t)
			for j := range K {
				p := t*K + j
				g := rt.Weights[p]
				for c, v := range out.Row(int(rowOf[p])) {
					yt[c] += g * v
				}
			}
		}
	})
	if !train {
		return y, nil, nil
	}
	rec.out, rec.rowOf = out, rowOf
	return y, rec, nil
}

func (m *MoE) expert(e int) *SwiGLU {
	if e < 0 || e >= len(m.Experts) {
		return nil
	}
	return m.Experts[e]
}

// checkRows validates a dispatcher's result.
func checkRows(out dsv3.Matrix, rowOf []int32, cols int, what string) error {
	if out.Cols != cols {
		return fmt.Errorf("moe: dispatcher returned %s rows of %d values, want %d", what, out.Cols, cols)
	}
	for p, r := range rowOf {
		if r < 0 || int(r) >= out.Rows {
			return fmt.Errorf("moe: dispatcher maps pair %d to %s row %d of %d", p, what, r, out.Rows)
		}
	}
	return nil
}

// Forward implements dsv3.Layer: Apply, panicking on error.
func (m *MoE) Forward(x dsv3.Matrix, train bool) (dsv3.Matrix, dsv3.Record) {
	y, rec, err := m.Apply(x, train)
	if err != nil {
		panic(err)
	}
	return y, rec
}

// ApplyBackward takes the record of a training Forward and dL/dy, adds the
// gradients of every routed expert that received tokens, of the shared
// experts and of the router weight, and returns dL/dx (through the experts,
// the shared experts and the gate weights). The expert choice is held
// fixed. Weights must be float32.
func (m *MoE) ApplyBackward(rec dsv3.Record, dy dsv3.Matrix) (dsv3.Matrix, error) {
	r, ok := rec.(*record)
	if !ok || r == nil {
		return dsv3.Matrix{}, fmt.Errorf("moe: Backward needs the record of a training Forward, got %T", rec)
	}
	H, K, E := m.Cfg.Hidden, m.Cfg.Router.TopK, m.Cfg.Router.Experts
	T := r.x.Rows
	if err := dy.CheckShape("moe: output gradient", T, H); err != nil {
		return dsv3.Matrix{}, err
	}
	W := workersOf(m.Workers)
	dx := dsv3.NewMatrix(T, H)
	if m.Shared != nil {
		if err := m.Shared.backwardInto(dx, dy, r.shared, false, W); err != nil {
			return dsv3.Matrix{}, err
		}
	}
	// dL/dg_{t,j} = dy_t · out[rowOf[t*K+j]]
	dg := make([]float32, T*K)
	parallel.For(T, 16, W, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			dyt := dy.Row(t)
			for j := range K {
				p := t*K + j
				var s float32
				for c, v := range r.out.Row(int(r.rowOf[p])) {
					s += dyt[c] * v
				}
				dg[p] = s
			}
		}
	})
	// Each expert's output gradient is g·dy for its rows.
	din, rowOf, err := m.dispatcher().Dispatch(dy, r.rt.Experts, K, E, r.rt.Weights, H, func(e int, dout, dinE dsv3.Matrix, workers int) error {
		f := m.expert(e)
		if f == nil || r.expert[e] == nil {
			return fmt.Errorf("experts.%d has no forward record in this process", e)
		}
		if dout.Rows != r.expert[e].x.Rows {
			return fmt.Errorf("backward dispatch gave %d rows, the forward %d", dout.Rows, r.expert[e].x.Rows)
		}
		return f.backwardInto(dinE, dout, r.expert[e], false, workers)
	})
	if err != nil {
		return dsv3.Matrix{}, err
	}
	if err := checkRows(din, rowOf, H, "input gradient"); err != nil {
		return dsv3.Matrix{}, err
	}
	dxg, err := m.Gate.Backward(r.gate, dg)
	if err != nil {
		return dsv3.Matrix{}, err
	}
	parallel.For(T, 16, W, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			d := dx.Row(t)
			for c, v := range dxg.Row(t) {
				d[c] += v
			}
			for j := range K {
				for c, v := range din.Row(int(rowOf[t*K+j])) {
					d[c] += v
				}
			}
		}
	})
	return dx, nil
}

// Backward implements dsv3.Layer: ApplyBackward, panicking on error.
func (m *MoE) Backward(rec dsv3.Record, dy dsv3.Matrix) dsv3.Matrix {
	dx, err := m.ApplyBackward(rec, dy)
	if err != nil {
		panic(err)
	}
	return dx
}
