package mla

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sync"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/yarn"
)

// MLA is one Multi-head Latent Attention layer: its projections, its two
// latent norms and its rotary embedding. The caller prefixes Params() names
// with "model.layers.N.self_attn.".
//
// Projection weights are *dsv3.Linear whose W may be any dsv3.Weight
// (float32 for training, BF16 or FP8 for inference); norms are
// *dsv3.RMSNorm. A layer keeps no per-call state: Forward returns a record
// for Backward, and inference state lives in a caller-owned Cache. Forward
// and Infer may run concurrently; Backward accumulates gradients and must
// not run concurrently with another Backward of the same layer.
type MLA struct {
	cfg   Config
	rope  *yarn.RoPE
	scale float32

	// QA is q_a_proj [q_lora_rank, hidden_size] (W^DQ, eq. 6); nil when
	// q_lora_rank is 0.
	QA *dsv3.Linear
	// QANorm is q_a_layernorm [q_lora_rank]; nil when q_lora_rank is 0.
	QANorm *dsv3.RMSNorm
	// QB is q_b_proj [heads·(qk_nope+qk_rope), q_lora_rank] (W^UQ and
	// W^QR, eqs. 7-8); nil when q_lora_rank is 0.
	QB *dsv3.Linear
	// Q is q_proj [heads·(qk_nope+qk_rope), hidden_size] when q_lora_rank
	// is 0, else nil.
	Q *dsv3.Linear
	// KVA is kv_a_proj_with_mqa [kv_lora_rank+qk_rope, hidden_size] (W^DKV
	// and W^KR, eqs. 1 and 3).
	KVA *dsv3.Linear
	// KVANorm is kv_a_layernorm [kv_lora_rank].
	KVANorm *dsv3.RMSNorm
	// KVB is kv_b_proj [heads·(qk_nope+v_head), kv_lora_rank] (W^UK and
	// W^UV, eqs. 2 and 5), rows of head h at h·(qk_nope+v_head).
	KVB *dsv3.Linear
	// O is o_proj [hidden_size, heads·v_head] (W^O, eq. 11).
	O *dsv3.Linear

	workers int

	absorbMu  sync.Mutex
	absorbSrc dsv3.Weight
	absorbW   dsv3.Matrix
}

// Option configures New.
type Option func(*options)

type options struct {
	train   bool
	seed    uint64
	initStd float64
	workers int
}

// WithTraining allocates float32 weights with gradients, initialised as
// Hugging Face's DeepseekV3 _init_weights does: every projection weight
// drawn from a normal distribution with mean 0 and standard deviation
// initializer_range (0.02 unless WithInitStd), norm weights 1. The draw is
// deterministic for a seed.
func WithTraining(seed uint64) Option {
	return func(o *options) { o.train, o.seed = true, seed }
}

// WithInitStd sets the standard deviation of WithTraining's initial
// weights [initializer_range].
func WithInitStd(std float64) Option { return func(o *options) { o.initStd = std } }

// WithWorkers sets how many goroutines the attention kernels use (0 means
// GOMAXPROCS). The projections run on the weights' own MulT.
func WithWorkers(n int) Option { return func(o *options) { o.workers = n } }

