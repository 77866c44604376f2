package deepseekv3

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/fp8"
)

// benchModelConfig is the decoding benchmark's model, the PyTorch peer's
// shape (../shared/peers/README.md): hidden 2048, 12 layers with the first
// dense (intermediate 8192), 16 heads, q_lora 768, kv_lora 256, qk_nope 64,
// qk_rope 32, v_head 64, 64 routed experts of width 704 + 1 shared, top-6
// (sigmoid router with 8 groups, 4 kept), vocab 32000: 3.35B parameters.
// DSV3_BENCH_LAYERS overrides the layer count (for machines with less
// memory: the f32 model needs about 13.4 GB).
func benchModelConfig(b *testing.B) *Config {
	layers := 12
	if s := os.Getenv("DSV3_BENCH_LAYERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			b.Fatalf("DSV3_BENCH_LAYERS=%q: want an integer >= 2", s)
		}
		layers = n
	}
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`{
		"vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 8192,
		"moe_intermediate_size": 704, "num_hidden_layers": %d, "first_k_dense_replace": 1,
		"num_attention_heads": 16, "q_lora_rank": 768, "kv_lora_rank": 256,
		"qk_nope_head_dim": 64, "qk_rope_head_dim": 32, "v_head_dim": 64,
		"n_routed_experts": 64, "n_shared_experts": 1, "num_experts_per_tok": 6,
		"n_group": 8, "topk_group": 4, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
		"norm_topk_prob": true, "routed_scaling_factor": 2.5,
		"rms_norm_eps": 1e-6, "rope_theta": 10000, "max_position_embeddings": 4096,
		"initializer_range": 0.02}`, layers)))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// randomInferenceModel builds an inference model for cfg and fills every
// parameter with random values of initializer_range's scale, one tensor at
// a time, so that no float32 copy of the whole model is ever resident for
// fp8: norms are 1, the router bias 0; projection weights are float32
// (f32) or, for fp8, stored as the checkpoint would bind them
// (bindParam): FP8 block weights behind activation quantisation
// (fp8.ActQuant), kv_b_proj weight-only, while lm_head and the router's
// gate (BF16 in the released checkpoint) stay float32. It returns the
// model and its parameter count.
func randomInferenceModel(b *testing.B, cfg *Config, prec Precision, seed uint64) (*Model, int64) {
	m, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	m.Precision = prec
	std := float32(cfg.initStd())
	var scratch []float32
	var params int64
	for i, p := range m.Params() {
		switch {
		case !p.Value.Empty() && (strings.HasSuffix(p.Name, "norm.weight") || strings.HasSuffix(p.Name, "layernorm.weight")):
			for j := range p.Value.Data {
				p.Value.Data[j] = 1
			}
			params += int64(len(p.Value.Data))
			continue
		case !p.Value.Empty() && strings.HasSuffix(p.Name, "e_score_correction_bias"):
			clear(p.Value.Data)
			params += int64(len(p.Value.Data))
			continue
		case !p.Value.Empty():
			fillUniform(p.Value.Data, std, seed, uint64(i))
			params += int64(len(p.Value.Data))
			continue
		}
		rows, cols, ok := cfg.projShape(p.Name)
		if !ok || p.Slot == nil {
			b.Fatalf("parameter %s has no projection shape", p.Name)
		}
		params += int64(rows * cols)
		keepF32 := prec == F32 || p.Name == "lm_head.weight" || strings.HasSuffix(p.Name, "mlp.gate.weight")
		if keepF32 {
			w := dsv3.NewMatrix(rows, cols)
			fillUniform(w.Data, std, seed, uint64(i))
			*p.Slot = w
			continue
		}
		if cap(scratch) < rows*cols {
			scratch = make([]float32, rows*cols)
		}
		w := dsv3.Matrix{Rows: rows, Cols: cols, Stride: cols, Data: scratch[:rows*cols]}
		fillUniform(w.Data, std, seed, uint64(i))
		bw, err := fp8.QuantizeWeight(w, fp8.ScaleF32)
		if err != nil {
			b.Fatal(err)
		}
		if strings.HasSuffix(p.Name, "kv_b_proj.weight") {
			*p.Slot = bw
		} else {
			*p.Slot = fp8.ActQuant{W: bw}
		}
	}
	return m, params
}

// fillUniform fills v with uniform values of standard deviation std, from
// streams seeded by (seed, tensor, chunk), on GOMAXPROCS goroutines.
func fillUniform(v []float32, std float32, seed, tensor uint64) {
	const chunk = 1 << 20
	a := std * 1.7320508 // uniform on [-a, a] has standard deviation a/√3
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for c := 0; c*chunk < len(v); c++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(c int) {
			defer wg.Done()
			defer func() { <-sem }()
			rng := rand.New(rand.NewPCG(seed^tensor*0x9e3779b97f4a7c15, uint64(c)))
			part := v[c*chunk : min((c+1)*chunk, len(v))]
			for i := range part {
				part[i] = a * (2*rng.Float32() - 1)
			}
		}(c)
	}
	wg.Wait()
}

