// Package moe implements DeepSeekMoE, the feed-forward layer of
// DeepSeek-V3 (DeepSeek-AI, "DeepSeek-V3 Technical Report",
// arXiv 2412.19437, §2.1.2, eq. 12): shared experts that every token uses
// plus fine-grained routed experts chosen per token by the router package,
// and the dense SwiGLU MLP of the first first_k_dense_replace layers.
//
// # The math
//
// For a token u_t (the post_attention_layernorm output), the layer returns
//
//	h'_t − u_t = Σ_{i=1..N_s} FFN^(s)_i(u_t) + Σ_{i=1..N_r} g_{i,t} FFN^(r)_i(u_t)     (eq. 12)
//	FFN(x)     = down_proj(silu(gate_proj(x)) ⊙ up_proj(x)),  silu(a) = a·sigmoid(a)
//
// where g_{i,t} is zero except for the token's K_r chosen experts, whose
// weights come from the router (eqs. 13-16: sigmoid affinities, a
// selection-only bias, group-limited top-k, normalised and scaled by
// routed_scaling_factor). The residual add is the caller's. The N_s shared
// experts are stored, as in the checkpoint, as one SwiGLU of width
// N_s × moe_intermediate_size; their outputs' sum is that SwiGLU's output.
//
// # Weights and names
//
// Every projection is a *dsv3.Linear whose W is any dsv3.Weight: a float32
// Matrix, a dsv3.BF16Weight, or an fp8 block-quantised weight. Parameters
// carry the checkpoint's names relative to "mlp.": "gate.weight",
// "gate.e_score_correction_bias", "experts.{i}.gate_proj.weight" (and
// up_proj, down_proj), "shared_experts.gate_proj.weight" (...); a SwiGLU
// used as the dense MLP has "gate_proj.weight", "up_proj.weight",
// "down_proj.weight". Built with Mode Inference a layer allocates no
// projection weights: a loader stores each one through Param.Slot (FP8
// stays one byte a weight). Built with Training it holds float32 weights
// and gradients.
//
// # How Forward runs
//
//  1. The router scores the T tokens (one GEMM) and chooses K_r experts and
//     gate weights per token (parallel over tokens).
//  2. The Dispatcher groups the T·K_r (token, slot) pairs by expert with a
//     stable counting sort, gathers each expert's rows contiguously, and
//     runs each expert once over its rows: three GEMMs per expert (a grouped
//     GEMM), experts in parallel, biggest first (load-aware scheduling; an
//     expert with more than its fair share of rows runs alone with all
//     workers).
//  3. Each token's output is the sum of its experts' rows weighted by its
//     gate weights (a per-token gather, parallel over tokens, no scatter
//     conflicts), plus the shared experts' output.
//
// Backward mirrors it: the output gradient dy is dispatched with the gate
// weights as row scales (expert i's output gradient is g_{i,t}·dy_t), every
// expert's backward accumulates its weight gradients and returns its input
// gradient rows; dL/dg_{i,t} = dy_t · FFN_i(u_t) flows through the router
// (normalisation, sigmoid) into the router weight and the input; the
// shared experts add theirs. The expert choice is held fixed.
//
// # Expert parallelism
//
// The Dispatcher interface is the seam for expert parallelism: its one
// method uses only builtin and dsv3 types, so the alltoall package
// implements it without importing moe. See Dispatcher for the contract.
// With a distributed dispatcher each rank builds the layer with
// Options.LocalExperts and calls Forward and Backward in the same order.
//
// # Balance
//
// Set MoE.Balance to a router.BiasUpdater to collect every training
// forward's per-expert load; call UpdateBias once per optimizer step.
package moe
