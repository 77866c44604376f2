package deepseekv3

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3/internal/testutil"
)

func tinyConfigJSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	testutil.ReadJSON(t, testutil.Fixture(t, "tiny", "config.json"), &m)
	return m
}

func TestLoadTinyConfig(t *testing.T) {
	c, err := LoadConfig(testutil.Fixture(t, "tiny", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HiddenSize != 256 || c.NumHiddenLayers != 3 || c.FirstKDenseReplace != 1 || c.QRank() != 128 ||
		c.NRoutedExperts != 16 || c.NumExpertsPerTok != 4 || c.NGroup != 4 || c.TopkGroup != 2 ||
		c.RoutedScalingFactor != 2.5 || c.ScoringFunc != "sigmoid" || c.TopkMethod != "noaux_tc" ||
		c.RopeScaling == nil || c.RopeScaling.Factor != 4 || c.RopeScaling.OriginalMaxPositionEmbeddings != 128 ||
		c.NumNextnPredictLayers != 1 || c.QuantizationConfig == nil || c.RMSNormEps != 1e-6 {
		t.Fatalf("tiny config read wrongly: %+v", c)
	}
	if c.HasMoE(0) || !c.HasMoE(1) || !c.HasMoE(2) {
		t.Error("dense/MoE layer split wrong")
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"missing hidden_size", func(m map[string]any) { delete(m, "hidden_size") }, "hidden_size"},
		{"null vocab_size", func(m map[string]any) { m["vocab_size"] = nil }, "vocab_size"},
		{"zero heads", func(m map[string]any) { m["num_attention_heads"] = 0 }, "num_attention_heads"},
		{"n_group not dividing", func(m map[string]any) { m["n_group"] = 3 }, "n_group"},
		{"topk_group above n_group", func(m map[string]any) { m["topk_group"] = 5 }, "topk_group"},
		{"top-k too large", func(m map[string]any) { m["num_experts_per_tok"] = 9 }, "num_experts_per_tok"},
		{"odd rope dim", func(m map[string]any) { m["qk_rope_head_dim"] = 15 }, "qk_rope_head_dim"},
		{"unknown scoring", func(m map[string]any) { m["scoring_func"] = "relu" }, "scoring_func"},
		{"bad rope type", func(m map[string]any) { m["rope_scaling"].(map[string]any)["type"] = "ntk" }, "rope_scaling.type"},
		{"factor below 1", func(m map[string]any) { m["rope_scaling"].(map[string]any)["factor"] = 0.5 }, "rope_scaling.factor"},
		{"wrong type", func(m map[string]any) { m["hidden_size"] = "big" }, "hidden_size"},
		{"bad block size", func(m map[string]any) {
			m["quantization_config"].(map[string]any)["weight_block_size"] = []int{64, 64}
		}, "weight_block_size"},
		{"gelu", func(m map[string]any) { m["hidden_act"] = "gelu" }, "hidden_act"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyConfigJSON(t)
			tc.edit(m)
			b, _ := json.Marshal(m)
			_, err := ParseConfig(b)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestConfigIgnoresUnknownFields(t *testing.T) {
	m := tinyConfigJSON(t)
	m["some_future_field"] = map[string]any{"x": 1}
	b, _ := json.Marshal(m)
	if _, err := ParseConfig(b); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig([]byte("[1,2]")); err == nil {
		t.Fatal("non-object accepted")
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"hidden_size": 8}`))
	f.Add([]byte(`{"vocab_size":4,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":1,"kv_lora_rank":4,"qk_rope_head_dim":2,"qk_nope_head_dim":2,"v_head_dim":2,"rms_norm_eps":1e-6,"rope_theta":10000,"max_position_embeddings":16,"n_routed_experts":4,"n_group":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err == nil && (c.HiddenSize <= 0 || c.NumAttentionHeads <= 0) {
			t.Fatalf("invalid config accepted: %+v", c)
		}
	})
}
