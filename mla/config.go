package mla

import (
	"fmt"
	"math"

	"github.com/dsv3go/dsv3/yarn"
)

// Config is the shape of one MLA layer; config.json names in brackets.
type Config struct {
	// Hidden is d, the model width [hidden_size].
	Hidden int
	// Heads is n_h [num_attention_heads].
	Heads int
	// QLoraRank is d'_c, the query latent width [q_lora_rank]; 0 (null in
	// config.json) means a direct q_proj.
	QLoraRank int
	// KVLoraRank is d_c, the cached key-value latent width [kv_lora_rank].
	KVLoraRank int
	// QKNopeHeadDim is d_h, the per-head query/key width without position
	// [qk_nope_head_dim].
	QKNopeHeadDim int
	// QKRopeHeadDim is d^R_h, the decoupled RoPE query/key width
	// [qk_rope_head_dim].
	QKRopeHeadDim int
	// VHeadDim is the per-head value width [v_head_dim].
	VHeadDim int
	// RMSNormEps is the epsilon of q_a_layernorm and kv_a_layernorm
	// [rms_norm_eps].
	RMSNormEps float64
	// Rope is the rotary embedding [rope_theta, max_position_embeddings,
	// rope_scaling]; Rope.Dim must be QKRopeHeadDim (0 is filled in).
	Rope yarn.Config
	// SoftmaxScale, when not 0, overrides the attention scale that yarn
	// derives (qk_head_dim^(−1/2) with YaRN's mscale²).
	SoftmaxScale float64
}

// DeepSeekV3 returns the attention configuration of the DeepSeek-V3 671B
// checkpoint's config.json.
func DeepSeekV3() Config {
	return Config{
		Hidden:        7168,
		Heads:         128,
		QLoraRank:     1536,
		KVLoraRank:    512,
		QKNopeHeadDim: 128,
		QKRopeHeadDim: 64,
		VHeadDim:      128,
		RMSNormEps:    1e-6,
		Rope:          yarn.DeepSeekV3(),
	}
}

// QKHeadDim returns qk_nope_head_dim + qk_rope_head_dim, the width over
// which queries and keys are compared.
func (c Config) QKHeadDim() int { return c.QKNopeHeadDim + c.QKRopeHeadDim }

// Validate returns an error naming the config.json field of the first bad
// value.
func (c Config) Validate() error {
	pos := []struct {
		name string
		v    int
	}{
		{"hidden_size", c.Hidden},
		{"num_attention_heads", c.Heads},
		{"kv_lora_rank", c.KVLoraRank},
		{"qk_nope_head_dim", c.QKNopeHeadDim},
		{"qk_rope_head_dim", c.QKRopeHeadDim},
		{"v_head_dim", c.VHeadDim},
	}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("mla: %s = %d, want > 0", p.name, p.v)
		}
	}
	if c.QLoraRank < 0 {
		return fmt.Errorf("mla: q_lora_rank = %d, want >= 0 (0 for a direct q_proj)", c.QLoraRank)
	}
	if c.RMSNormEps <= 0 || math.IsNaN(c.RMSNormEps) || math.IsInf(c.RMSNormEps, 0) {
		return fmt.Errorf("mla: rms_norm_eps = %v, want a finite value > 0", c.RMSNormEps)
	}
	if c.Rope.Dim != 0 && c.Rope.Dim != c.QKRopeHeadDim {
		return fmt.Errorf("mla: rotary dimension %d differs from qk_rope_head_dim = %d", c.Rope.Dim, c.QKRopeHeadDim)
	}
	r := c.Rope
	r.Dim = c.QKRopeHeadDim
	if err := r.Validate(); err != nil {
		return fmt.Errorf("mla: %w", err)
	}
	if c.SoftmaxScale < 0 || math.IsNaN(c.SoftmaxScale) || math.IsInf(c.SoftmaxScale, 0) {
		return fmt.Errorf("mla: softmax scale override = %v, want 0 or a finite value > 0", c.SoftmaxScale)
	}
	return nil
}

// CacheValuesPerToken returns how many values the compressed cache keeps
// per token and layer: kv_lora_rank + qk_rope_head_dim (576 for
// DeepSeek-V3, against 2·128·128 = 32768 for multi-head attention with the
// same heads).
func CacheValuesPerToken(c Config) int { return c.KVLoraRank + c.QKRopeHeadDim }

// CacheBytesPerToken returns the bytes per token and layer of this
// package's Cache, which stores float32: 4·CacheValuesPerToken (2304 for
// DeepSeek-V3; the reference's BF16 cache takes half).
func CacheBytesPerToken(c Config) int { return 4 * CacheValuesPerToken(c) }
