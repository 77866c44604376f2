// Package deepseekv3 assembles the full DeepSeek-V3 model (DeepSeek-AI,
// "DeepSeek-V3 Technical Report", arXiv 2412.19437, §2) from dsv3's
// building blocks, loads the official Hugging Face checkpoint format
// (config.json, safetensors shards, FP8 weights with weight_scale_inv), and
// provides the pieces of a training loop (AdamW, the learning-rate schedule,
// gradient clipping).
//
// The model is
//
//	h⁰ = Emb(t)
//	uˡ = hˡ⁻¹ + MLA(RMSNorm(hˡ⁻¹))                     (§2.1.1)
//	hˡ = uˡ + FFN(RMSNorm(uˡ))                        (§2.1.2)
//	logits = lm_head(RMSNorm(hᴸ))
//
// where FFN is a dense SwiGLU MLP for the first first_k_dense_replace
// layers and DeepSeekMoE after, followed by num_nextn_predict_layers MTP
// modules (§2.2) stored as layers num_hidden_layers and up.
package deepseekv3
