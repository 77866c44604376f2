package deepseekv3

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/mla"
	"github.com/dsv3go/dsv3/moe"
	"github.com/dsv3go/dsv3/mtp"
	"github.com/dsv3go/dsv3/router"
	"github.com/dsv3go/dsv3/yarn"
)

// Precision is how the model multiplies.
type Precision string

const (
	// F32 computes in float32; FP8 checkpoint weights are dequantised
	// exactly (code × block scale) on the fly, as the reference's default
	// path in float32.
	F32 Precision = "f32"
	// BF16 holds the weights in bfloat16 and rounds the activations of
	// every projection and of the residual stream to bfloat16, as the
	// reference run in torch.bfloat16.
	BF16 Precision = "bf16"
	// FP8 quantises activations per 1x128 tile and multiplies with the FP8
	// block weights (the reference's gemm_impl="fp8"): FP8 checkpoint
	// weights are multiplied as stored; in training every Linear inside the
	// decoder layers runs through fp8's training engine.
	FP8 Precision = "fp8"
)

// ParsePrecision checks a precision name.
func ParsePrecision(s string) (Precision, error) {
	switch p := Precision(s); p {
	case F32, BF16, FP8:
		return p, nil
	}
	return "", fmt.Errorf("deepseekv3: precision %q is not f32, bf16 or fp8", s)
}

// Model is the full DeepSeek-V3 model.
type Model struct {
	Cfg    *Config
	Embed  *dsv3.Embedding // model.embed_tokens
	Layers []*Layer        // model.layers.N
	Norm   *dsv3.RMSNorm   // model.norm
	Head   *dsv3.Linear    // lm_head
	// MTP holds the num_nextn_predict_layers modules, stored as layers
	// num_hidden_layers and up, sharing Embed and Head.
	MTP []*mtp.Module
	// Precision is how the model multiplies (set by Load or by the
	// trainer).
	Precision Precision
}

// Options say how New builds a model.
type Options struct {
	// Train allocates float32 weights with gradients, initialised from a
	// normal distribution of standard deviation initializer_range
	// (deterministic for Seed); otherwise no projection weights are
	// allocated and a loader binds them (Load).
	Train bool
	Seed  uint64
	// MTP builds the num_nextn_predict_layers modules.
	MTP bool
	// Workers bounds the goroutines of attention kernels (0: GOMAXPROCS).
	Workers int
}

// MLAConfig maps config.json onto the attention's configuration.
func (c *Config) MLAConfig() mla.Config {
	rc := yarn.Config{Theta: c.RopeTheta, Dim: c.QKRopeHeadDim, MaxPositionEmbeddings: c.MaxPositionEmbeddings}
	if rs := c.RopeScaling; rs != nil {
		typ := rs.Type
		if typ == "" {
			typ = rs.RopeType
		}
		rc.Scaling = &yarn.Scaling{Type: typ, Factor: rs.Factor, OriginalMaxPositionEmbeddings: rs.OriginalMaxPositionEmbeddings,
			BetaFast: rs.BetaFast, BetaSlow: rs.BetaSlow, Mscale: rs.Mscale, MscaleAllDim: rs.MscaleAllDim}
	}
	return mla.Config{Hidden: c.HiddenSize, Heads: c.NumAttentionHeads, QLoraRank: c.QRank(), KVLoraRank: c.KVLoraRank,
		QKNopeHeadDim: c.QKNopeHeadDim, QKRopeHeadDim: c.QKRopeHeadDim, VHeadDim: c.VHeadDim, RMSNormEps: c.RMSNormEps, Rope: rc}
}

// MoEConfig maps config.json onto the MoE layer's configuration.
func (c *Config) MoEConfig() moe.Config {
	return moe.Config{Hidden: c.HiddenSize, Intermediate: c.MoeIntermediateSize, SharedExperts: c.NSharedExperts,
		Router: router.Config{Hidden: c.HiddenSize, Experts: c.NRoutedExperts, TopK: c.NumExpertsPerTok, Groups: c.NGroup,
			TopKGroups: c.TopkGroup, TopKMethod: c.TopkMethod, ScoringFunc: c.ScoringFunc, NormTopKProb: c.NormTopkProb,
			RoutedScalingFactor: float32(c.RoutedScalingFactor)}}
}

