// Package yarn implements rotary position embedding (RoPE) with YaRN context
// extension, as DeepSeek-V3 uses it for the decoupled RoPE queries and key
// of Multi-head Latent Attention (DeepSeek-AI, "DeepSeek-V3 Technical
// Report", arXiv 2412.19437: §2.1.1, eqs. 3 and 5; the 4K to 128K extension
// in §4.3), following the official reference inference/model.py
// (precompute_freqs_cis, apply_rotary_emb, the MLA softmax scale) and the
// Hugging Face config.json field names.
//
// # Frequencies
//
// With rotary dimension d (qk_rope_head_dim), base θ (rope_theta) and
// i = 0 … d/2−1, plain RoPE rotates pair i by the angle p·θ_i at position p,
//
//	θ_i = θ^(−2i/d).
//
// YaRN (rope_scaling.type "yarn") is on whenever max_position_embeddings >
// original_max_position_embeddings, and then it changes every position, not
// only those past the original length. With scale factor s (factor),
// original length L (original_max_position_embeddings), β_fast and β_slow,
// the dimension whose wavelength makes r turns over L is
//
//	D(r) = d · ln(L / (2π r)) / (2 ln θ)
//
// and the correction range is low = max(⌊D(β_fast)⌋, 0),
// high = min(⌈D(β_slow)⌉, d−1) (high += 0.001 when they coincide). The
// linear ramp γ_i = clamp((i − low)/(high − low), 0, 1) blends the
// extrapolated frequency (kept, γ = 0: fast-turning pairs) and the
// interpolated one (divided by s, γ = 1: slow-turning pairs):
//
//	ω_i = θ_i·(1 − γ_i) + (θ_i / s)·γ_i.
//
// The reference computes ω in float32; this package computes it in float64
// (the two differ by a few float32 ulps), forms the angle p·ω_i in float64,
// and rounds only cos and sin to float32, so tables do not drift at large
// positions (at position 16383 the reference's float32 angles are off by up
// to about 2·10⁻⁴ radians).
//
// # Attention scale
//
// YaRN's temperature correction is
//
//	mscale(s, m) = 0.1·m·ln s + 1  (1 when s ≤ 1),
//
// the paper's √t = 0.1·ln s + 1 (§4.3) for m = 1. It enters the softmax
// scale of the attention squared:
//
//	scale = (qk_nope_head_dim + qk_rope_head_dim)^(−1/2) · mscale(s, mscale_all_dim)²
//
// (SoftmaxScale). Hugging Face's DeepseekV3 also multiplies the cos and sin
// tables by mscale(s, mscale)/mscale(s, mscale_all_dim) (Magnitude); the
// reference model.py has one mscale for both and no table factor. For every
// published DeepSeek-V3 config mscale = mscale_all_dim = 1, where all of these
// agree: scale = 192^(−1/2)·(0.1·ln 40 + 1)² ≈ 0.13523 and Magnitude = 1.
// Without YaRN the scale is (qk_head_dim)^(−1/2).
//
// # Layouts
//
// The checkpoint's rotary vectors are interleaved pairs (x[2i], x[2i+1]),
// rotated as the complex number x[2i] + i·x[2i+1] times e^(i·p·ω_i):
//
//	y[2i]   = x[2i]·cos − x[2i+1]·sin
//	y[2i+1] = x[2i]·sin + x[2i+1]·cos
//
// The rotate-half layout (Layout RotateHalf) pairs x[i] with x[i+d/2]
// instead. Hugging Face transformers de-interleaves before rotating half:
// the permutation is half[i] = inter[2i], half[d/2+i] = inter[2i+1]
// (Deinterleave; Interleave undoes it). Rotating the permuted vector in the
// rotate-half layout gives the permutation of the interleaved rotation, and
// since queries and keys are permuted alike, attention scores are unchanged.
//
// A rotation is orthogonal, so its backward (the transpose, applied to
// dL/dy) is also its inverse (RotateBackward, Unrotate; they differ only when
// Magnitude ≠ 1).
//
// # Blocks
//
// Rotation works in place on a [tokens × heads × d] block inside a
// dsv3.Matrix: row r is a token, at position s.Start + r mod s.Len for a
// dsv3.Seq s, and head h's rotary vector is columns [h·Stride, h·Stride+d)
// of that row, so the query's RoPE part of MLA, which sits after the no-RoPE
// part of every head, is rotated through a strided view without copying.
package yarn
