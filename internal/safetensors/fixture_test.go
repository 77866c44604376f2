package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/safetensors"
	"github.com/dsv3go/dsv3/internal/testutil"
)

type spec struct {
	dtype safetensors.DType
	shape []int
}

// tinyLayout is the tensor list the tiny fixture must hold, derived from its
// config.json (hidden 256, 4 heads, q_lora_rank 128, kv_lora_rank 128,
// qk_nope 32, qk_rope 16, v 32, intermediate 512, 16 experts of 128, vocab
// 512, 3 layers with the first dense, MTP layer 3) and the README: decoder
// Linear weights F8_E4M3 with F32 [ceil(out/128), ceil(in/128)] scales,
// embeddings, norms, router weight and heads BF16, router bias F32.
func tinyLayout() map[string]spec {
	m := map[string]spec{}
	bf16 := func(name string, shape ...int) { m[name] = spec{safetensors.BF16, shape} }
	fp8 := func(name string, out, in int) {
		m[name+".weight"] = spec{safetensors.F8E4M3, []int{out, in}}
		m[name+".weight_scale_inv"] = spec{safetensors.F32, []int{(out + 127) / 128, (in + 127) / 128}}
	}
	const hidden, vocab = 256, 512
	bf16("model.embed_tokens.weight", vocab, hidden)
	bf16("model.norm.weight", hidden)
	bf16("lm_head.weight", vocab, hidden)
	for l := 0; l <= 3; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		bf16(p+"input_layernorm.weight", hidden)
		bf16(p+"post_attention_layernorm.weight", hidden)
		fp8(p+"self_attn.q_a_proj", 128, hidden)
		bf16(p+"self_attn.q_a_layernorm.weight", 128)
		fp8(p+"self_attn.q_b_proj", 4*(32+16), 128)
		fp8(p+"self_attn.kv_a_proj_with_mqa", 128+16, hidden)
		bf16(p+"self_attn.kv_a_layernorm.weight", 128)
		fp8(p+"self_attn.kv_b_proj", 4*(32+32), 128)
		fp8(p+"self_attn.o_proj", hidden, 4*32)
		if l == 0 {
			fp8(p+"mlp.gate_proj", 512, hidden)
			fp8(p+"mlp.up_proj", 512, hidden)
			fp8(p+"mlp.down_proj", hidden, 512)
			continue
		}
		bf16(p+"mlp.gate.weight", 16, hidden)
		m[p+"mlp.gate.e_score_correction_bias"] = spec{safetensors.F32, []int{16}}
		for e := -1; e < 16; e++ {
			q := p + "mlp.shared_experts."
			if e >= 0 {
				q = fmt.Sprintf("%smlp.experts.%d.", p, e)
			}
			fp8(q+"gate_proj", 128, hidden)
			fp8(q+"up_proj", 128, hidden)
			fp8(q+"down_proj", hidden, 128)
		}
	}
	bf16("model.layers.3.enorm.weight", hidden)
	bf16("model.layers.3.hnorm.weight", hidden)
	bf16("model.layers.3.eh_proj.weight", hidden, 2*hidden)
	bf16("model.layers.3.embed_tokens.weight", vocab, hidden)
	bf16("model.layers.3.shared_head.norm.weight", hidden)
	bf16("model.layers.3.shared_head.head.weight", vocab, hidden)
	return m
}

// rawHeader parses a safetensors file with nothing but encoding/json.
func rawHeader(t *testing.T, b []byte) (map[string]struct {
	DType   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Offsets [2]int `json:"data_offsets"`
}, []byte) {
	t.Helper()
	n := binary.LittleEndian.Uint64(b)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		t.Fatal(err)
	}
	delete(raw, "__metadata__")
	out := map[string]struct {
		DType   string `json:"dtype"`
		Shape   []int  `json:"shape"`
		Offsets [2]int `json:"data_offsets"`
	}{}
	for k, v := range raw {
		e := out[k]
		if err := json.Unmarshal(v, &e); err != nil {
			t.Fatal(err)
		}
		out[k] = e
	}
	return out, b[8+n:]
}

