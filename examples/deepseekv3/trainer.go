package deepseekv3

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/fp8"
	"github.com/dsv3go/dsv3/router"
)

// TrainConfig is the recipe of a training run (report §4.2, scaled down).
type TrainConfig struct {
	// Seed fixes the initial weights and the order of the batches.
	Seed uint64
	// Steps is the number of optimizer steps; Warmup of them ramp the
	// learning rate linearly to LR, the rest decay it by a cosine to MinLR.
	Steps, Warmup int
	LR, MinLR     float64
	// Batch windows of SeqLen tokens (plus one target each) per
	// micro-batch, Accum micro-batches per optimizer step.
	Batch, SeqLen, Accum int
	// Lambda is the MTP loss weight λ (0: MTP off).
	Lambda float32
	// Gamma is the bias update speed γ of auxiliary-loss-free balancing
	// (0: the bias never moves).
	Gamma float32
	// Alpha is the sequence-wise balance loss factor α (0: off).
	Alpha float32
	// ClipNorm is the global gradient-norm clip (report: 1.0).
	ClipNorm float64
	// WeightDecay is AdamW's decoupled decay (report: 0.1).
	WeightDecay float32
	// Precision is F32 or FP8: with FP8 every Linear inside the decoder
	// layers computes Fprop, Dgrad and Wgrad in FP8 (fp8.Linear) and the
	// optimizer keeps its moments in bfloat16 (report §3.3).
	Precision Precision
}

// Validate checks the recipe.
func (c TrainConfig) Validate() error {
	switch {
	case c.Steps <= 0:
		return fmt.Errorf("deepseekv3: train steps %d must be positive", c.Steps)
	case c.Warmup < 0:
		return fmt.Errorf("deepseekv3: warm-up %d must be >= 0", c.Warmup)
	case c.Batch <= 0 || c.SeqLen <= 1 || c.Accum <= 0:
		return fmt.Errorf("deepseekv3: batch %d, sequence length %d, accumulation %d must be positive (sequence >= 2)", c.Batch, c.SeqLen, c.Accum)
	case !(c.LR > 0) || c.MinLR < 0:
		return fmt.Errorf("deepseekv3: learning rate %g / minimum %g", c.LR, c.MinLR)
	case c.Lambda < 0 || c.Gamma < 0 || c.Alpha < 0:
		return fmt.Errorf("deepseekv3: λ %g, γ %g and α %g must be >= 0", c.Lambda, c.Gamma, c.Alpha)
	case c.Precision != F32 && c.Precision != FP8:
		return fmt.Errorf("deepseekv3: training precision %q is not f32 or fp8", c.Precision)
	}
	return nil
}

// Trainer trains a Model: AdamW with warm-up and cosine decay, gradient
// clipping and accumulation, the MTP loss, the router's bias update once
// per optimizer step, and the optional sequence-wise balance loss.
//
// Each micro-batch is split by sequences over min(GOMAXPROCS, Batch)
// data-parallel copies of the model that share its weights' values and
// keep their own gradients; the shards run concurrently and their
// gradients are summed, weighted by their share of the batch, into
// Model's. Small models use the cores far better this way than by
// splitting every small GEMM. The result is deterministic for a given
// GOMAXPROCS.
type Trainer struct {
	Cfg   TrainConfig
	Model *Model
	Opt   *AdamW
	// Step is the number of optimizer steps taken.
	Step int

	src      *rand.PCG // batch sampler state, saved in checkpoints
	rng      *rand.Rand
	balances []*router.BiasUpdater // one per MoE layer (main then MTP)
	moeNames []string
	// replicas are data-parallel copies of Model (weights copied from it
	// at every step, gradients their own): each runs a share of the batch
	// on its own goroutine, and their gradients are summed into Model's.
	replicas []*Model
}

// StepResult reports one optimizer step.
type StepResult struct {
	Step     int
	LR       float64
	Loss     Loss // averaged over the micro-batches
	GradNorm float64
	// MaxVio is each MoE layer's (max load − mean)/mean over the step's
	// tokens, in the order of MoENames.
	MaxVio []float64
	Tokens int
}

