// Package gemm is dsv3's float32 matrix multiply, the kernel under every
// linear layer of DeepSeek-V3 (arXiv 2412.19437): C = op(A)·op(B), with op
// the identity or the transpose, leading dimensions for strided views, and
// an overwrite or accumulate mode:
//
//	C[i,j] (+)= Σ_{p<K} op(A)[i,p]·op(B)[p,j],   i < M, j < N.
//
// The three products of training are each one call (row-major storage,
// weights stored [out, in] as in the checkpoints):
//
//	forward          Y  = X·Wᵀ    Sgemm(false, true,  ...)
//	input gradient   dX = dY·W    Sgemm(false, false, ...)
//	weight gradient  dW += dYᵀ·X  Sgemm(true,  false, ..., acc=true)
//
// Accumulation is in float32 over the whole of K, never narrower: the
// report keeps the precision-sensitive parts of training in FP32 (§3.3.1:
// master weights, weight gradients) and promotes the FP8 GEMMs' partial
// sums to FP32 (§3.3.2); this is the FP32 GEMM those paths use. The
// summation order is a blocked one, not a plain loop: results agree with a
// float64 reference to within 1e-5·sqrt(K)·(Σ_p|op(A)[i,p]·op(B)[p,j]| +
// |C[i,j]| when accumulating), which the tests check for every kernel set,
// and they are bit-identical whatever the worker count.
//
// # Algorithm
//
// The structure is GotoBLAS/BLIS's: for each nc-wide block of C's columns and
// each kc-deep slice of K, op(B)'s kc×nc block is packed into nr-wide panels
// (B[p, j] at panel[p*nr+j]) shared by all workers (kc×nc = 512×1024 for the
// assembly sets: 2 MB, from L2 and L3, which easily feed the micro-kernel's
// 128 bytes of B per 28 FMAs); the workers then take equal bands of C's
// rows from a shared counter (up to four per worker, so that one slowed by
// other load hands work over, but at least four panels tall), pack op(A)
// one mr-row panel at a time (A[i, p] at panel[p*r+i], 28 KB) and run the
// register-tile micro-kernel over every B panel. The next step's B block is
// packed into a second buffer by tasks interleaved with the current step's
// compute tasks: packing is memory-bound and does not speed up with more
// cores, so it runs beside the FMAs instead of between them. Packing absorbs the
// transposes, so one micro-kernel serves all four forms. Tiles cut by C's
// bottom edge use a micro-kernel for that many rows (one exists for each
// row count), tiles cut by its right edge go through a scratch tile. When C
// has fewer row panels than twice the workers, the bands are also split by
// columns. The first kc slice honours the caller's mode, the later ones
// accumulate.
//
// When C is a single row (M == 1, decoding one token) or a single column,
// no packing is done: the matrix operand is streamed once, as dot products
// of its rows with the vector (Wᵀ forms) or as a combination of its rows
// (the others), split over workers by output element.
//
// When the forward form (A not transposed, B transposed: B is a weight
// stored [N, K]) has 2 to 8 rows (a routed expert's few tokens in MoE
// prefill), packing B would cost as much as the multiply, so B is not
// packed either: each row of B is streamed once from the caller's memory
// and dotted with all M rows of A at once, r rows of B at a time (M·r
// vector accumulators: r = 4 up to M = 6, 3 for M = 7 and 8 with AVX-512),
// split over workers by fixed groups of r rows of B, so the summation
// order does not depend on the worker count either.
//
// # Kernels
//
// Three kernel sets implement the inner loops:
//
//	avx512  14×32 register tile (28 ZMM accumulators), AVX512F
//	avx2    6×16 register tile (12 YMM accumulators), AVX2 + FMA
//	go      4×4 register tile in pure Go, the portable twin
//
// The assembly sets also pack in assembly: panels read across source rows
// (op(A) when A is not transposed, op(B) when B is) are transposed in
// registers, 16×16 (AVX-512) or 8×8 (AVX2) at a time; panels read along
// them are copied with masked loads that zero the padding lanes.
//
// The assembly is generated with avo (github.com/mmcloughlin/avo) by
// internal/asmgen/gemm, a separate module; the generated gemm_amd64.s is
// committed. The set is chosen once at init with golang.org/x/sys/cpu; the
// purego build tag (or a non-amd64 GOARCH) leaves only the Go set. Every
// assembly call covers at most one kc-deep register tile or a few rows of
// a GEMV or of the small-M path (at most 4K depths), so it returns within
// microseconds (assembly is not preempted).
// The tests run every set the CPU supports, not only the dispatched one.
//
// Packing buffers come from a sync.Pool and are reused from call to call;
// a call allocates only a few small closures.
package gemm
