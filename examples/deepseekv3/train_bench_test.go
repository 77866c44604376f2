package deepseekv3

import "testing"

// defaultTrainConfig is examples/train's default model: hidden 256, 4
// layers with the first dense, MLA with q_lora 128 / kv_lora 128, 16
// experts of 128 top-4 in 4 groups keeping 2, one shared expert, one MTP
// module; byte vocabulary.
func defaultTrainConfig() *Config {
	q := 128
	return &Config{
		VocabSize: 256, HiddenSize: 256, IntermediateSize: 512, MoeIntermediateSize: 128,
		NumHiddenLayers: 4, NumNextnPredictLayers: 1, NumAttentionHeads: 4, NumKeyValueHeads: 4,
		NSharedExperts: 1, NRoutedExperts: 16, RoutedScalingFactor: 2.5, KVLoraRank: 128, QLoraRank: &q,
		QKRopeHeadDim: 16, VHeadDim: 32, QKNopeHeadDim: 32, TopkMethod: "noaux_tc", NGroup: 4, TopkGroup: 2,
		NumExpertsPerTok: 4, MoeLayerFreq: 1, FirstKDenseReplace: 1, NormTopkProb: true, ScoringFunc: "sigmoid",
		HiddenAct: "silu", MaxPositionEmbeddings: 256, InitializerRange: 0.02, RMSNormEps: 1e-6, RopeTheta: 10000,
	}
}

// BenchmarkTrainStep measures training throughput of the default trainer
// model (batch 8 × 128 tokens, forward + backward + AdamW, MTP λ 0.3) in
// f32 and fp8, reported as tokens/s.
func BenchmarkTrainStep(b *testing.B) {
	for _, prec := range []Precision{F32, FP8} {
		b.Run(string(prec), func(b *testing.B) {
			rc := TrainConfig{Seed: 1, Steps: 1000, Warmup: 10, LR: 1e-3, MinLR: 1e-4, Batch: 8, SeqLen: 128, Accum: 1,
				Lambda: 0.3, Gamma: 0.001, ClipNorm: 1, WeightDecay: 0.1, Precision: prec}
			tr, err := NewTrainer(defaultTrainConfig(), rc)
			if err != nil {
				b.Fatal(err)
			}
			data := make([]int32, 100000)
			for i := range data {
				data[i] = int32((i*31 + i/7) % 256)
			}
			if _, err := tr.TrainStep(data); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := tr.TrainStep(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*rc.Batch*rc.SeqLen)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
