package deepseekv3

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3/internal/safetensors"
	"github.com/dsv3go/dsv3/internal/testutil"
)

// tinyTensors returns copies of every tensor of the tiny checkpoint.
func tinyTensors(t *testing.T) []*safetensors.Tensor {
	t.Helper()
	set := testutil.Checkpoint(t)
	var ts []*safetensors.Tensor
	for _, n := range set.Names() {
		tn, err := set.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		c := *tn
		c.Shape = append([]int(nil), tn.Shape...)
		c.Data = append([]byte(nil), tn.Data...)
		ts = append(ts, &c)
	}
	return ts
}

// writeCheckpoint writes a checkpoint directory with the tiny config
// (edited by editCfg) and the given tensors, sharded in two files.
func writeCheckpoint(t *testing.T, ts []*safetensors.Tensor, editCfg func(map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	testutil.ReadJSON(t, testutil.Fixture(t, "tiny", "config.json"), &cfg)
	if editCfg != nil {
		editCfg(cfg)
	}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteSharded(dir, ts, 4<<20, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func without(ts []*safetensors.Tensor, name string) []*safetensors.Tensor {
	var out []*safetensors.Tensor
	for _, x := range ts {
		if x.Name != name {
			out = append(out, x)
		}
	}
	return out
}

func edit(ts []*safetensors.Tensor, name string, f func(*safetensors.Tensor)) []*safetensors.Tensor {
	for _, x := range ts {
		if x.Name == name {
			f(x)
		}
	}
	return ts
}

func TestLoadRewrittenCheckpoint(t *testing.T) {
	dir := writeCheckpoint(t, tinyTensors(t), nil)
	ck, err := Load(dir, LoadOptions{MTP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	// The MTP layer's copies of the shared embedding and head are the
	// only tensors no parameter takes.
	want := []string{"model.layers.3.embed_tokens.weight", "model.layers.3.shared_head.head.weight"}
	if strings.Join(ck.Unused, ",") != strings.Join(want, ",") {
		t.Errorf("unused tensors %v, want %v", ck.Unused, want)
	}
}

func TestLoadBadCheckpoints(t *testing.T) {
	q := "model.layers.0.self_attn.q_a_proj.weight"
	norm := "model.layers.1.input_layernorm.weight"
	cases := []struct {
		name string
		dir  func(t *testing.T) string
		want []string
	}{
		{"missing tensor", func(t *testing.T) string {
			return writeCheckpoint(t, without(tinyTensors(t), q), nil)
		}, []string{q}},
		{"missing scale_inv", func(t *testing.T) string {
			return writeCheckpoint(t, without(tinyTensors(t), q+"_scale_inv"), nil)
		}, []string{q, "scale_inv"}},
		{"wrong shape", func(t *testing.T) string {
			return writeCheckpoint(t, edit(tinyTensors(t), norm, func(x *safetensors.Tensor) {
				x.Shape = []int{128}
				x.Data = x.Data[:256]
			}), nil)
		}, []string{norm, "shape"}},
		{"wrong dtype", func(t *testing.T) string {
			return writeCheckpoint(t, edit(tinyTensors(t), q, func(x *safetensors.Tensor) {
				x.DType = safetensors.I8
			}), nil)
		}, []string{q, "I8"}},
		{"truncated shard", func(t *testing.T) string {
			dir := writeCheckpoint(t, tinyTensors(t), nil)
			shards, _ := filepath.Glob(filepath.Join(dir, "model-*.safetensors"))
			st, _ := os.Stat(shards[0])
			if err := os.Truncate(shards[0], st.Size()-100); err != nil {
				t.Fatal(err)
			}
			return dir
		}, []string{filepath.Base("model-"), "safetensors"}},
		{"index names a missing file", func(t *testing.T) string {
			dir := writeCheckpoint(t, tinyTensors(t), nil)
			shards, _ := filepath.Glob(filepath.Join(dir, "model-*.safetensors"))
			os.Remove(shards[len(shards)-1])
			return dir
		}, []string{filepath.Base("model-")}},
		{"config missing a field", func(t *testing.T) string {
			return writeCheckpoint(t, tinyTensors(t), func(m map[string]any) { delete(m, "kv_lora_rank") })
		}, []string{"kv_lora_rank"}},
		{"config inconsistent", func(t *testing.T) string {
			return writeCheckpoint(t, tinyTensors(t), func(m map[string]any) { m["hidden_size"] = 128 })
		}, []string{"shape"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ck, err := Load(tc.dir(t), LoadOptions{MTP: true, Precision: FP8})
			if err == nil {
				ck.Close()
				t.Fatal("bad checkpoint loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := Load(t.TempDir(), LoadOptions{}); err == nil {
		t.Error("empty directory loaded")
	}
	if _, err := Load(testutil.Fixture(t, "tiny"), LoadOptions{Precision: "fp4"}); err == nil {
		t.Error("unknown precision accepted")
	}
}
