// Package deepseekv3 assembles the full DeepSeek-V3 model (DeepSeek-AI,
// "DeepSeek-V3 Technical Report", arXiv 2412.19437, §2) from dsv3's
// building blocks, loads the official Hugging Face checkpoint format
// (config.json, safetensors shards, FP8 weights with weight_scale_inv),
// generates with a KV cache and MTP speculative decoding, and trains.
//
// # The model
//
//	h⁰ = Emb(t)
//	uˡ = hˡ⁻¹ + MLA(RMSNorm(hˡ⁻¹))                     (§2.1.1)
//	hˡ = uˡ + FFN(RMSNorm(uˡ))                        (§2.1.2)
//	logits = lm_head(RMSNorm(hᴸ))
//
// FFN is a dense SwiGLU MLP (package moe's SwiGLU) for the first
// first_k_dense_replace layers and a DeepSeekMoE layer (moe.MoE, routed by
// package router) after. The num_nextn_predict_layers MTP modules (§2.2,
// package mtp) follow, stored as layers num_hidden_layers and up, each
// wrapping a full decoder Layer and sharing the embedding and lm_head.
// Config holds config.json; its MLAConfig and MoEConfig map it onto each
// block's own configuration.
//
// # Loading
//
// Load reads a checkpoint directory and binds every tensor by walking the
// model's Params() names. FP8 weights stay one byte a weight in memory
// (memory-mapped, multiplied through fp8.BlockWeight), BF16 ones two bytes;
// norms, the embedding and the router bias are widened to float32. A
// missing tensor, a wrong shape or dtype, a truncated shard or an index
// naming a missing file is an error naming the tensor or file; tensors no
// parameter takes are listed in Checkpoint.Unused.
//
// Precision selects how the model multiplies: F32 (FP8 weights dequantised
// exactly on the fly: the reference's default path run in float32), FP8
// (activations quantised per 1x128 tile and multiplied by the FP8 block
// weights, as the reference's gemm_impl="fp8"; kv_b_proj, which the
// reference's absorbed attention uses dequantised, stays weight-only) and
// BF16 (weights in bfloat16, projections' outputs and the residual stream
// rounded to bfloat16, as the reference run in torch.bfloat16). On the
// reference fixture, F32 matches the official logits to 1e-6 relative, FP8
// reproduces the reference's FP8 logits, and BF16 lies within its
// statistical bounds.
//
// # Inference and generation
//
// Forward runs whole sequences without a cache. NewState and Infer run
// cached prefill and decode over MLA's compressed cache (absorbed or naive
// attention); InferMTP drafts with the first MTP module. Generate batches
// several prompts, samples greedily or with temperature and top-p from a
// seed, stops on stop tokens, and optionally decodes speculatively: the
// MTP module drafts the token after next, the model verifies it in a
// two-token step, and mtp.VerifyGreedy or mtp.VerifySample decide, so the
// output keeps the main model's distribution.
//
// # Training
//
// Trainer implements the report's recipe at small scale: AdamW (β 0.9,
// 0.95, weight decay 0.1) with warm-up and cosine decay, gradient clipping
// at 1.0 and accumulation, the MTP loss with weight λ, the router's bias
// update with speed γ once per optimizer step, the optional sequence-wise
// balance loss α, and FP8 training of every decoder-layer Linear through
// fp8.Linear with bfloat16 optimizer moments (§3.3). Checkpoints are
// written atomically in the Hugging Face layout, loadable by Load, with the
// optimizer and sampler state beside them so that ResumeTrainer continues
// bit-exactly.
package deepseekv3