func TestTinyFixture(t *testing.T) {
	set := testutil.Checkpoint(t) // through model.safetensors.index.json
	dir := testutil.Fixture(t, "tiny")
	raw, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	hdr, body := rawHeader(t, raw)
	var ix struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	testutil.ReadJSON(t, filepath.Join(dir, safetensors.IndexName), &ix)

	layout := tinyLayout()
	names := set.Names()
	if !sort.StringsAreSorted(names) {
		t.Error("Names is not sorted")
	}
	if len(names) != len(layout) || len(names) != len(hdr) || len(names) != len(ix.WeightMap) {
		t.Fatalf("%d names; config implies %d, the header has %d, the index %d", len(names), len(layout), len(hdr), len(ix.WeightMap))
	}
	for _, n := range names {
		want, ok := layout[n]
		if !ok {
			t.Errorf("unexpected tensor %q", n)
			continue
		}
		tn, err := set.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		h := hdr[n]
		if tn.DType != want.dtype || fmt.Sprint(tn.Shape) != fmt.Sprint(want.shape) {
			t.Errorf("%s: %s %v, want %s %v", n, tn.DType, tn.Shape, want.dtype, want.shape)
		}
		if string(tn.DType) != h.DType || fmt.Sprint(tn.Shape) != fmt.Sprint(h.Shape) {
			t.Errorf("%s: %s %v, header says %s %v", n, tn.DType, tn.Shape, h.DType, h.Shape)
		}
		if !bytes.Equal(tn.Bytes(), body[h.Offsets[0]:h.Offsets[1]]) {
			t.Errorf("%s: bytes differ from the file's [%d, %d)", n, h.Offsets[0], h.Offsets[1])
		}
	}
	kv, err := set.Tensor("model.layers.0.self_attn.kv_a_proj_with_mqa.weight")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := set.Tensor("model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv")
	if err != nil {
		t.Fatal(err)
	}
	if kv.DType != safetensors.F8E4M3 || fmt.Sprint(kv.Shape) != "[144 256]" || len(kv.Data) != 144*256 ||
		sc.DType != safetensors.F32 || fmt.Sprint(sc.Shape) != "[2 2]" {
		t.Errorf("kv_a_proj_with_mqa: %s %v + %s %v", kv.DType, kv.Shape, sc.DType, sc.Shape)
	}

	// Float32s agrees with testutil's independent decoder on F32 and BF16,
	// and refuses FP8.
	for _, n := range []string{"model.norm.weight", "model.embed_tokens.weight", "model.layers.1.mlp.gate.e_score_correction_bias", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv"} {
		tn, _ := set.Tensor(n)
		got, err := tn.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		want := testutil.TensorF32(t, set, n)
		if len(got) != len(want.Data) {
			t.Fatalf("%s: %d values, want %d", n, len(got), len(want.Data))
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want.Data[i]) {
				t.Fatalf("%s[%d] = %v, want %v", n, i, got[i], want.Data[i])
			}
		}
	}
	if _, err := kv.Float32s(); err == nil || !strings.Contains(err.Error(), "kv_a_proj_with_mqa.weight") {
		t.Errorf("Float32s of FP8: %v", err)
	}
}

// TestTinyFixtureRewrite writes the fixture's tensors back with Write and
// gets the reference library's file byte for byte.
func TestTinyFixtureRewrite(t *testing.T) {
	dir := testutil.Fixture(t, "tiny")
	f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []*safetensors.Tensor
	for _, n := range f.Names() {
		tn, _ := f.Tensor(n)
		ts = append(ts, tn)
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, ts, f.Metadata); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), orig) {
		n := 0
		for n < min(buf.Len(), len(orig)) && buf.Bytes()[n] == orig[n] {
			n++
		}
		t.Fatalf("rewritten file differs from the reference's at byte %d (lengths %d, %d)", n, buf.Len(), len(orig))
	}
}

// TestFloat32sAndNewTensor checks the typed accessors against the root
// package's conversions and by hand-made bit patterns.
func TestFloat32sAndNewTensor(t *testing.T) {
	vals := []float32{0, -0, 1, -2.5, 1.00390625, 1.01171875, 65504, 65520, 1e-8, 3.4e38, float32(math.Inf(-1)), float32(math.NaN())}
	for _, dt := range []safetensors.DType{safetensors.F32, safetensors.BF16, safetensors.F16} {
		tn, err := safetensors.NewTensor("x", dt, []int{3, 4}, vals)
		if err != nil {
			t.Fatal(err)
		}
		if len(tn.Data) != 12*dt.Size() {
			t.Fatalf("%s: %d bytes", dt, len(tn.Data))
		}
		got, err := tn.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			var want float32
			switch dt {
			case safetensors.F32:
				want = v
			case safetensors.BF16:
				want = dsv3.ToBF16(v).Float32()
				if b := uint16(dsv3.ToBF16(v)); binary.LittleEndian.Uint16(tn.Data[2*i:]) != b {
					t.Errorf("BF16 bits of %v: %#04x, want %#04x", v, binary.LittleEndian.Uint16(tn.Data[2*i:]), b)
				}
			case safetensors.F16:
				want = dsv3.ToF16(v).Float32()
			}
			if math.Float32bits(got[i]) != math.Float32bits(want) && !(math.IsNaN(float64(v)) && math.IsNaN(float64(got[i]))) {
				t.Errorf("%s: %v -> %v, want %v", dt, v, got[i], want)
			}
		}
	}
	// Ties to even, by hand: 1 + 2^-8 is halfway between BF16 1 and 1+2^-7.
	tn, _ := safetensors.NewTensor("t", safetensors.BF16, []int{2}, []float32{1.00390625, 1.01171875})
	if got := []uint16{binary.LittleEndian.Uint16(tn.Data), binary.LittleEndian.Uint16(tn.Data[2:])}; got[0] != 0x3f80 || got[1] != 0x3f82 {
		t.Errorf("BF16 ties: %#04x, want 0x3f80 0x3f82", got)
	}
	for _, c := range []struct {
		dt    safetensors.DType
		shape []int
		n     int
		want  string
	}{
		{safetensors.F8E4M3, []int{1}, 1, `"x"`},
		{safetensors.F32, []int{2, 2}, 3, "needs 4 values, got 3"},
		{safetensors.F32, []int{-1}, 0, "negative"},
	} {
		if _, err := safetensors.NewTensor("x", c.dt, c.shape, make([]float32, c.n)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewTensor(%s, %v, %d values): %v, want %q", c.dt, c.shape, c.n, err, c.want)
		}
	}
	bad := &safetensors.Tensor{Name: "short", DType: safetensors.F32, Shape: []int{2}, Data: make([]byte, 7)}
	if _, err := bad.Float32s(); err == nil || !strings.Contains(err.Error(), `"short"`) {
		t.Errorf("Float32s of a short tensor: %v", err)
	}
}