// decodeWeightBytes is the weight bytes one batch-1 decode step reads:
// attention, the dense MLP or the router, the top-k routed and the shared
// experts of every layer, and the head; projections take 4 bytes a weight
// in f32 and 1 (plus a scale per 128x128 block) in fp8, where the head and
// the router stay float32 (see randomInferenceModel).
func decodeWeightBytes(c *Config, prec Precision) float64 {
	per := 4.0
	if prec == FP8 {
		per = 1 + 4.0/(128*128)
	}
	h, nh := float64(c.HiddenSize), float64(c.NumAttentionHeads)
	q, kv := float64(c.QRank()), float64(c.KVLoraRank)
	nope, rope, v := float64(c.QKNopeHeadDim), float64(c.QKRopeHeadDim), float64(c.VHeadDim)
	attn := q*h + nh*(nope+rope)*q + (kv+rope)*h + nh*(nope+v)*kv + h*nh*v
	var total float64
	for i := 0; i < c.NumHiddenLayers; i++ {
		total += attn * per
		if c.HasMoE(i) {
			total += float64(c.NRoutedExperts) * h * 4
			total += float64(c.NumExpertsPerTok+c.NSharedExperts) * 3 * h * float64(c.MoeIntermediateSize) * per
		} else {
			total += 3 * h * float64(c.IntermediateSize) * per
		}
	}
	return total + float64(c.VocabSize)*h*4
}

// procStatus returns a field of /proc/self/status in bytes (VmHWM: the
// peak resident set size), or -1 where it is unavailable.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// resetPeakRSS asks Linux to restart VmHWM from the current RSS (writing 5
// to clear_refs), so that each sub-benchmark reports its own peak.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// memAvailable returns MemAvailable from /proc/meminfo in bytes (-1 if
// unknown).
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return -1
}

// BenchmarkGenerate measures batch-1 generation on a randomly initialised
// model of realistic width (benchModelConfig): a 64-token prompt, then 64
// greedy decode steps, in f32 and fp8 precision. It reports prefill and
// decode tokens per second, the weight bytes decoding reads per second,
// and the peak resident set size. Run one
// precision at a time to keep the machine's memory free, e.g.
//
//	go test -run NONE -bench 'Generate/fp8' -benchtime 1x ./examples/deepseekv3/
func BenchmarkGenerate(b *testing.B) {
	if testing.Short() {
		b.Skip("the benchmark model has 3.35B parameters; skipped in -short mode")
	}
	cfg := benchModelConfig(b)
	const promptLen, steps = 64, 64
	for _, prec := range []Precision{F32, FP8} {
		b.Run(string(prec), func(b *testing.B) {
			runtime.GC()
			debug.FreeOSMemory()
			bytesPer := 4.0
			if prec == FP8 {
				bytesPer = 1.1
			}
			est := int64(3.35e9 * bytesPer * float64(cfg.NumHiddenLayers) / 12)
			if avail := memAvailable(); avail > 0 && avail < est*11/10 {
				b.Skipf("%s model needs about %.1f GB, %.1f GB available; set DSV3_BENCH_LAYERS to fewer than %d layers", prec, float64(est)/1e9, float64(avail)/1e9, cfg.NumHiddenLayers)
			}
			reset := resetPeakRSS()
			m, params := randomInferenceModel(b, cfg, prec, 1)
			rng := rand.New(rand.NewPCG(2, 2))
			prompt := make([]int32, promptLen)
			for i := range prompt {
				prompt[i] = int32(rng.IntN(cfg.VocabSize))
			}
			opt := GenerateOptions{MaxNewTokens: steps + 1}
			var prefill, decode float64
			b.ResetTimer()
			for b.Loop() {
				g, err := m.Generate(context.Background(), [][]int32{prompt}, opt)
				if err != nil {
					b.Fatal(err)
				}
				if g.Stats.DecodeTokens != steps {
					b.Fatalf("%d decode tokens, want %d", g.Stats.DecodeTokens, steps)
				}
				prefill += g.Stats.PrefillRate()
				decode += g.Stats.DecodeRate()
			}
			b.StopTimer()
			b.ReportMetric(prefill/float64(b.N), "prefill-tok/s")
			b.ReportMetric(decode/float64(b.N), "decode-tok/s")
			b.ReportMetric(decode/float64(b.N)*decodeWeightBytes(cfg, prec)/1e9, "decode-weight-GB/s")
			if hwm := procStatus("VmHWM"); hwm > 0 && reset {
				b.ReportMetric(float64(hwm)/1e9, "peak-RSS-GB")
			}
			b.Logf("%s: %d layers, %.2fB parameters", prec, cfg.NumHiddenLayers, float64(params)/1e9)
			runtime.KeepAlive(m)
		})
	}
}
