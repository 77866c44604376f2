package deepseekv3

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/fp8"
	"github.com/dsv3go/dsv3/internal/safetensors"
)

// LoadOptions say how Load reads a checkpoint.
type LoadOptions struct {
	// Precision: F32 (default), BF16 or FP8.
	Precision Precision
	// MTP loads the num_nextn_predict_layers modules too.
	MTP bool
	// Progress, when set, is called after each tensor is bound with the
	// bytes bound so far and the total.
	Progress func(done, total int64)
	// Workers bounds attention's goroutines (0: GOMAXPROCS).
	Workers int
}

// Checkpoint is a loaded model with the checkpoint it maps.
type Checkpoint struct {
	*Model
	// Unused lists checkpoint tensors no parameter took (weight_scale_inv
	// companions excepted), such as the MTP layer's copies of the shared
	// embedding and head, or all MTP tensors when LoadOptions.MTP is false.
	Unused []string
	set    *safetensors.Set
}

// Close releases the memory-mapped checkpoint; the model must not be used
// afterwards.
func (c *Checkpoint) Close() error { return c.set.Close() }

// Load reads the checkpoint in dir: config.json, then model.safetensors or
// the shards of model.safetensors.index.json. FP8 weights stay one byte a
// weight in memory (memory-mapped, with their weight_scale_inv); BF16
// weights stay two bytes; norm weights, the embedding and the router's
// e_score_correction_bias are widened to float32. A missing tensor, a wrong
// shape or dtype, a truncated shard are errors naming the tensor.
func Load(dir string, opt LoadOptions) (*Checkpoint, error) {
	if opt.Precision == "" {
		opt.Precision = F32
	}
	if _, err := ParsePrecision(string(opt.Precision)); err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	m, err := New(cfg, Options{MTP: opt.MTP, Workers: opt.Workers})
	if err != nil {
		return nil, err
	}
	m.Precision = opt.Precision
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("deepseekv3: %w", err)
	}
	ck := &Checkpoint{Model: m, set: set}
	if err := ck.bind(opt); err != nil {
		set.Close()
		return nil, err
	}
	if opt.Precision == BF16 {
		for _, l := range layersOf(m) {
			l.round = true
		}
	}
	return ck, nil
}

// LoadWeights fills an existing model (for example one built for training,
// with float32 weights) from the safetensors in dir: every parameter must
// be present with its shape; FP8 tensors are dequantised exactly. It
// returns the names of the tensors no parameter took.
func (m *Model) LoadWeights(dir string) ([]string, error) {
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("deepseekv3: %w", err)
	}
	defer set.Close()
	ck := &Checkpoint{Model: m, set: set}
	if err := ck.bind(LoadOptions{Precision: F32}); err != nil {
		return nil, err
	}
	return ck.Unused, nil
}

func (ck *Checkpoint) bind(opt LoadOptions) error {
	params := ck.Model.Params()
	used := map[string]bool{}
	var total, done int64
	for _, p := range params {
		if t, err := ck.set.Tensor(p.Name); err == nil {
			total += int64(len(t.Data))
		}
	}
	for _, p := range params {
		t, err := ck.set.Tensor(p.Name)
		if err != nil {
			return fmt.Errorf("deepseekv3: checkpoint has no tensor %q", p.Name)
		}
		used[p.Name] = true
		if t.DType == safetensors.F8E4M3 {
			used[p.Name+"_scale_inv"] = true
		}
		if err := bindParam(ck.Model.Cfg, ck.set, p, t, opt.Precision); err != nil {
			return err
		}
		done += int64(len(t.Data))
		if opt.Progress != nil {
			opt.Progress(done, total)
		}
	}
	for _, n := range ck.set.Names() {
		if !used[n] {
			ck.Unused = append(ck.Unused, n)
		}
	}
	sort.Strings(ck.Unused)
	return nil
}

// bindParam fills one parameter from its tensor.
func bindParam(cfg *Config, set *safetensors.Set, p dsv3.Param, t *safetensors.Tensor, prec Precision) error {
	rows, cols, err := cfg.paramShape(p)
	if err != nil {
		return err
	}
	if !shapeIs(t.Shape, rows, cols) {
		return fmt.Errorf("deepseekv3: tensor %q has shape %v, want [%d, %d]", p.Name, t.Shape, rows, cols)
	}
	if p.Slot == nil || !p.Value.Empty() {
		// A float32 value: widen whatever the checkpoint holds.
		vals, err := tensorFloat32(set, t, rows, cols)
		if err != nil {
			return err
		}
		if p.Value.Empty() {
			return fmt.Errorf("deepseekv3: parameter %q has no storage", p.Name)
		}
		copy(p.Value.Data, vals)
		if p.Slot != nil {
			*p.Slot = p.Value
		}
		return nil
	}
	switch t.DType {
	case safetensors.F8E4M3:
		sc, err := set.Tensor(p.Name + "_scale_inv")
		if err != nil {
			return fmt.Errorf("deepseekv3: FP8 tensor %q has no %s_scale_inv", p.Name, p.Name)
		}
		if sc.DType != safetensors.F32 || !shapeIs(sc.Shape, (rows+127)/128, (cols+127)/128) {
			return fmt.Errorf("deepseekv3: tensor %q_scale_inv is %s %v, want F32 [%d, %d]", p.Name, sc.DType, sc.Shape, (rows+127)/128, (cols+127)/128)
		}
		bw, err := fp8.BlockWeightFromBytes(rows, cols, t.Data, sc.Data)
		if err != nil {
			return fmt.Errorf("deepseekv3: tensor %q: %w", p.Name, err)
		}
		switch {
		case prec == FP8 && strings.HasSuffix(p.Name, "kv_b_proj.weight"):
			// The reference's absorbed attention multiplies by the
			// dequantised kv_b_proj (weight_dequant) without quantising
			// the latent: keep the weight-only path.
			*p.Slot = bw
		case prec == FP8:
			*p.Slot = fp8.ActQuant{W: bw}
		case prec == BF16:
			// The reference dequantises to bfloat16 (weight_dequant).
			w := bw.Dequantize()
			data := make([]dsv3.BF16, rows*cols)
			dsv3.BF16FromFloat32s(data, w.Data)
			*p.Slot = bf16Out{&dsv3.BF16Weight{Out: rows, In: cols, Data: data}}
		default:
			*p.Slot = bw
		}
	case safetensors.BF16:
		// Kept as bfloat16, two bytes a weight; widening is exact.
		data := make([]dsv3.BF16, rows*cols)
		for i := range data {
			data[i] = dsv3.BF16(uint16(t.Data[2*i]) | uint16(t.Data[2*i+1])<<8)
		}
		var w dsv3.Weight = &dsv3.BF16Weight{Out: rows, In: cols, Data: data}
		if prec == BF16 {
			w = bf16Out{w}
		}
		*p.Slot = w
	case safetensors.F16, safetensors.F32:
		vals, err := tensorFloat32(set, t, rows, cols)
		if err != nil {
			return err
		}
		w := dsv3.Matrix{Rows: rows, Cols: cols, Stride: cols, Data: vals}
		if prec == BF16 {
			data := make([]dsv3.BF16, rows*cols)
			dsv3.BF16FromFloat32s(data, vals)
			*p.Slot = bf16Out{&dsv3.BF16Weight{Out: rows, In: cols, Data: data}}
		} else {
			*p.Slot = w
		}
	default:
		return fmt.Errorf("deepseekv3: tensor %q has dtype %s; projection weights must be F8_E4M3, BF16, F16 or F32", p.Name, t.DType)
	}
	return nil
}