// NewTrainer builds a freshly initialised model for cfg.
func NewTrainer(model *Config, cfg TrainConfig) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Lambda > 0 && model.NumNextnPredictLayers == 0 {
		return nil, errors.New("deepseekv3: λ > 0 needs num_nextn_predict_layers >= 1")
	}
	m, err := New(model, Options{Train: true, Seed: cfg.Seed, MTP: model.NumNextnPredictLayers > 0})
	if err != nil {
		return nil, err
	}
	t := &Trainer{Cfg: cfg, Model: m}
	t.Opt = NewAdamW(float32(cfg.LR), cfg.Precision == FP8)
	t.Opt.WeightDecay = cfg.WeightDecay
	t.src = rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)
	t.rng = rand.New(t.src)
	if cfg.Precision == FP8 {
		m.Precision = FP8
		for _, l := range t.allLayers() {
			for _, p := range l.Params() {
				setEngine(l, p.Name)
			}
		}
	}
	for n := min(runtime.GOMAXPROCS(0), cfg.Batch); len(t.replicas) < n-1; {
		r, err := New(model, Options{Train: true, Seed: cfg.Seed, MTP: model.NumNextnPredictLayers > 0})
		if err != nil {
			return nil, err
		}
		r.Precision = m.Precision
		t.replicas = append(t.replicas, r)
	}
	for i, l := range t.allLayers() {
		if cfg.Precision == FP8 {
			for _, r := range t.replicas {
				rl := layersOf(r)[i]
				for _, p := range rl.Params() {
					setEngine(rl, p.Name)
				}
			}
		}
		if l.MoE == nil {
			continue
		}
		bu, err := router.NewBiasUpdater(l.MoE.Cfg.Router.Experts, cfg.Gamma)
		if err != nil {
			return nil, err
		}
		l.MoE.Balance = bu
		for _, r := range t.replicas {
			layersOf(r)[i].MoE.Balance = bu // loads of every shard add up
		}
		t.balances = append(t.balances, bu)
		t.moeNames = append(t.moeNames, fmt.Sprintf("layer%d", i))
	}
	return t, nil
}

// allLayers returns the decoder layers followed by the MTP modules'.
func (t *Trainer) allLayers() []*Layer { return layersOf(t.Model) }

// MoENames names the MoE layers whose MaxVio StepResult reports.
func (t *Trainer) MoENames() []string { return t.moeNames }

// setEngine puts fp8's training engine on every projection of a decoder
// layer (attention, experts, shared experts, dense MLP; the router stays
// float32, as in the report). The inputs of o_proj and of down_proj (the
// linear after attention and the SwiGLU output) use power-of-two scales,
// as the report's §3.3.2 does for those activations.
func setEngine(l *Layer, name string) {
	for _, lin := range layerLinears(l) {
		if lin.name == name {
			e := &fp8.Linear{}
			if strings.HasSuffix(name, "o_proj.weight") || strings.HasSuffix(name, "down_proj.weight") {
				e.InputScale = fp8.ScalePow2
			}
			lin.l.Engine = e
		}
	}
}

type namedLinear struct {
	name string
	l    *dsv3.Linear
}

// layerLinears lists a layer's projections with their relative names.
func layerLinears(l *Layer) []namedLinear {
	var out []namedLinear
	add := func(name string, lin *dsv3.Linear) {
		if lin != nil {
			out = append(out, namedLinear{name, lin})
		}
	}
	a := l.Attn
	add("self_attn.q_a_proj.weight", a.QA)
	add("self_attn.q_b_proj.weight", a.QB)
	add("self_attn.q_proj.weight", a.Q)
	add("self_attn.kv_a_proj_with_mqa.weight", a.KVA)
	add("self_attn.kv_b_proj.weight", a.KVB)
	add("self_attn.o_proj.weight", a.O)
	if l.Dense != nil {
		add("mlp.gate_proj.weight", l.Dense.Gate)
		add("mlp.up_proj.weight", l.Dense.Up)
		add("mlp.down_proj.weight", l.Dense.Down)
	}
	if l.MoE != nil {
		for e, f := range l.MoE.Experts {
			if f == nil {
				continue
			}
			p := fmt.Sprintf("mlp.experts.%d.", e)
			add(p+"gate_proj.weight", f.Gate)
			add(p+"up_proj.weight", f.Up)
			add(p+"down_proj.weight", f.Down)
		}
		if s := l.MoE.Shared; s != nil {
			add("mlp.shared_experts.gate_proj.weight", s.Gate)
			add("mlp.shared_experts.up_proj.weight", s.Up)
			add("mlp.shared_experts.down_proj.weight", s.Down)
		}
	}
	return out
}

// sample draws a micro-batch of Batch windows of SeqLen+1 tokens.
func (t *Trainer) sample(data []int32) []int32 {
	n := t.Cfg.SeqLen + 1
	out := make([]int32, 0, t.Cfg.Batch*n)
	for b := 0; b < t.Cfg.Batch; b++ {
		off := t.rng.IntN(len(data) - n + 1)
		out = append(out, data[off:off+n]...)
	}
	return out
}