// New builds a model for cfg.
func New(cfg *Config, opt Options) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Cfg: cfg, Precision: F32}
	eps := float32(cfg.RMSNormEps)
	m.Embed = dsv3.NewEmbedding(cfg.VocabSize, cfg.HiddenSize, opt.Train)
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		l, err := newLayer(cfg, i, opt)
		if err != nil {
			return nil, fmt.Errorf("deepseekv3: layer %d: %w", i, err)
		}
		m.Layers = append(m.Layers, l)
	}
	m.Norm = dsv3.NewRMSNorm(cfg.HiddenSize, eps, opt.Train)
	if opt.Train {
		m.Head = dsv3.NewLinear(cfg.VocabSize, cfg.HiddenSize, true)
	} else {
		m.Head = &dsv3.Linear{}
	}
	if opt.MTP {
		for k := 0; k < cfg.NumNextnPredictLayers; k++ {
			idx := cfg.NumHiddenLayers + k
			l, err := newLayer(cfg, idx, opt)
			if err != nil {
				return nil, fmt.Errorf("deepseekv3: MTP layer %d: %w", idx, err)
			}
			mod, err := mtp.New(mtp.Config{Hidden: cfg.HiddenSize, Eps: eps}, l, opt.Train)
			if err != nil {
				return nil, err
			}
			if !opt.Train {
				mod.EhProj = &dsv3.Linear{}
			}
			m.MTP = append(m.MTP, mod)
		}
	}
	if opt.Train {
		m.initWeights(opt.Seed)
	}
	return m, nil
}

func newLayer(cfg *Config, idx int, opt Options) (*Layer, error) {
	eps := float32(cfg.RMSNormEps)
	var mopts []mla.Option
	mopts = append(mopts, mla.WithWorkers(opt.Workers))
	if opt.Train {
		mopts = append(mopts, mla.WithTraining(opt.Seed+uint64(idx)*7919), mla.WithInitStd(cfg.initStd()))
	}
	attn, err := mla.New(cfg.MLAConfig(), mopts...)
	if err != nil {
		return nil, err
	}
	l := &Layer{
		InputNorm: dsv3.NewRMSNorm(cfg.HiddenSize, eps, opt.Train),
		Attn:      attn,
		PostNorm:  dsv3.NewRMSNorm(cfg.HiddenSize, eps, opt.Train),
	}
	mode := moe.Inference
	if opt.Train {
		mode = moe.Training
	}
	if cfg.HasMoE(idx) {
		l.MoE, err = moe.New(cfg.MoEConfig(), moe.Options{Mode: mode})
	} else {
		l.Dense, err = moe.NewSwiGLU(cfg.HiddenSize, cfg.IntermediateSize, mode)
	}
	return l, err
}

func (c *Config) initStd() float64 {
	if c.InitializerRange > 0 {
		return c.InitializerRange
	}
	return 0.02
}

// initWeights draws every 2-D float32 weight outside attention (which
// initialises itself) from N(0, initializer_range²), as Hugging Face's
// DeepseekV3 _init_weights does; norms stay 1 and biases 0.
func (m *Model) initWeights(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	std := m.Cfg.initStd()
	for _, p := range m.Params() {
		if p.Value.Rows <= 1 || strings.Contains(p.Name, ".self_attn.") {
			continue
		}
		for i := 0; i < p.Value.Rows; i++ {
			row := p.Value.Row(i)
			for j := range row {
				row[j] = float32(rng.NormFloat64() * std)
			}
		}
	}
}

// Params lists every parameter with its full checkpoint name.
func (m *Model) Params() []dsv3.Param {
	var ps []dsv3.Param
	ps = append(ps, dsv3.PrefixParams("model.embed_tokens.", m.Embed.Params())...)
	for i, l := range m.Layers {
		ps = append(ps, dsv3.PrefixParams("model.layers."+strconv.Itoa(i)+".", l.Params())...)
	}
	ps = append(ps, dsv3.PrefixParams("model.norm.", m.Norm.Params())...)
	ps = append(ps, dsv3.PrefixParams("lm_head.", m.Head.Params())...)
	for k, mod := range m.MTP {
		ps = append(ps, dsv3.PrefixParams("model.layers."+strconv.Itoa(m.Cfg.NumHiddenLayers+k)+".", mod.Params())...)
	}
	return ps
}