// New returns an MLA layer for cfg. By default it allocates no projection
// weights: a loader binds them by storing a dsv3.Weight (float32, BF16,
// FP8) through Params()[i].Slot and copies the norm weights into their
// Value (initialised to 1). WithTraining allocates float32 weights with
// gradients instead.
func New(cfg Config, opts ...Option) (*MLA, error) {
	o := options{initStd: 0.02}
	for _, f := range opts {
		f(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.initStd < 0 || math.IsNaN(o.initStd) {
		return nil, fmt.Errorf("mla: initializer_range = %v, want >= 0", o.initStd)
	}
	cfg.Rope.Dim = cfg.QKRopeHeadDim
	r, err := yarn.New(cfg.Rope)
	if err != nil {
		return nil, fmt.Errorf("mla: %w", err)
	}
	m := &MLA{cfg: cfg, rope: r, workers: o.workers}
	m.cfg.Rope = r.Config()
	if cfg.SoftmaxScale != 0 {
		m.scale = float32(cfg.SoftmaxScale)
	} else {
		m.scale = float32(r.SoftmaxScale(cfg.QKHeadDim()))
	}
	h, qk, eps := cfg.Heads, cfg.QKHeadDim(), float32(cfg.RMSNormEps)
	var rng *rand.Rand
	if o.train {
		rng = rand.New(rand.NewPCG(o.seed, 0x6d6c61))
	}
	lin := func(out, in int) *dsv3.Linear {
		if !o.train {
			return &dsv3.Linear{}
		}
		l := dsv3.NewLinear(out, in, true)
		w := l.W.(dsv3.Matrix)
		for i := range w.Data {
			w.Data[i] = float32(rng.NormFloat64() * o.initStd)
		}
		return l
	}
	if cfg.QLoraRank > 0 {
		m.QA = lin(cfg.QLoraRank, cfg.Hidden)
		m.QANorm = dsv3.NewRMSNorm(cfg.QLoraRank, eps, o.train)
		m.QB = lin(h*qk, cfg.QLoraRank)
	} else {
		m.Q = lin(h*qk, cfg.Hidden)
	}
	m.KVA = lin(cfg.KVLoraRank+cfg.QKRopeHeadDim, cfg.Hidden)
	m.KVANorm = dsv3.NewRMSNorm(cfg.KVLoraRank, eps, o.train)
	m.KVB = lin(h*(cfg.QKNopeHeadDim+cfg.VHeadDim), cfg.KVLoraRank)
	m.O = lin(cfg.Hidden, h*cfg.VHeadDim)
	return m, nil
}

// Config returns the layer's configuration (with Rope.Dim filled in).
func (m *MLA) Config() Config { return m.cfg }

// RoPE returns the layer's rotary embedding.
func (m *MLA) RoPE() *yarn.RoPE { return m.rope }

// SoftmaxScale returns the attention scale the layer uses.
func (m *MLA) SoftmaxScale() float64 { return float64(m.scale) }

// Params lists the parameters with the checkpoint's names relative to
// "model.layers.N.self_attn.": q_a_proj.weight, q_a_layernorm.weight,
// q_b_proj.weight (or q_proj.weight), kv_a_proj_with_mqa.weight,
// kv_a_layernorm.weight, kv_b_proj.weight, o_proj.weight.
func (m *MLA) Params() []dsv3.Param {
	var ps []dsv3.Param
	if m.QA != nil {
		ps = append(ps, dsv3.PrefixParams("q_a_proj.", m.QA.Params())...)
		ps = append(ps, dsv3.PrefixParams("q_a_layernorm.", m.QANorm.Params())...)
		ps = append(ps, dsv3.PrefixParams("q_b_proj.", m.QB.Params())...)
	} else {
		ps = append(ps, dsv3.PrefixParams("q_proj.", m.Q.Params())...)
	}
	ps = append(ps, dsv3.PrefixParams("kv_a_proj_with_mqa.", m.KVA.Params())...)
	ps = append(ps, dsv3.PrefixParams("kv_a_layernorm.", m.KVANorm.Params())...)
	ps = append(ps, dsv3.PrefixParams("kv_b_proj.", m.KVB.Params())...)
	ps = append(ps, dsv3.PrefixParams("o_proj.", m.O.Params())...)
	return ps
}

// checkWeights returns an error naming the first projection weight that is
// missing or has the wrong shape, and the first norm of the wrong width.
func (m *MLA) checkWeights() error {
	c := m.cfg
	h, qk := c.Heads, c.QKHeadDim()
	type lin struct {
		name    string
		l       *dsv3.Linear
		out, in int
	}
	ls := []lin{
		{"kv_a_proj_with_mqa.weight", m.KVA, c.KVLoraRank + c.QKRopeHeadDim, c.Hidden},
		{"kv_b_proj.weight", m.KVB, h * (c.QKNopeHeadDim + c.VHeadDim), c.KVLoraRank},
		{"o_proj.weight", m.O, c.Hidden, h * c.VHeadDim},
	}
	norms := []struct {
		name string
		n    *dsv3.RMSNorm
		dim  int
	}{{"kv_a_layernorm.weight", m.KVANorm, c.KVLoraRank}}
	if c.QLoraRank > 0 {
		ls = append(ls, lin{"q_a_proj.weight", m.QA, c.QLoraRank, c.Hidden}, lin{"q_b_proj.weight", m.QB, h * qk, c.QLoraRank})
		norms = append(norms, struct {
			name string
			n    *dsv3.RMSNorm
			dim  int
		}{"q_a_layernorm.weight", m.QANorm, c.QLoraRank})
	} else {
		ls = append(ls, lin{"q_proj.weight", m.Q, h * qk, c.Hidden})
	}
	for _, l := range ls {
		if l.l == nil || l.l.W == nil || isNilWeight(l.l.W) {
			return fmt.Errorf("mla: %s is not loaded", l.name)
		}
		out, in := l.l.W.Dims()
		if out != l.out || in != l.in {
			return fmt.Errorf("mla: %s has shape [%d, %d], want [%d, %d]", l.name, out, in, l.out, l.in)
		}
		if w, ok := l.l.W.(dsv3.Matrix); ok {
			if err := w.CheckShape("mla: "+l.name, l.out, l.in); err != nil {
				return err
			}
		}
	}
	for _, n := range norms {
		if n.n == nil {
			return fmt.Errorf("mla: %s is missing", n.name)
		}
		if err := n.n.Weight.CheckShape("mla: "+n.name, 1, n.dim); err != nil {
			return err
		}
	}
	return nil
}

// isNilWeight reports whether w holds a nil pointer (a typed nil).
func isNilWeight(w dsv3.Weight) bool {
	v := reflect.ValueOf(w)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// float32er and dequantizer are implemented by weights that can widen
// themselves to a float32 matrix (dsv3.BF16Weight, fp8.BlockWeight).
type (
	float32er   interface{ Float32() dsv3.Matrix }
	dequantizer interface{ Dequantize() dsv3.Matrix }
)

// absorbWeight returns kv_b_proj as a float32 [heads·(nope+v), kv_lora]
// matrix for the absorbed path: W itself when it is float32, else a
// dequantised copy made once per bound weight (as the reference
// dequantises wkv_b for absorption).
func (m *MLA) absorbWeight() dsv3.Matrix {
	w := m.KVB.W
	if f, ok := w.(dsv3.Matrix); ok {
		return f
	}
	m.absorbMu.Lock()
	defer m.absorbMu.Unlock()
	if m.absorbSrc != nil && sameWeight(m.absorbSrc, w) {
		return m.absorbW
	}
	var f dsv3.Matrix
	switch d := w.(type) {
	case float32er:
		f = d.Float32()
	case dequantizer:
		f = d.Dequantize()
	default:
		f = dequantise(w)
	}
	m.absorbSrc, m.absorbW = w, f
	return f
}

// sameWeight reports whether a and b are the same comparable weight value
// (pointers to the same weight).
func sameWeight(a, b dsv3.Weight) bool {
	ta := reflect.TypeOf(a)
	if ta != reflect.TypeOf(b) || !ta.Comparable() {
		return false
	}
	return a == b
}

// dequantise returns any weight as a float32 [out, in] matrix, through its
// own MulT: I·Wᵀ = Wᵀ, then transposed.
func dequantise(w dsv3.Weight) dsv3.Matrix {
	out, in := w.Dims()
	id := dsv3.NewMatrix(in, in)
	for i := 0; i < in; i++ {
		id.Set(i, i, 1)
	}
	wt := dsv3.NewMatrix(in, out)
	w.MulT(wt, id, false)
	f := dsv3.NewMatrix(out, in)
	for i := 0; i < in; i++ {
		for j, v := range wt.Row(i) {
			f.Data[j*in+i] = v
		}
	}
	return f
}
