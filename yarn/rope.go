package yarn

import (
	"fmt"
	"math"
)

// RoPE is a validated rotary embedding: its frequencies, YaRN correction
// range and ramp, attention scale and table magnitude. It is immutable and
// safe for concurrent use.
type RoPE struct {
	cfg       Config
	active    bool
	low, high int
	ramp      []float64
	freq      []float64
	mag       float64
}

// New validates c and computes its frequencies.
func New(c Config) (*RoPE, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Scaling != nil {
		s := *c.Scaling
		c.Scaling = &s // keep our own copy
	}
	r := &RoPE{cfg: c, mag: 1}
	half := c.Dim / 2
	d := float64(c.Dim)
	r.freq = make([]float64, half)
	for i := range r.freq {
		r.freq[i] = 1 / math.Pow(c.Theta, float64(2*i)/d)
	}
	s := c.Scaling
	r.active = s != nil && c.MaxPositionEmbeddings > s.OriginalMaxPositionEmbeddings
	if s == nil {
		return r, nil
	}
	// The correction range and ramp are defined whenever rope_scaling is
	// given; they change the frequencies only when YaRN is active.
	corr := func(rot float64) float64 {
		return d * math.Log(float64(s.OriginalMaxPositionEmbeddings)/(rot*2*math.Pi)) / (2 * math.Log(c.Theta))
	}
	r.low = max(int(math.Floor(corr(s.BetaFast))), 0)
	r.high = min(int(math.Ceil(corr(s.BetaSlow))), c.Dim-1)
	lo, hi := float64(r.low), float64(r.high)
	if r.low == r.high {
		hi += 0.001
	}
	r.ramp = make([]float64, half)
	for i := range r.ramp {
		r.ramp[i] = min(max((float64(i)-lo)/(hi-lo), 0), 1)
	}
	if !r.active {
		return r, nil
	}
	for i, f := range r.freq {
		g := r.ramp[i]
		r.freq[i] = f*(1-g) + f/s.Factor*g
	}
	r.mag = Mscale(s.Factor, s.Mscale) / Mscale(s.Factor, s.MscaleAllDim)
	return r, nil
}

// Config returns the configuration r was built from.
func (r *RoPE) Config() Config {
	c := r.cfg
	if c.Scaling != nil {
		s := *c.Scaling
		c.Scaling = &s
	}
	return c
}

// Dim returns the rotary dimension d.
func (r *RoPE) Dim() int { return r.cfg.Dim }

// YaRN reports whether the YaRN correction is on: rope_scaling is given and
// max_position_embeddings > original_max_position_embeddings.
func (r *RoPE) YaRN() bool { return r.active }

// CorrectionRange returns the pair indices (low, high) between which the
// ramp rises from 0 to 1, clamped to [0, d−1]. Both are 0 without
// rope_scaling.
func (r *RoPE) CorrectionRange() (low, high int) { return r.low, r.high }

// Ramp returns γ_i, the weight of the interpolated (divided by factor)
// frequency of pair i: 0 keeps the original frequency, 1 divides it fully.
// It is nil without rope_scaling.
func (r *RoPE) Ramp() []float64 {
	if r.ramp == nil {
		return nil
	}
	return append([]float64(nil), r.ramp...)
}

// Frequencies returns ω_i, the angle per position of pair i (radians),
// with the YaRN blend applied when it is on.
func (r *RoPE) Frequencies() []float64 { return append([]float64(nil), r.freq...) }

// Magnitude returns the factor by which the cos and sin tables are scaled:
// mscale(s, mscale)/mscale(s, mscale_all_dim) with YaRN on, as Hugging Face
// transformers does, else 1. It is 1 for DeepSeek-V3.
func (r *RoPE) Magnitude() float64 { return r.mag }

// SoftmaxScale returns the attention softmax scale for query-key vectors of
// qkHeadDim values (qk_nope_head_dim + qk_rope_head_dim):
// qkHeadDim^(−1/2), times mscale(factor, mscale_all_dim)² when YaRN is on.
// It returns NaN for qkHeadDim <= 0.
func (r *RoPE) SoftmaxScale(qkHeadDim int) float64 {
	if qkHeadDim <= 0 {
		return math.NaN()
	}
	scale := 1 / math.Sqrt(float64(qkHeadDim))
	if r.active && r.cfg.Scaling.MscaleAllDim != 0 {
		m := Mscale(r.cfg.Scaling.Factor, r.cfg.Scaling.MscaleAllDim)
		scale *= m * m
	}
	return scale
}

// Table holds cos and sin of every pair's angle for the positions
// [Start, Start+Len): Cos[(p−Start)·Half + i] = Magnitude·cos(p·ω_i), with
// the angle formed in float64. It is immutable once built.
type Table struct {
	Start, Len int
	// Half is d/2, the number of pairs.
	Half int
	// Cos and Sin are Len×Half, row-major.
	Cos, Sin []float32
	// mag is the Magnitude the values carry.
	mag float64
}

// Table returns the cos/sin table for the n positions start … start+n−1.
func (r *RoPE) Table(start, n int) (*Table, error) {
	if start < 0 {
		return nil, fmt.Errorf("yarn: table start position %d is negative", start)
	}
	if n < 0 {
		return nil, fmt.Errorf("yarn: table length %d is negative", n)
	}
	if start > math.MaxInt32 || n > math.MaxInt32-start {
		return nil, fmt.Errorf("yarn: table positions [%d, %d) exceed %d", start, start+n, math.MaxInt32)
	}
	half := r.cfg.Dim / 2
	t := &Table{Start: start, Len: n, Half: half, Cos: make([]float32, n*half), Sin: make([]float32, n*half), mag: r.mag}
	for k := 0; k < n; k++ {
		p := float64(start + k)
		c, s := t.Cos[k*half:(k+1)*half], t.Sin[k*half:(k+1)*half]
		for i, f := range r.freq {
			sn, cs := math.Sincos(p * f)
			c[i] = float32(r.mag * cs)
			s[i] = float32(r.mag * sn)
		}
	}
	return t, nil
}

// Dim returns the rotary dimension 2·Half.
func (t *Table) Dim() int { return 2 * t.Half }

// Magnitude returns the factor the table's cos and sin carry.
func (t *Table) Magnitude() float64 { return t.mag }

// At returns the cos and sin rows of position p (views, not copies); p must
// lie in [Start, Start+Len).
func (t *Table) At(p int) (cos, sin []float32) {
	k := p - t.Start
	return t.Cos[k*t.Half : (k+1)*t.Half], t.Sin[k*t.Half : (k+1)*t.Half]
}