// Shared returns the embedding and head the MTP modules share.
func (m *Model) Shared() mtp.Shared { return mtp.Shared{Embed: m.Embed, Head: m.Head} }

// Output is what Forward computes.
type Output struct {
	// Logits are [tokens, vocab_size].
	Logits dsv3.Matrix
	// Hidden is the final-norm output [tokens, hidden_size]: the depth-0
	// state of the MTP modules.
	Hidden dsv3.Matrix
	// Residual holds the residual stream after the embedding and after each
	// layer (kept only when Forward is asked to, for locating mismatches).
	Residual []dsv3.Matrix
	rec      *modelRecord
	tokens   []int32
	s        dsv3.Seq
}

type modelRecord struct {
	layers     []dsv3.Record
	norm, head dsv3.Record
}

// Forward runs the model over s.Count sequences of s.Len tokens (tokens
// holds them one after another) without a cache. With train it keeps what
// Backward needs. keepResidual records the residual stream.
func (m *Model) Forward(tokens []int32, s dsv3.Seq, train, keepResidual bool) (*Output, error) {
	if s.Count <= 0 || s.Len <= 0 || len(tokens) != s.Count*s.Len {
		return nil, fmt.Errorf("deepseekv3: %d tokens for %d sequences of %d", len(tokens), s.Count, s.Len)
	}
	if err := m.Embed.CheckIDs(tokens); err != nil {
		return nil, err
	}
	out := &Output{tokens: tokens, s: s}
	h := m.Embed.Forward(tokens)
	m.round(h)
	if keepResidual {
		out.Residual = append(out.Residual, h.Clone())
	}
	var rec *modelRecord
	if train {
		rec = &modelRecord{}
		out.rec = rec
	}
	for i, l := range m.Layers {
		y, r, err := l.Apply(h, s, train)
		if err != nil {
			return nil, fmt.Errorf("deepseekv3: layer %d: %w", i, err)
		}
		if train {
			rec.layers = append(rec.layers, r)
		}
		h = y
		if keepResidual {
			out.Residual = append(out.Residual, h.Clone())
		}
	}
	hn, nr := m.Norm.Forward(h, train)
	m.round(hn)
	lg, hr := m.Head.Forward(hn, train)
	if train {
		rec.norm, rec.head = nr, hr
	}
	out.Logits, out.Hidden = lg, hn
	return out, nil
}

func (m *Model) round(x dsv3.Matrix) {
	if m.Precision == BF16 {
		roundBF16(x)
	}
}

// Backward back-propagates dL/dlogits and dL/dhidden (the MTP loss's
// gradient with respect to the final-norm states; either may be empty)
// through the model of a training Forward.
func (m *Model) Backward(out *Output, dlogits, dhidden dsv3.Matrix) error {
	if out == nil || out.rec == nil {
		return errors.New("deepseekv3: Backward needs the output of a training Forward")
	}
	r := out.rec
	var dhn dsv3.Matrix
	if !dlogits.Empty() {
		dhn = m.Head.Backward(r.head, dlogits)
		if !dhidden.Empty() {
			addInto(dhn, dhidden)
		}
	} else {
		dhn = dhidden
	}
	dh := m.Norm.Backward(r.norm, dhn)
	for i := len(m.Layers) - 1; i >= 0; i-- {
		var err error
		if dh, err = m.Layers[i].ApplyBackward(r.layers[i], dh); err != nil {
			return fmt.Errorf("deepseekv3: layer %d backward: %w", i, err)
		}
	}
	m.Embed.Backward(out.tokens, dh)
	return nil
}

// Loss is the training objective of one batch.
type Loss struct {
	// Main is the mean next-token cross-entropy.
	Main float64
	// MTP is L_MTP = λ/D Σ CE_k (0 without MTP), and MTPDepths its CE_k.
	MTP       float64
	MTPDepths []float64
	// Balance is the sequence-wise balance loss summed over MoE layers.
	Balance float64
}

// Total returns Main + MTP + Balance.
func (l Loss) Total() float64 { return l.Main + l.MTP + l.Balance }