// TrainStep takes one optimizer step on micro-batches drawn from data.
func (t *Trainer) TrainStep(data []int32) (StepResult, error) {
	c := t.Cfg
	if len(data) < c.SeqLen+2 {
		return StepResult{}, fmt.Errorf("deepseekv3: %d training tokens are fewer than one window of %d", len(data), c.SeqLen+1)
	}
	params := t.Model.Params()
	dsv3.ZeroGrads(params)
	rparams := t.syncReplicas()
	res := StepResult{Step: t.Step + 1}
	shards := t.shards()
	losses := make([]Loss, len(shards))
	errs := make([]error, len(shards))
	for a := 0; a < c.Accum; a++ {
		win := t.sample(data)
		run := func(i int) {
			sh := shards[i]
			part := win[sh.lo*(c.SeqLen+1) : sh.hi*(c.SeqLen+1)]
			losses[i], errs[i] = sh.model.TrainStep(part, sh.hi-sh.lo, c.SeqLen, c.Lambda, c.Alpha)
		}
		var wg sync.WaitGroup
		for i := 1; i < len(shards); i++ {
			wg.Add(1)
			go func() { defer wg.Done(); run(i) }()
		}
		run(0)
		wg.Wait()
		for i, l := range losses {
			if errs[i] != nil {
				return res, fmt.Errorf("deepseekv3: step %d: %w", t.Step+1, errs[i])
			}
			f := float64(shards[i].hi-shards[i].lo) / float64(c.Batch) / float64(c.Accum)
			res.Loss.Main += l.Main * f
			res.Loss.MTP += l.MTP * f
			res.Loss.Balance += l.Balance * f
			if res.Loss.MTPDepths == nil {
				res.Loss.MTPDepths = make([]float64, len(l.MTPDepths))
			}
			for j, v := range l.MTPDepths {
				res.Loss.MTPDepths[j] += v * f
			}
		}
		res.Tokens += c.Batch * c.SeqLen
	}
	// Each shard's gradient is of its own mean loss: weight them by their
	// share of the batch (and the accumulation) and sum into the master.
	for pi, p := range params {
		if p.Grad.Empty() {
			continue
		}
		w0 := float32(shards[0].hi-shards[0].lo) / float32(c.Batch) / float32(c.Accum)
		for r := 0; r < p.Grad.Rows; r++ {
			g := p.Grad.Row(r)
			for j := range g {
				g[j] *= w0
			}
			for i := 1; i < len(shards); i++ {
				wi := float32(shards[i].hi-shards[i].lo) / float32(c.Batch) / float32(c.Accum)
				gi := rparams[i-1][pi].Grad.Row(r)
				for j := range g {
					g[j] += wi * gi[j]
				}
			}
		}
	}
	res.GradNorm = ClipGradNorm(params, c.ClipNorm)
	if math.IsNaN(res.GradNorm) || math.IsInf(res.GradNorm, 0) {
		return res, fmt.Errorf("deepseekv3: step %d: gradient norm is %v", t.Step+1, res.GradNorm)
	}
	res.LR = CosineLR(t.Step, c.Warmup, c.Steps, c.LR, c.MinLR)
	if err := t.Opt.Step(params, float32(res.LR)); err != nil {
		return res, err
	}
	for _, l := range t.allLayers() {
		if l.MoE == nil {
			continue
		}
		res.MaxVio = append(res.MaxVio, router.MaxVio(l.MoE.Balance.Load()))
		if err := l.MoE.UpdateBias(); err != nil {
			return res, err
		}
	}
	t.Step++
	return res, nil
}

// Eval returns the mean next-token loss (and MTP loss, when the model has
// modules) over the validation windows, without touching any state.
func (t *Trainer) Eval(val []int32, windows int) (main, mtpLoss float64, err error) {
	c := t.Cfg
	n := c.SeqLen + 1
	if len(val) < n {
		return 0, 0, fmt.Errorf("deepseekv3: %d validation tokens are fewer than one window of %d", len(val), n)
	}
	stride := max(1, (len(val)-n)/max(1, windows-1))
	count := 0
	for off := 0; off+n <= len(val) && count < windows; off += stride {
		win := val[off : off+n]
		l, err := t.Model.EvalWindows(win, 1, c.SeqLen, c.Lambda)
		if err != nil {
			return 0, 0, err
		}
		main += l.Main
		mtpLoss += l.MTP
		count++
	}
	return main / float64(count), mtpLoss / float64(count), nil
}

// layersOf returns a model's decoder layers followed by its MTP modules'.
func layersOf(m *Model) []*Layer {
	ls := append([]*Layer(nil), m.Layers...)
	for _, mod := range m.MTP {
		ls = append(ls, mod.Block.(*Layer))
	}
	return ls
}

type shard struct {
	model  *Model
	lo, hi int // sequences [lo, hi) of each micro-batch
}

// shards splits a micro-batch's sequences over the model and its replicas.
func (t *Trainer) shards() []shard {
	n := 1 + len(t.replicas)
	out := make([]shard, n)
	for i := range out {
		m := t.Model
		if i > 0 {
			m = t.replicas[i-1]
		}
		out[i] = shard{model: m, lo: i * t.Cfg.Batch / n, hi: (i + 1) * t.Cfg.Batch / n}
	}
	return out
}

// syncReplicas copies the model's parameter values into every replica,
// zeroes the replicas' gradients, and returns their parameter lists.
func (t *Trainer) syncReplicas() [][]dsv3.Param {
	master := t.Model.Params()
	out := make([][]dsv3.Param, len(t.replicas))
	for i, r := range t.replicas {
		ps := r.Params()
		for j, p := range ps {
			p.Value.CopyFrom(master[j].Value)
			p.Grad.Zero()
		}
		out[i] = ps
	}
	return out
}
