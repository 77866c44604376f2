package deepseekv3

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// RopeScaling is config.json's rope_scaling object.
type RopeScaling struct {
	Type                          string  `json:"type"`
	RopeType                      string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
	BetaFast                      float64 `json:"beta_fast"`
	BetaSlow                      float64 `json:"beta_slow"`
	Mscale                        float64 `json:"mscale"`
	MscaleAllDim                  float64 `json:"mscale_all_dim"`
}

// QuantizationConfig is config.json's quantization_config object (FP8
// checkpoints).
type QuantizationConfig struct {
	ActivationScheme string `json:"activation_scheme"`
	Fmt              string `json:"fmt"`
	QuantMethod      string `json:"quant_method"`
	WeightBlockSize  []int  `json:"weight_block_size"`
}

// Config is a DeepSeek-V3 config.json (Hugging Face names). Unknown fields
// are ignored; ParseConfig checks that the required ones are present and
// consistent.
type Config struct {
	Architectures         []string            `json:"architectures"`
	ModelType             string              `json:"model_type"`
	VocabSize             int                 `json:"vocab_size"`
	HiddenSize            int                 `json:"hidden_size"`
	IntermediateSize      int                 `json:"intermediate_size"`
	MoeIntermediateSize   int                 `json:"moe_intermediate_size"`
	NumHiddenLayers       int                 `json:"num_hidden_layers"`
	NumNextnPredictLayers int                 `json:"num_nextn_predict_layers"`
	NumAttentionHeads     int                 `json:"num_attention_heads"`
	NumKeyValueHeads      int                 `json:"num_key_value_heads"`
	NSharedExperts        int                 `json:"n_shared_experts"`
	NRoutedExperts        int                 `json:"n_routed_experts"`
	RoutedScalingFactor   float64             `json:"routed_scaling_factor"`
	KVLoraRank            int                 `json:"kv_lora_rank"`
	QLoraRank             *int                `json:"q_lora_rank"`
	QKRopeHeadDim         int                 `json:"qk_rope_head_dim"`
	VHeadDim              int                 `json:"v_head_dim"`
	QKNopeHeadDim         int                 `json:"qk_nope_head_dim"`
	TopkMethod            string              `json:"topk_method"`
	NGroup                int                 `json:"n_group"`
	TopkGroup             int                 `json:"topk_group"`
	NumExpertsPerTok      int                 `json:"num_experts_per_tok"`
	MoeLayerFreq          int                 `json:"moe_layer_freq"`
	FirstKDenseReplace    int                 `json:"first_k_dense_replace"`
	NormTopkProb          bool                `json:"norm_topk_prob"`
	ScoringFunc           string              `json:"scoring_func"`
	AuxLossAlpha          float64             `json:"aux_loss_alpha"`
	SeqAux                bool                `json:"seq_aux"`
	HiddenAct             string              `json:"hidden_act"`
	MaxPositionEmbeddings int                 `json:"max_position_embeddings"`
	InitializerRange      float64             `json:"initializer_range"`
	RMSNormEps            float64             `json:"rms_norm_eps"`
	UseCache              bool                `json:"use_cache"`
	PadTokenID            *int                `json:"pad_token_id"`
	BOSTokenID            *int                `json:"bos_token_id"`
	EOSTokenID            *int                `json:"eos_token_id"`
	PretrainingTP         int                 `json:"pretraining_tp"`
	TieWordEmbeddings     bool                `json:"tie_word_embeddings"`
	RopeTheta             float64             `json:"rope_theta"`
	RopeScaling           *RopeScaling        `json:"rope_scaling"`
	AttentionBias         bool                `json:"attention_bias"`
	AttentionDropout      float64             `json:"attention_dropout"`
	EPSize                int                 `json:"ep_size"`
	TorchDType            string              `json:"torch_dtype"`
	TransformersVersion   string              `json:"transformers_version"`
	QuantizationConfig    *QuantizationConfig `json:"quantization_config"`
}

