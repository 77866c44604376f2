// Package mla implements Multi-head Latent Attention (MLA), the attention of
// DeepSeek-V3 (DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv
// 2412.19437, §2.1.1, eqs. 1-11), with its compressed KV cache and the
// weight-absorbed decode path of the official reference inference/model.py
// (attn_impl "absorb").
//
// # The equations
//
// For the normalised input h_t of token t (the decoder layer's
// input_layernorm output), with n_h heads, per-head widths d_h
// (qk_nope_head_dim), d^R_h (qk_rope_head_dim) and d_v (v_head_dim), and
// latent widths d_c (kv_lora_rank) and d'_c (q_lora_rank):
//
//	c^KV_t = RMSNorm(W^DKV h_t)                         (1)  kv_a_proj_with_mqa rows [0, d_c), kv_a_layernorm
//	k^C_t,i = W^UK_i c^KV_t                             (2)  kv_b_proj rows [i(d_h+d_v), i(d_h+d_v)+d_h)
//	k^R_t = RoPE(W^KR h_t)                              (3)  kv_a_proj_with_mqa rows [d_c, d_c+d^R_h), shared by all heads
//	k_t,i = [k^C_t,i ; k^R_t]                           (4)
//	v^C_t,i = W^UV_i c^KV_t                             (5)  kv_b_proj rows [i(d_h+d_v)+d_h, (i+1)(d_h+d_v))
//	c^Q_t = RMSNorm(W^DQ h_t)                           (6)  q_a_proj, q_a_layernorm
//	q^C_t,i = W^UQ_i c^Q_t                              (7)  q_b_proj rows [i(d_h+d^R_h), i(d_h+d^R_h)+d_h)
//	q^R_t,i = RoPE(W^QR_i c^Q_t)                        (8)  q_b_proj rows [i(d_h+d^R_h)+d_h, (i+1)(d_h+d^R_h))
//	q_t,i = [q^C_t,i ; q^R_t,i]                         (9)
//	o_t,i = Σ_{j≤t} softmax_j(s · q_t,iᵀ k_j,i) v^C_j,i  (10)
//	u_t = W^O [o_t,1 ; … ; o_t,n_h]                     (11) o_proj
//
// The paper leaves out the two latent RMSNorms; the checkpoint and the
// reference have them (q_a_layernorm, kv_a_layernorm, epsilon rms_norm_eps).
// With q_lora_rank 0 (null) the queries come from one q_proj instead of
// (6)-(8). RoPE rotates interleaved pairs with YaRN frequencies (package
// yarn), and the scale is s = (d_h + d^R_h)^(−1/2)·mscale², YaRN's
// temperature correction (yarn.RoPE.SoftmaxScale): 0.13523 for DeepSeek-V3.
//
// Forward and Backward compute (1)-(11) for training and prefill: several
// sequences of equal length (a dsv3.Seq), causal within each, the
// projections as whole-batch GEMMs and the attention on the float32 GEMM per
// (sequence, head), in parallel. The record keeps the projections and the
// log-sum-exp of every softmax row, not the probabilities: Backward
// recomputes them block by block, so memory stays linear in the sequence
// length. Backward reaches every weight and the input.
//
// # The cache and the absorbed path
//
// Inference keeps, per layer and token, only c^KV_t and k^R_t: d_c + d^R_h
// values (CacheValuesPerToken). For DeepSeek-V3 that is 512 + 64 = 576 per
// layer, 1152 bytes in BF16 (2304 in this package's float32 Cache); 61
// layers take 70,272 BF16 bytes a token. Multi-head attention with the same
// 128 heads of 128 would cache 2·128·128 = 32,768 values per layer, 57
// times more.
//
// Decoding from that cache the naive way (Path Naive) expands every cached
// latent into n_h keys and values through kv_b_proj at every step:
// n_h(d_h+d_v)·d_c multiply-adds per cached token. The absorbed path
// (Absorbed) folds W^UK into the query and W^UV into the output instead:
//
//	q^C_t,iᵀ k^C_j,i = (W^UK_iᵀ q^C_t,i)ᵀ c^KV_j
//	Σ_j p_j v^C_j,i  = W^UV_i (Σ_j p_j c^KV_j)
//
// so every head attends over the shared latents directly, (d_c + d^R_h)
// multiply-adds per cached token and head for the scores and d_c for the
// values, and all heads read the same cache rows (one GEMM for all heads).
// With FP8 or BF16 weights the absorbed path multiplies with a float32 copy
// of kv_b_proj, made once per bound weight (the reference dequantises it at
// every call).
//
// A Cache is owned by the caller and holds several independent sequences.
// Infer runs a prefill of any length at any start position (up to the
// cached length: no gaps) and token-by-token decode steps; InferSpans runs
// sequences at different positions in one call.
//
// # Weights
//
// Projection weights are *dsv3.Linear (any dsv3.Weight: float32, BF16, FP8)
// and the norms *dsv3.RMSNorm, listed by Params with the checkpoint's names
// relative to "model.layers.N.self_attn.". New builds a layer without
// projection weights for a loader to bind through Param.Slot; WithTraining
// allocates float32 weights with gradients (normal, std initializer_range).
//
// # Errors
//
// Bad input returns an error naming what is wrong: an input width other
// than hidden_size, a weight of the wrong shape or not loaded, a start
// position beyond the cached length or the cache capacity, a cache built
// for another shape, a training step through a quantised weight.
package mla
