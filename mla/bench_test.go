package mla

import (
	"math/rand/v2"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/fp8"
)

// fillRandom fills m with uniform values in [-a, a) cheaply.
func fillRandom(m dsv3.Matrix, rng *rand.Rand, a float32) {
	for i := 0; i < m.Rows; i++ {
		row := m.Row(i)
		for j := range row {
			row[j] = a * (2*rng.Float32() - 1)
		}
	}
}

// benchLayer returns a DeepSeek-V3-shaped layer (128 heads, hidden 7168,
// q_lora 1536, kv_lora 512, nope 128, rope 64, v 128) with random float32
// weights, built once per benchmark binary.
var benchLayerCache *MLA

func benchLayer(b *testing.B) *MLA {
	if benchLayerCache != nil {
		return benchLayerCache
	}
	m, err := New(DeepSeekV3())
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range m.Params() {
		if p.Slot == nil {
			continue
		}
		var out, in int
		switch p.Name {
		case "q_a_proj.weight":
			out, in = 1536, 7168
		case "q_b_proj.weight":
			out, in = 128*192, 1536
		case "kv_a_proj_with_mqa.weight":
			out, in = 576, 7168
		case "kv_b_proj.weight":
			out, in = 128*256, 512
		case "o_proj.weight":
			out, in = 7168, 128*128
		}
		w := dsv3.NewMatrix(out, in)
		fillRandom(w, rng, 0.02)
		*p.Slot = w
	}
	benchLayerCache = m
	return m
}

var benchLayerFP8Cache *MLA

// benchLayerFP8 is benchLayer with every projection quantised to FP8 per
// 128x128 block (fp8.BlockWeight, weight-only MulT).
func benchLayerFP8(b *testing.B) *MLA {
	if benchLayerFP8Cache != nil {
		return benchLayerFP8Cache
	}
	src := benchLayer(b)
	m, err := New(DeepSeekV3())
	if err != nil {
		b.Fatal(err)
	}
	for i, p := range m.Params() {
		if p.Slot == nil {
			continue
		}
		w, err := fp8.QuantizeWeight((*src.Params()[i].Slot).(dsv3.Matrix), fp8.ScaleF32)
		if err != nil {
			b.Fatal(err)
		}
		*p.Slot = w
	}
	benchLayerFP8Cache = m
	return m
}

// projFlops returns the multiply-add count ×2 of the projections for
// tokens rows.
func projFlops(c Config, tokens int) float64 {
	h := c.Heads
	macs := c.Hidden*c.QLoraRank + c.QLoraRank*h*c.QKHeadDim() + c.Hidden*(c.KVLoraRank+c.QKRopeHeadDim) +
		h*c.VHeadDim*c.Hidden
	return 2 * float64(macs) * float64(tokens)
}

// BenchmarkDecode is one decode step at context 4096 (4095 cached tokens
// plus the new one) of a DeepSeek-V3-shaped layer with FP8 weights
// (fp8.BlockWeight) and with float32 weights, through the absorbed and the
// naive path.
func BenchmarkDecode(b *testing.B) {
	b.Run("fp8", func(b *testing.B) { benchDecode(b, benchLayerFP8(b)) })
	b.Run("f32", func(b *testing.B) { benchDecode(b, benchLayer(b)) })
}

func benchDecode(b *testing.B, m *MLA) {
	const ctx = 4096
	cfg := m.Config()
	rng := rand.New(rand.NewPCG(3, 4))
	c, err := NewCache(cfg, 1, ctx)
	if err != nil {
		b.Fatal(err)
	}
	fillRandom(c.latent, rng, 1)
	fillRandom(c.rope, rng, 1)
	c.lens[0] = ctx
	x := dsv3.NewMatrix(1, cfg.Hidden)
	fillRandom(x, rng, 1)
	h, dn, dr, dv, dc := cfg.Heads, cfg.QKNopeHeadDim, cfg.QKRopeHeadDim, cfg.VHeadDim, cfg.KVLoraRank
	for _, path := range []Path{Absorbed, Naive} {
		b.Run(path.String(), func(b *testing.B) {
			flops := projFlops(cfg, 1)
			if path == Absorbed {
				m.absorbWeight()
				flops += 2 * float64(h*(dn*dc+dv*dc)+h*ctx*(dc+dr)+h*ctx*dc)
			} else {
				flops += 2 * float64(ctx*dc*h*(dn+dv)+h*ctx*(dn+dr)+h*ctx*dv)
			}
			for b.Loop() {
				if _, err := m.Infer(x, dsv3.Seq{Count: 1, Len: 1, Start: ctx - 1}, c, path); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(1/sec, "tokens/s")
			b.ReportMetric(flops/sec/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkPrefill runs the attention of a DeepSeek-V3-shaped layer over
// one 2048-token sequence, with FP8 and with float32 weights: the
// training/prefill Forward (no record) and a cached prefill through the
// absorbed and the naive path.
//
// The FP8 runs use 256 tokens to keep the run short (fp8.BlockWeight's
// weight-only GEMM was much slower than the float32 GEMM when this was
// written).
func BenchmarkPrefill(b *testing.B) {
	b.Run("f32/2048", func(b *testing.B) { benchPrefill(b, benchLayer(b), 2048) })
	b.Run("fp8/256", func(b *testing.B) { benchPrefill(b, benchLayerFP8(b), 256) })
}

func benchPrefill(b *testing.B, m *MLA, n int) {
	cfg := m.Config()
	x := dsv3.NewMatrix(n, cfg.Hidden)
	fillRandom(x, rand.New(rand.NewPCG(5, 6)), 1)
	h, dn, dr, dv, dc := cfg.Heads, cfg.QKNopeHeadDim, cfg.QKRopeHeadDim, cfg.VHeadDim, cfg.KVLoraRank
	causal := float64(n) * float64(n+1) / 2 // (query, key) pairs
	naiveFlops := projFlops(cfg, n) + 2*float64(n*dc*h*(dn+dv)) + 2*causal*float64(h*(dn+dr+dv))
	report := func(b *testing.B, flops float64) {
		sec := b.Elapsed().Seconds() / float64(b.N)
		b.ReportMetric(float64(n)/sec, "tokens/s")
		b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	}
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := m.Forward(x, dsv3.Seq{Count: 1, Len: n}, false); err != nil {
				b.Fatal(err)
			}
		}
		report(b, naiveFlops)
	})
	for _, path := range []Path{Absorbed, Naive} {
		b.Run(path.String(), func(b *testing.B) {
			c, err := NewCache(cfg, 1, n)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := m.Infer(x, dsv3.Seq{Count: 1, Len: n}, c, path); err != nil {
					b.Fatal(err)
				}
			}
			flops := naiveFlops
			if path == Absorbed {
				flops = projFlops(cfg, n) + 2*float64(n*h*(dn+dv)*dc) + 2*causal*float64(h*(dc+dr+dc))
			}
			report(b, flops)
		})
	}
}