// TrainStep runs forward and backward for a batch of count windows of
// seqLen+1 tokens each (inputs and their next-token targets), accumulating
// gradients. lambda weights the MTP loss (0: MTP not trained); alpha is the
// sequence-wise balance loss factor of the main model's MoE layers (0: off).
func (m *Model) TrainStep(windows []int32, count, seqLen int, lambda, alpha float32) (Loss, error) {
	return m.windowsLoss(windows, count, seqLen, lambda, alpha, true)
}

// EvalWindows is TrainStep's loss without gradients.
func (m *Model) EvalWindows(windows []int32, count, seqLen int, lambda float32) (Loss, error) {
	return m.windowsLoss(windows, count, seqLen, lambda, 0, false)
}

func (m *Model) windowsLoss(windows []int32, count, seqLen int, lambda, alpha float32, train bool) (Loss, error) {
	if count <= 0 || seqLen <= 0 || len(windows) != count*(seqLen+1) {
		return Loss{}, fmt.Errorf("deepseekv3: %d tokens for %d windows of %d", len(windows), count, seqLen+1)
	}
	in := make([]int32, 0, count*seqLen)
	tg := make([]int32, 0, count*seqLen)
	for b := 0; b < count; b++ {
		w := windows[b*(seqLen+1) : (b+1)*(seqLen+1)]
		in = append(in, w[:seqLen]...)
		tg = append(tg, w[1:]...)
	}
	s := dsv3.Seq{Count: count, Len: seqLen}
	out, err := m.Forward(in, s, train, false)
	if err != nil {
		return Loss{}, err
	}
	var dl dsv3.Matrix
	if train {
		dl = dsv3.NewMatrix(out.Logits.Rows, out.Logits.Cols)
	}
	var loss Loss
	if loss.Main, err = dsv3.CrossEntropy(out.Logits, tg, dl, 1); err != nil {
		return Loss{}, err
	}
	if train && alpha > 0 {
		for i, l := range m.Layers {
			if l.MoE == nil {
				continue
			}
			b, err := l.MoE.SeqBalanceLoss(out.rec.layers[i].(*layerRecord).ffn, seqLen, alpha)
			if err != nil {
				return Loss{}, fmt.Errorf("deepseekv3: layer %d: %w", i, err)
			}
			loss.Balance += b
		}
	}
	var dh dsv3.Matrix
	if lambda > 0 && len(m.MTP) > 0 {
		// The MTP modules see the inputs and, at the end of each window,
		// the window's last target, so depth k predicts k+1 ahead.
		chain := &mtp.Chain{Modules: m.MTP, Shared: m.Shared(), Lambda: lambda}
		h := padRows(out.Hidden, count, seqLen, seqLen+1)
		res, err := chain.Forward(h, windows, dsv3.Seq{Count: count, Len: seqLen + 1}, train)
		if err != nil {
			return Loss{}, err
		}
		loss.MTP, loss.MTPDepths = res.Loss, res.CE
		if train {
			dhp, err := chain.Backward(res)
			if err != nil {
				return Loss{}, err
			}
			dh = unpadRows(dhp, count, seqLen+1, seqLen)
		}
	}
	if train {
		if err := m.Backward(out, dl, dh); err != nil {
			return Loss{}, err
		}
	}
	if math.IsNaN(loss.Total()) {
		return loss, errors.New("deepseekv3: loss is NaN")
	}
	return loss, nil
}

// padRows places blocks of n rows at the start of blocks of n2 > n rows
// (the extra rows zero: a state never used for a prediction with a target).
func padRows(x dsv3.Matrix, count, n, n2 int) dsv3.Matrix {
	out := dsv3.NewMatrix(count*n2, x.Cols)
	for b := 0; b < count; b++ {
		out.Slice(b*n2, b*n2+n).CopyFrom(x.Slice(b*n, (b+1)*n))
	}
	return out
}

// unpadRows is padRows' adjoint.
func unpadRows(x dsv3.Matrix, count, n2, n int) dsv3.Matrix {
	out := dsv3.NewMatrix(count*n, x.Cols)
	for b := 0; b < count; b++ {
		out.Slice(b*n, (b+1)*n).CopyFrom(x.Slice(b*n2, b*n2+n))
	}
	return out
}
