// Package fp8 implements the FP8 arithmetic of DeepSeek-V3 (DeepSeek-AI,
// "DeepSeek-V3 Technical Report", arXiv 2412.19437, §3.3): the E4M3 and E5M2
// formats, fine-grained block quantisation, the block-scaled GEMM with
// float32 accumulation, and an FP8 engine for training linear layers.
//
// # Formats
//
// E4M3 is float8_e4m3fn: value = (-1)^s · 2^(e-7) · (1 + m/8) for exponent
// field e in 1..15, (-1)^s · 2^-6 · m/8 for e = 0, no infinities, NaN for
// S.1111.111; the largest value is 448. E5M2 is the IEEE-like
// float8_e5m2 (bias 15, infinities, largest finite 57344). Conversion to
// float32 is exact; conversion from float32 rounds to nearest, ties to even,
// either saturating (±Inf and overflow clamp to ±max, as the reference's
// kernels do with cvt.rn.satfinite) or not (overflow gives NaN for E4M3 and
// ±Inf for E5M2, as a PyTorch cast).
//
// # Quantisation (report §3.3.2, Figure 7a)
//
// Activations are scaled per 1x128 tile: row i, columns [128t, 128t+128)
// share one scale
//
//	s = max(amax, 1e-4) / 448,  amax = max |x| over the tile,
//
// and each element is stored as the E4M3 code of x/s (saturating). Weights
// are scaled per 128x128 block with s = amax/448 (no 1e-4 floor, and s = 1
// for an all-zero block, as the reference's fixtures do). Edge tiles and
// blocks are simply narrower. A power-of-two option rounds s up to 2^ceil(log2 s) (the
// "ue8m0" scale format), so that dequantisation is an exponent shift and no
// code can overflow. The scale is the multiplier that dequantises: value ≈
// E4M3(code)·s, and a checkpoint's weight_scale_inv [ceil(out/128),
// ceil(in/128)] is exactly this s for each weight block.
//
// # The block-scaled GEMM (report §3.3.2, "Increasing accumulation precision")
//
// For activations A [M, K] in 1x128 tiles (scales a_s[i, kb]) and a weight W
// [N, K] in 128x128 blocks (scales w_s[jb, kb]), the FP8 GEMM is
//
//	Y[i, j] = Σ_kb ( Σ_{k in kb} E4M3(A[i,k])·E4M3(W[j,k]) ) · a_s[i,kb] · w_s[j/128, kb]:
//
// the products of codes inside one 128-wide K-block are summed in float32
// and then scaled and added into a float32 accumulator, which is DeepGEMM's
// promotion of partial sums to FP32 at every K-block (the report found the
// tensor cores' ~14-bit accumulation too narrow). On a CPU every E4M3 value
// and every product of two is exact in float32 (and in bfloat16), so the
// only rounding is the float32 summation. The weight-only product (float32
// activations, W decoded on the fly, float32 accumulation, each K-block's
// sum times w_s) is what the reference computes by default (gemm_impl
// "bf16": weight_dequant then F.linear, here in float32).
//
// # Types
//
// BlockWeight is an FP8 weight with its block scales, laid out as in the
// checkpoint (it can wrap memory-mapped bytes without copying); it is a
// dsv3.Weight whose MulT is the weight-only product. ActQuant wraps a
// BlockWeight into a dsv3.Weight whose MulT quantises the activations per
// 1x128 tile and runs the FP8 GEMM (the reference's gemm_impl "fp8").
// Tiles holds activations quantised per 1x128 tile. Linear is a
// dsv3.LinearEngine for training (report §3.3.1, Figure 6): Fprop, Dgrad and
// Wgrad are all FP8 GEMMs on float32 master weights.
//
// # Numerics
//
// The weight-only product scales per K-block, like the FP8 GEMM:
// Y[i, j] = Σ_kb w_s[j/128, kb] · Σ_{k in kb} X[i,k]·E4M3(W[j,k]). The
// reference instead dequantises each weight (a float32 product) before a
// float32 GEMM; the two differ by float32 rounding only (the tests hold
// both within 2e-6 of a float64 reference, and the tiny checkpoint's
// outputs within 1e-5). NaN codes (0x7F, 0xFF) propagate to the outputs
// they touch. A NaN in an activation tile makes that tile's scale, and so
// every output using the tile, NaN.
//
// # Kernels
//
// The products run on internal/fp8x, chosen once at start-up from the CPU's
// features:
//
//   - AVX-512 (F, BW, VBMI, VL): E4M3 decoded in registers by two 128-entry
//     VPERMI2B table lookups of the bfloat16 pattern's bytes (exact for all
//     256 codes); with AVX512_BF16 the FP8 GEMM multiplies exact bfloat16
//     pairs with VDPBF16PS in a 12x32 register tile (twice the float32 FMA
//     rate on AMD Zen 4), and the weight-only product runs a 12x32 float32
//     FMA tile; a GEMV path for up to 8 activation rows decodes each weight
//     byte once in registers and streams the weight;
//   - AVX2 + FMA: a 6x16 float32 FMA tile, E4M3 decoded by VPGATHERDD from
//     a float32 table (bulk decode, GEMV for up to 4 activation rows), Go
//     packing;
//   - pure Go everywhere else, and with the purego build tag.
//
// For more than 8 rows, workers share out 128-column blocks of the output:
// each decodes its weight rows a few K-blocks at a time into packed panels
// that stay in L2 while every row of the (once-packed) activations passes
// over them, so decoding costs O(N·K) and the multiply O(M·N·K). AMX is
// detected (CPUID, then permission through arch_prctl) but has no kernel
// yet; see internal/fp8x.
package fp8
