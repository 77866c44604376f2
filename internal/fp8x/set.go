package fp8x

// A Set is one implementation of the kernels (AVX-512, AVX2+FMA or pure Go)
// with the tile sizes it is built for. The drivers in gemm.go and gemv.go
// are shared by all sets.
type Set struct {
	Name string

	// Decode sets dst[i] to the value of E4M3 code src[i]; dst must be at
	// least as long as src.
	Decode func(dst []float32, src []byte)
	// EncodeScaled sets dst[i] to the saturating round-to-nearest-even E4M3
	// code of src[i]/s; dst must be at least as long as src.
	EncodeScaled func(dst []byte, src []float32, s float32)
	// Amax returns max |x| over x, NaN if any element is NaN.
	Amax func(x []float32) float32

	// MR×NR is the register tile of FMA, the float32 block-scaled
	// micro-kernel: with kb K-blocks of packed panels a [kb][128][MR] and
	// b [kb][128][NR] and scales sa [kb][MR], sb [kb][NR], it adds
	// Σ_kb (Σ_k a·b)·sa[i]·sb[j] to c[i*ldc+j].
	MR, NR int
	FMA    func(kb int, a, b, sa, sb, c []float32, ldc int)

	// PackF32 writes the 128 codes at codes[j*ldw:] (one full K-block of
	// row j < rows <= 16) as float32 values to dst[k*ldd+j]; PackPairs
	// writes them as bfloat16 pairs to dst[p*ldd+j] (k = 2p in the low
	// half). Lanes j >= rows are left as they are.
	PackF32   func(dst []float32, ldd int, codes []byte, ldw, rows int)
	PackPairs func(dst []uint32, ldd int, codes []byte, ldw, rows int)

	// BMR×BNR is the tile of BF16, the same product on panels of bfloat16
	// pairs (a [kb][64][BMR], b [kb][64][BNR] uint32 words, each holding
	// the values at k = 2p (low half) and 2p+1 (high half)). Nil when the
	// CPU has no exact bfloat16 dot product; FP8 operands then go through
	// FMA (E4M3 values and their products are exact in float32 either way).
	BMR, BNR int
	BF16     func(kb int, a, b []uint32, sa, sb, c []float32, ldc int)

	// Gemv adds Σ_kb f[kb*m+i]·Σ_{k<128} x[i*ldx+128kb+k]·E4M3(codes[r*ldw+128kb+k])
	// to y[r*m+i] for i < m <= GemvRows and r < rows: weight rows against
	// m activation rows, each weight byte read once.
	Gemv func(m, rows, kb int, codes []byte, ldw int, x []float32, ldx int, f, y []float32)
}

// GemvRows is the largest row count of activations the GEMV path takes;
// larger products go through the packed, blocked GEMM.
const GemvRows = 8

// Sets lists every kernel set this CPU can run, fastest first; it always
// ends with the pure-Go set.
var Sets = append(archSets(), GoSet)

// Active is the set the package-level functions dispatch to: Sets[0].
var Active = Sets[0]
