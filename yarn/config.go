package yarn

import (
	"fmt"
	"math"
)

// Scaling is config.json's rope_scaling object. DeepSeek-V3 671B uses
// {type yarn, factor 40, original_max_position_embeddings 4096, beta_fast
// 32, beta_slow 1, mscale 1, mscale_all_dim 1}.
type Scaling struct {
	// Type is rope_scaling.type; only "yarn" is supported.
	Type string
	// Factor is rope_scaling.factor, the context extension s (>= 1).
	Factor float64
	// OriginalMaxPositionEmbeddings is
	// rope_scaling.original_max_position_embeddings, the pre-training
	// context length L.
	OriginalMaxPositionEmbeddings int
	// BetaFast is rope_scaling.beta_fast: pairs turning more than BetaFast
	// times over L keep their frequency.
	BetaFast float64
	// BetaSlow is rope_scaling.beta_slow (< BetaFast): pairs turning fewer
	// than BetaSlow times over L are fully interpolated (divided by Factor).
	BetaSlow float64
	// Mscale is rope_scaling.mscale (m in mscale(s, m)); 0 when absent.
	Mscale float64
	// MscaleAllDim is rope_scaling.mscale_all_dim, the m of the softmax-scale
	// correction; 0 when absent (no correction).
	MscaleAllDim float64
}

// Config describes the rotary embedding of one attention: the config.json
// fields in brackets.
type Config struct {
	// Theta is the frequency base θ [rope_theta], 10000 in DeepSeek-V3.
	Theta float64
	// Dim is the rotary dimension d [qk_rope_head_dim], even.
	Dim int
	// MaxPositionEmbeddings [max_position_embeddings] decides whether YaRN
	// is on (when it exceeds the original length). Tables may still be
	// built for any position. 0 is allowed only without Scaling.
	MaxPositionEmbeddings int
	// Scaling is [rope_scaling]; nil means plain RoPE.
	Scaling *Scaling
}

// DeepSeekV3 returns the rotary configuration of the DeepSeek-V3 671B
// checkpoint's config.json.
func DeepSeekV3() Config {
	return Config{
		Theta:                 10000,
		Dim:                   64,
		MaxPositionEmbeddings: 163840,
		Scaling: &Scaling{
			Type:                          "yarn",
			Factor:                        40,
			OriginalMaxPositionEmbeddings: 4096,
			BetaFast:                      32,
			BetaSlow:                      1,
			Mscale:                        1,
			MscaleAllDim:                  1,
		},
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Validate returns an error naming the config.json field of the first bad
// value.
func (c Config) Validate() error {
	if c.Dim <= 0 || c.Dim%2 != 0 {
		return fmt.Errorf("yarn: qk_rope_head_dim = %d, want a positive even number", c.Dim)
	}
	if !finite(c.Theta) || c.Theta <= 1 {
		return fmt.Errorf("yarn: rope_theta = %v, want a finite value > 1", c.Theta)
	}
	if c.MaxPositionEmbeddings < 0 {
		return fmt.Errorf("yarn: max_position_embeddings = %d, want >= 0", c.MaxPositionEmbeddings)
	}
	s := c.Scaling
	if s == nil {
		return nil
	}
	if s.Type != "yarn" {
		return fmt.Errorf("yarn: rope_scaling.type = %q is not supported, want \"yarn\"", s.Type)
	}
	if c.MaxPositionEmbeddings == 0 {
		return fmt.Errorf("yarn: max_position_embeddings = 0 with rope_scaling, want the extended context length")
	}
	if !finite(s.Factor) || s.Factor < 1 {
		return fmt.Errorf("yarn: rope_scaling.factor = %v, want a finite value >= 1", s.Factor)
	}
	if s.OriginalMaxPositionEmbeddings <= 0 {
		return fmt.Errorf("yarn: rope_scaling.original_max_position_embeddings = %d, want > 0", s.OriginalMaxPositionEmbeddings)
	}
	if !finite(s.BetaSlow) || s.BetaSlow <= 0 {
		return fmt.Errorf("yarn: rope_scaling.beta_slow = %v, want a finite value > 0", s.BetaSlow)
	}
	if !finite(s.BetaFast) || s.BetaFast <= s.BetaSlow {
		return fmt.Errorf("yarn: rope_scaling.beta_fast = %v, want a finite value > beta_slow = %v", s.BetaFast, s.BetaSlow)
	}
	if !finite(s.Mscale) || s.Mscale < 0 {
		return fmt.Errorf("yarn: rope_scaling.mscale = %v, want a finite value >= 0", s.Mscale)
	}
	if !finite(s.MscaleAllDim) || s.MscaleAllDim < 0 {
		return fmt.Errorf("yarn: rope_scaling.mscale_all_dim = %v, want a finite value >= 0", s.MscaleAllDim)
	}
	return nil
}

// Mscale returns YaRN's attention temperature correction
// 0.1·m·ln(factor) + 1, or 1 when factor <= 1.
func Mscale(factor, m float64) float64 {
	if factor <= 1 {
		return 1
	}
	return 0.1*m*math.Log(factor) + 1
}