// paramShape returns the shape a parameter expects: its value's, its
// weight's, or for an unallocated projection the shape config.json implies.
func (c *Config) paramShape(p dsv3.Param) (int, int, error) {
	if !p.Value.Empty() {
		return p.Value.Rows, p.Value.Cols, nil
	}
	if p.Slot != nil && *p.Slot != nil {
		r, cols := (*p.Slot).Dims()
		return r, cols, nil
	}
	if r, cols, ok := c.projShape(p.Name); ok {
		return r, cols, nil
	}
	return 0, 0, fmt.Errorf("deepseekv3: parameter %q has no declared shape", p.Name)
}

// projShape returns the [out, in] shape of a projection weight from its
// checkpoint name.
func (c *Config) projShape(name string) (int, int, bool) {
	h, nh := c.HiddenSize, c.NumAttentionHeads
	qk := c.QKNopeHeadDim + c.QKRopeHeadDim
	has := func(suffix string) bool { return strings.HasSuffix(name, suffix) }
	switch {
	case has("self_attn.q_a_proj.weight"):
		return c.QRank(), h, true
	case has("self_attn.q_b_proj.weight"):
		return nh * qk, c.QRank(), true
	case has("self_attn.q_proj.weight"):
		return nh * qk, h, true
	case has("self_attn.kv_a_proj_with_mqa.weight"):
		return c.KVLoraRank + c.QKRopeHeadDim, h, true
	case has("self_attn.kv_b_proj.weight"):
		return nh * (c.QKNopeHeadDim + c.VHeadDim), c.KVLoraRank, true
	case has("self_attn.o_proj.weight"):
		return h, nh * c.VHeadDim, true
	case has("mlp.gate.weight"):
		return c.NRoutedExperts, h, true
	case has("eh_proj.weight"):
		return h, 2 * h, true
	case name == "lm_head.weight":
		return c.VocabSize, h, true
	}
	inter := c.IntermediateSize
	switch {
	case strings.Contains(name, "mlp.experts."):
		inter = c.MoeIntermediateSize
	case strings.Contains(name, "mlp.shared_experts."):
		inter = c.NSharedExperts * c.MoeIntermediateSize
	}
	switch {
	case has("gate_proj.weight"), has("up_proj.weight"):
		return inter, h, true
	case has("down_proj.weight"):
		return h, inter, true
	}
	return 0, 0, false
}

func shapeIs(shape []int, rows, cols int) bool {
	switch len(shape) {
	case 1:
		return rows == 1 && shape[0] == cols
	case 2:
		return shape[0] == rows && shape[1] == cols
	}
	return false
}

// tensorFloat32 decodes a tensor to float32 values: F32, BF16, F16 widened,
// F8_E4M3 dequantised with its scale_inv.
func tensorFloat32(set *safetensors.Set, t *safetensors.Tensor, rows, cols int) ([]float32, error) {
	if t.DType == safetensors.F8E4M3 {
		sc, err := set.Tensor(t.Name + "_scale_inv")
		if err != nil {
			return nil, fmt.Errorf("deepseekv3: FP8 tensor %q has no scale_inv", t.Name)
		}
		bw, err := fp8.BlockWeightFromBytes(rows, cols, t.Data, sc.Data)
		if err != nil {
			return nil, fmt.Errorf("deepseekv3: tensor %q: %w", t.Name, err)
		}
		return bw.Dequantize().Data, nil
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("deepseekv3: %w", err)
	}
	return v, nil
}

// bf16Out is a weight whose outputs are rounded to bfloat16, as a
// bfloat16 linear layer's are.
type bf16Out struct{ w dsv3.Weight }

func (b bf16Out) Dims() (int, int) { return b.w.Dims() }

func (b bf16Out) MulT(y, x dsv3.Matrix, acc bool) {
	b.w.MulT(y, x, acc)
	roundBF16(y)
}
