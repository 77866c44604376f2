// Package router implements DeepSeek-V3's auxiliary-loss-free top-k router
// for DeepSeekMoE layers (DeepSeek-AI, "DeepSeek-V3 Technical Report",
// arXiv 2412.19437, §2.1.2, eqs. 13-20), with the group-limited (node-limited)
// selection and the balance statistics of the official reference
// (deepseek-ai/DeepSeek-V3 inference/model.py, Gate.forward).
//
// # The math
//
// For a token u_t and routed experts with centroids e_i (the rows of the
// router weight, "mlp.gate.weight"):
//
//	s_{i,t}  = Sigmoid(u_tᵀ e_i)                                   (eq. 15)
//	g'_{i,t} = s_{i,t} if s_{i,t} + b_i ∈ TopK({s_{j,t} + b_j}, K_r), else 0  (eq. 16)
//	g_{i,t}  = g'_{i,t} / Σ_j g'_{j,t}   · routed_scaling_factor    (eq. 13)
//
// The bias b_i ("mlp.gate.e_score_correction_bias") is used only to choose
// experts; the gate weights come from the unbiased scores s. With
// scoring_func "softmax" (DeepSeek-V2 checkpoints) s is a softmax over all
// experts. The division by the sum is norm_topk_prob; the bias is used when
// topk_method is "noaux_tc".
//
// Group-limited routing (report §2.1.2, "node-limited routing"): the N_r
// experts form n_group equal consecutive groups. A group's score is the sum
// of its two highest biased scores s+b (its highest unbiased score when the
// router has no bias), the topk_group best groups are kept, and the top-K_r
// experts are chosen among the experts of those groups only. Experts are
// returned in descending order of biased score.
//
// Ties are broken deterministically: between equal scores the lower expert
// index wins, and between equal group scores the lower group index wins.
//
// # Balancing
//
// BiasUpdater accumulates each expert's token count over all micro-batches
// of a training step and then applies, once per optimizer step,
//
//	b_i += γ · sign(mean_j load_j − load_i)
//
// (γ, the bias update speed, is 0.001 for most of DeepSeek-V3's training).
// The complementary sequence-wise balance loss (Router.SeqBalanceLoss) is
//
//	L_Bal = α Σ_i f_i P_i                                           (eq. 17)
//	f_i   = N_r/(K_r T) Σ_t 1(s_{i,t} ∈ TopK(...))                   (eq. 18)
//	s'_{i,t} = s_{i,t} / Σ_j s_{j,t}                                 (eq. 19)
//	P_i   = (1/T) Σ_t s'_{i,t}                                       (eq. 20)
//
// over each sequence of T tokens, averaged over the sequences. Stats reports
// the per-expert load, MaxVio = (max load − mean load) / mean load for the
// last batch and accumulated over batches, the tokens reaching each group,
// and how many groups (nodes) each token reaches.
//
// # Gradients
//
// Router.Backward takes dL/dg for the chosen experts and propagates it
// through the scaling, the normalisation and the sigmoid (or softmax) into
// the router weight and the input; the discrete choice and the bias have no
// gradient. A balance loss registered with SeqBalanceLoss adds its gradient
// (f_i held constant) in the same pass.
//
// # Layout and cost
//
// Forward computes the [T, N_r] scores with one GEMM, then scores and
// chooses experts in parallel over tokens, each goroutine reusing its own
// scratch space: no allocation per token. The choice is returned flat
// (Routing.Experts and Routing.Weights, T·K_r values each). Input rows with
// a NaN or infinity, and NaN scores (from a corrupt weight), are reported
// as errors naming the token.
package router