// LoadConfig reads and validates a config.json.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("deepseekv3: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and validates config.json bytes. Fields that the
// model cannot do without are required; errors name the field.
func ParseConfig(b []byte) (*Config, error) {
	var present map[string]json.RawMessage
	if err := json.Unmarshal(b, &present); err != nil {
		return nil, fmt.Errorf("deepseekv3: config.json is not a JSON object: %v", err)
	}
	for _, f := range []string{"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
		"num_attention_heads", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
		"rms_norm_eps", "rope_theta", "max_position_embeddings"} {
		if v, ok := present[f]; !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return nil, fmt.Errorf("deepseekv3: config.json: required field %q is missing", f)
		}
	}
	c := &Config{MoeLayerFreq: 1, NormTopkProb: true, RoutedScalingFactor: 1, ScoringFunc: "softmax", TopkMethod: "greedy", NGroup: 1, TopkGroup: 1}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("deepseekv3: config.json: %v", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// HasMoE reports whether layer i is a MoE layer (else a dense MLP).
func (c *Config) HasMoE(i int) bool {
	return c.NRoutedExperts > 0 && i >= c.FirstKDenseReplace && i%max(c.MoeLayerFreq, 1) == 0
}

// QRank returns q_lora_rank, 0 when null (a direct q_proj).
func (c *Config) QRank() int {
	if c.QLoraRank == nil {
		return 0
	}
	return *c.QLoraRank
}

// Validate checks that the fields are present and consistent.
func (c *Config) Validate() error {
	pos := func(name string, v int) error {
		if v <= 0 {
			return fmt.Errorf("deepseekv3: config.json: %s = %d must be positive", name, v)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"kv_lora_rank", c.KVLoraRank}, {"qk_rope_head_dim", c.QKRopeHeadDim},
		{"qk_nope_head_dim", c.QKNopeHeadDim}, {"v_head_dim", c.VHeadDim},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	} {
		if err := pos(f.name, f.v); err != nil {
			return err
		}
	}
	if c.QLoraRank != nil && *c.QLoraRank < 0 {
		return fmt.Errorf("deepseekv3: config.json: q_lora_rank = %d must be null or >= 0", *c.QLoraRank)
	}
	if c.RMSNormEps <= 0 {
		return fmt.Errorf("deepseekv3: config.json: rms_norm_eps = %g must be positive", c.RMSNormEps)
	}
	if c.RopeTheta <= 0 {
		return fmt.Errorf("deepseekv3: config.json: rope_theta = %g must be positive", c.RopeTheta)
	}
	if c.QKRopeHeadDim%2 != 0 {
		return fmt.Errorf("deepseekv3: config.json: qk_rope_head_dim = %d must be even", c.QKRopeHeadDim)
	}
	if c.FirstKDenseReplace < 0 || c.NumNextnPredictLayers < 0 {
		return fmt.Errorf("deepseekv3: config.json: first_k_dense_replace (%d) and num_nextn_predict_layers (%d) must be >= 0", c.FirstKDenseReplace, c.NumNextnPredictLayers)
	}
	if c.HiddenAct != "" && c.HiddenAct != "silu" {
		return fmt.Errorf("deepseekv3: config.json: hidden_act %q is not supported (only silu)", c.HiddenAct)
	}
	if c.NRoutedExperts > 0 {
		for _, f := range []struct {
			name string
			v    int
		}{{"moe_intermediate_size", c.MoeIntermediateSize}, {"num_experts_per_tok", c.NumExpertsPerTok}, {"n_group", c.NGroup}, {"topk_group", c.TopkGroup}} {
			if err := pos(f.name, f.v); err != nil {
				return err
			}
		}
		if c.NRoutedExperts%c.NGroup != 0 {
			return fmt.Errorf("deepseekv3: config.json: n_group = %d does not divide n_routed_experts = %d", c.NGroup, c.NRoutedExperts)
		}
		if c.TopkGroup > c.NGroup {
			return fmt.Errorf("deepseekv3: config.json: topk_group = %d exceeds n_group = %d", c.TopkGroup, c.NGroup)
		}
		if c.NumExpertsPerTok > c.TopkGroup*c.NRoutedExperts/c.NGroup {
			return fmt.Errorf("deepseekv3: config.json: num_experts_per_tok = %d exceeds the %d experts of topk_group = %d groups", c.NumExpertsPerTok, c.TopkGroup*c.NRoutedExperts/c.NGroup, c.TopkGroup)
		}
		if c.ScoringFunc != "sigmoid" && c.ScoringFunc != "softmax" {
			return fmt.Errorf("deepseekv3: config.json: scoring_func %q is not sigmoid or softmax", c.ScoringFunc)
		}
	}
	if rs := c.RopeScaling; rs != nil {
		typ := rs.Type
		if typ == "" {
			typ = rs.RopeType
		}
		if typ != "yarn" {
			return fmt.Errorf("deepseekv3: config.json: rope_scaling.type %q is not supported (only yarn)", typ)
		}
		if rs.Factor < 1 {
			return fmt.Errorf("deepseekv3: config.json: rope_scaling.factor = %g must be >= 1", rs.Factor)
		}
		if rs.OriginalMaxPositionEmbeddings <= 0 {
			return fmt.Errorf("deepseekv3: config.json: rope_scaling.original_max_position_embeddings = %d must be positive", rs.OriginalMaxPositionEmbeddings)
		}
	}
	if q := c.QuantizationConfig; q != nil {
		if q.QuantMethod != "fp8" || (q.Fmt != "" && q.Fmt != "e4m3") {
			return fmt.Errorf("deepseekv3: config.json: quantization_config %s/%s is not supported (only fp8 e4m3)", q.QuantMethod, q.Fmt)
		}
		if len(q.WeightBlockSize) != 0 && (len(q.WeightBlockSize) != 2 || q.WeightBlockSize[0] != 128 || q.WeightBlockSize[1] != 128) {
			return fmt.Errorf("deepseekv3: config.json: quantization_config.weight_block_size %v is not [128, 128]", q.WeightBlockSize)
		}
	}
	return nil
}
