// Package mtp implements DeepSeek-V3's multi-token prediction (MTP)
// modules (report §2.2, eqs. 21-25): D sequential modules that each predict
// one more future token while keeping the causal chain, their training loss,
// and the helpers of speculative decoding with a module as the drafter.
//
// # The module
//
// Module k (k = 1..D) combines, for every position i, the representation of
// depth k-1 with the embedding of token i+k:
//
//	h'ᵏᵢ = Mₖ [RMSNorm(Emb(tᵢ₊ₖ)); RMSNorm(hᵏ⁻¹ᵢ)]          (eq. 21)
//	hᵏ₁:T₋ₖ = TRMₖ(h'ᵏ₁:T₋ₖ)                               (eq. 22)
//	Pᵏᵢ₊ₖ₊₁ = OutHead(hᵏᵢ)                                 (eq. 23)
//
// Mₖ is eh_proj [hidden, 2·hidden], the norms are enorm (embedding) and
// hnorm (hidden state), TRMₖ is one transformer block, and OutHead is
// shared_head.norm followed by the output head. The report's eq. 21 writes
// the concatenation as [RMSNorm(hᵏ⁻¹ᵢ); RMSNorm(Emb(tᵢ₊ₖ))]; the released
// checkpoint (and every serving engine) puts the **embedding first**, and
// so does this package: the first hidden columns of eh_proj multiply
// enorm(Emb(tᵢ₊ₖ)), the last hidden columns hnorm(hᵏ⁻¹ᵢ).
//
// The embedding and the output head are shared with the main model: the
// Shared value holds the main model's own *dsv3.Embedding and *dsv3.Linear,
// not copies, so their gradients collect both losses. The depth-0
// representation h⁰ is the main model's hidden state after its final norm
// (model.norm), as the serving engines (vLLM, SGLang) compute it and as the
// reference fixtures of this repository were made.
//
// The block is any dsv3.Block, passed in by the caller: in DeepSeek-V3 a
// full decoder layer (MLA plus MoE), stored in the checkpoint as layer
// num_hidden_layers (+k-1), whose relative names this module's Params keep
// ("enorm.weight", "eh_proj.weight", "self_attn.q_a_proj.weight", ...).
//
// # The loss
//
// With CEₖ the mean cross-entropy of depth k over the positions that have a
// target (tᵢ₊ₖ₊₁ inside the sequence),
//
//	L_MTP = λ/D · Σₖ CEₖ                                   (eqs. 24-25)
//
// Chain.Forward computes it for a batch of sequences and Chain.Backward
// returns its gradient with respect to the depth-0 states (to flow into the
// main model) while accumulating into every module, the shared embedding and
// the shared head.
//
// # Speculative decoding
//
// At inference a module drafts the token after next; the main model verifies
// the draft in one two-token step. VerifyGreedy accepts a draft when it is
// the main model's argmax, so greedy output is unchanged; VerifySample uses
// the standard rule (accept with probability min(1, p/q), else resample from
// max(0, p-q)) so that the sampled distribution is exactly the main model's.
// Acceptance counts drafts and acceptances.
package mtp
