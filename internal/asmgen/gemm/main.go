// Command gemm generates the AVX-512 and AVX2+FMA kernels of
// github.com/dsv3go/dsv3/internal/gemm: register-blocked GEMM micro-kernels
// over packed panels, the packing kernels that fill those panels (in-register
// transposes and masked copies), and the two GEMV kernels (dot-product rows
// and row-combination "axpy") used when C has a single row or column, and
// the small-M forward kernels (2 to 8 rows of A dotted with up to 4 rows of
// B at once) used when C has a few rows.
//
// Regenerate from internal/asmgen with
//
//	go run ./gemm -pkg gemm -out ../gemm/gemm_amd64.s -stubs ../gemm/gemm_stubs_amd64.go
//
// or with go generate ./internal/gemm from the repository root.
//
// The micro-kernels compute an r×nr tile of C from a packed A panel (k steps
// of r consecutive floats: A[i,p] at a[p*r+i]) and a packed B panel (k steps
// of nr consecutive floats: B[p,j] at b[p*nr+j]):
//
//	C[i,j] (+)= Σ_p a[p*r+i]·b[p*nr+j],  i < r, j < nr
//
// with C[i,j] at c[i*ldc+j]. The register tile holds all r×nr sums for the
// whole call, so each packed element is read once per call. nr is 32 (two
// ZMM registers) for AVX-512 and 16 (two YMM registers) for AVX2; r runs from
// 1 to the maximal row count that fits the register file (14 and 6), so the
// bottom edge of a matrix costs no wasted arithmetic.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

const (
	maxRowsAVX512 = 14 // 28 accumulators + 2 B vectors + 2 broadcasts = 32 ZMM
	maxRowsAVX2   = 6  // 12 accumulators + 2 B vectors + 2 broadcasts = 16 YMM
	kUnroll       = 4  // k steps per loop iteration in the micro-kernels
	// transposePrefetch is how far ahead (bytes) the transposing pack
	// prefetches each source row.
	transposePrefetch = 512
)

// isa describes one vector instruction set for the generator.
type isa struct {
	name  string
	width int // float32 lanes per vector register
	vec   func() VecVirtual
}

var (
	avx512 = isa{name: "AVX512", width: 16, vec: ZMM}
	avx2   = isa{name: "AVX2", width: 8, vec: YMM}
)

func main() {
	ConstraintExpr("!purego")
	for r := 1; r <= maxRowsAVX512; r++ {
		micro(avx512, r)
	}
	for r := 1; r <= maxRowsAVX2; r++ {
		micro(avx2, r)
	}
	transpose16()
	transpose8()
	copyPack()
	copyPackAVX2()
	for _, s := range []isa{avx512, avx2} {
		dot(s, 4)
		dot(s, 1)
		axpy(s, 4)
		axpy(s, 1)
	}
	for _, s := range []isa{avx512, avx2} {
		for m := 2; m <= smallMaxM; m++ {
			if r := smallRows(s, m); r > 1 {
				smallDot(s, m, r)
			}
			smallDot(s, m, 1)
		}
	}
	Generate()
}

// micro emits kern<ISA>Rows<r>: an r×(2·width) register tile over k packed steps.
func micro(s isa, r int) {
	nr := 2 * s.width
	name := fmt.Sprintf("kern%sRows%d", s.name, r)
	TEXT(name, NOSPLIT, "func(k int, a, b, c *float32, ldc int, acc int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes a %dx%d tile: C (+)= A·B over k packed steps (A panel stride %d, B panel stride %d); acc != 0 adds to C.", name, r, nr, r, nr))
	k := Load(Param("k"), GP64())
	a := Load(Param("a"), GP64())
	b := Load(Param("b"), GP64())
	cptr := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)

	Comment("Prefetch the C tile, used after the k loop.")
	pc := GP64()
	MOVQ(cptr, pc)
	for i := 0; i < r; i++ {
		PREFETCHT0(Mem{Base: pc})
		PREFETCHT0(Mem{Base: pc, Disp: 4*nr - 4})
		if i+1 < r {
			ADDQ(ldc, pc)
		}
	}

	acc := make([][2]VecVirtual, r)
	for i := range acc {
		acc[i] = [2]VecVirtual{s.vec(), s.vec()}
		for _, v := range acc[i] {
			zero(s, v)
		}
	}
	bv := [2]VecVirtual{s.vec(), s.vec()}
	bc := [2]VecVirtual{s.vec(), s.vec()}
	step := func(u int) {
		VMOVUPS(Mem{Base: b, Disp: 4 * (u*nr + 0)}, bv[0])
		VMOVUPS(Mem{Base: b, Disp: 4 * (u*nr + s.width)}, bv[1])
		for i := 0; i < r; i++ {
			t := bc[i%2]
			VBROADCASTSS(Mem{Base: a, Disp: 4 * (u*r + i)}, t)
			VFMADD231PS(bv[0], t, acc[i][0])
			VFMADD231PS(bv[1], t, acc[i][1])
		}
	}

	Comment(fmt.Sprintf("Main loop: %d k steps per iteration.", kUnroll))
	Label(name + "_loop")
	CMPQ(k, U8(kUnroll))
	JL(LabelRef(name + "_tail"))
	for u := 0; u < kUnroll; u++ {
		step(u)
	}
	ADDQ(U32(4*kUnroll*r), a)
	ADDQ(U32(4*kUnroll*nr), b)
	SUBQ(U8(kUnroll), k)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_tail")
	TESTQ(k, k)
	JZ(LabelRef(name + "_store"))
	step(0)
	ADDQ(U32(4*r), a)
	ADDQ(U32(4*nr), b)
	DECQ(k)
	JMP(LabelRef(name + "_tail"))

	Label(name + "_store")
	accFlag := Load(Param("acc"), GP64())
	TESTQ(accFlag, accFlag)
	JZ(LabelRef(name + "_overwrite"))
	Comment("Accumulate into C.")
	for i := 0; i < r; i++ {
		for h := 0; h < 2; h++ {
			m := Mem{Base: cptr, Disp: 4 * h * s.width}
			VADDPS(m, acc[i][h], acc[i][h])
			VMOVUPS(acc[i][h], m)
		}
		if i+1 < r {
			ADDQ(ldc, cptr)
		}
	}
	VZEROUPPER()
	RET()

	Label(name + "_overwrite")
	Comment("Overwrite C.")
	for i := 0; i < r; i++ {
		for h := 0; h < 2; h++ {
			VMOVUPS(acc[i][h], Mem{Base: cptr, Disp: 4 * h * s.width})
		}
		if i+1 < r {
			ADDQ(ldc, cptr)
		}
	}
	VZEROUPPER()
	RET()
}

// zero clears a vector register (VPXORD for ZMM needs only AVX512F).
func zero(s isa, v VecVirtual) {
	if s.width == 16 {
		VPXORD(v, v, v)
	} else {
		VXORPS(v, v, v)
	}
}

// dot emits dot<ISA>R<rows>: y[i] = Σ_p x[p]·w[i*ldw+p] for i < rows, with k a
// multiple of the vector width (the caller adds the tail).
func dot(s isa, rows int) {
	name := fmt.Sprintf("dot%sR%d", s.name, rows)
	TEXT(name, NOSPLIT, "func(k int, x, w *float32, ldw int, y *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s sets y[i] = Σ_p x[p]·w[i*ldw+p] for %d rows i; k must be a multiple of %d.", name, rows, s.width))
	k := Load(Param("k"), GP64())
	x := Load(Param("x"), GP64())
	w := Load(Param("w"), GP64())
	ldw := Load(Param("ldw"), GP64())
	y := Load(Param("y"), GP64())
	SHLQ(U8(2), ldw)
	ptr := make([]GPVirtual, rows)
	for i := range ptr {
		ptr[i] = GP64()
		if i == 0 {
			MOVQ(w, ptr[i])
		} else {
			LEAQ(Mem{Base: ptr[i-1], Index: ldw, Scale: 1}, ptr[i])
		}
	}
	acc := make([][2]VecVirtual, rows)
	for i := range acc {
		acc[i] = [2]VecVirtual{s.vec(), s.vec()}
		zero(s, acc[i][0])
		zero(s, acc[i][1])
	}
	off := GP64()
	XORQ(off, off)
	SHLQ(U8(2), k) // k in bytes
	xv := [2]VecVirtual{s.vec(), s.vec()}
	vb := 4 * s.width

	Label(name + "_loop2")
	rem := GP64()
	MOVQ(k, rem)
	SUBQ(off, rem)
	CMPQ(rem, U32(2*vb))
	JL(LabelRef(name + "_one"))
	for h := 0; h < 2; h++ {
		VMOVUPS(Mem{Base: x, Index: off, Scale: 1, Disp: h * vb}, xv[h])
	}
	for i := 0; i < rows; i++ {
		for h := 0; h < 2; h++ {
			VFMADD231PS(Mem{Base: ptr[i], Index: off, Scale: 1, Disp: h * vb}, xv[h], acc[i][h])
		}
	}
	ADDQ(U32(2*vb), off)
	JMP(LabelRef(name + "_loop2"))

	Label(name + "_one")
	CMPQ(off, k)
	JGE(LabelRef(name + "_reduce"))
	VMOVUPS(Mem{Base: x, Index: off, Scale: 1}, xv[0])
	for i := 0; i < rows; i++ {
		VFMADD231PS(Mem{Base: ptr[i], Index: off, Scale: 1}, xv[0], acc[i][0])
	}

	Label(name + "_reduce")
	for i := 0; i < rows; i++ {
		v := acc[i][0]
		VADDPS(acc[i][1], v, v)
		var yv Register = v
		if s.width == 16 {
			hi := YMM()
			VEXTRACTF64X4(U8(1), v, hi)
			yv = v.AsY()
			VADDPS(hi, yv, yv)
		}
		hi := XMM()
		VEXTRACTF128(U8(1), yv, hi)
		xr := v.AsX()
		VADDPS(hi, xr, xr)
		VHADDPS(xr, xr, xr)
		VHADDPS(xr, xr, xr)
		VMOVSS(xr, Mem{Base: y, Disp: 4 * i})
	}
	VZEROUPPER()
	RET()
}

// axpy emits axpy<ISA>R<rows>: y[j] += Σ_i x[i]·w[i*ldw+j] for j < n, with n
// a multiple of the vector width (the caller adds the tail).
func axpy(s isa, rows int) {
	name := fmt.Sprintf("axpy%sR%d", s.name, rows)
	TEXT(name, NOSPLIT, "func(n int, x, w *float32, ldw int, y *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s adds Σ_i x[i]·w[i*ldw+j] to y[j] for j < n over %d rows i; n must be a multiple of %d.", name, rows, s.width))
	n := Load(Param("n"), GP64())
	x := Load(Param("x"), GP64())
	w := Load(Param("w"), GP64())
	ldw := Load(Param("ldw"), GP64())
	y := Load(Param("y"), GP64())
	SHLQ(U8(2), ldw)
	SHLQ(U8(2), n) // bytes
	ptr := make([]GPVirtual, rows)
	xs := make([]VecVirtual, rows)
	for i := range ptr {
		ptr[i] = GP64()
		if i == 0 {
			MOVQ(w, ptr[i])
		} else {
			LEAQ(Mem{Base: ptr[i-1], Index: ldw, Scale: 1}, ptr[i])
		}
		xs[i] = s.vec()
		VBROADCASTSS(Mem{Base: x, Disp: 4 * i}, xs[i])
	}
	off := GP64()
	XORQ(off, off)
	vb := 4 * s.width
	const unroll = 4
	acc := make([]VecVirtual, unroll)
	for u := range acc {
		acc[u] = s.vec()
	}
	body := func(u int) {
		VMOVUPS(Mem{Base: y, Index: off, Scale: 1, Disp: u * vb}, acc[u])
		for i := 0; i < rows; i++ {
			VFMADD231PS(Mem{Base: ptr[i], Index: off, Scale: 1, Disp: u * vb}, xs[i], acc[u])
		}
		VMOVUPS(acc[u], Mem{Base: y, Index: off, Scale: 1, Disp: u * vb})
	}
	Label(name + "_loop4")
	rem := GP64()
	MOVQ(n, rem)
	SUBQ(off, rem)
	CMPQ(rem, U32(unroll*vb))
	JL(LabelRef(name + "_loop1"))
	for u := 0; u < unroll; u++ {
		body(u)
	}
	ADDQ(U32(unroll*vb), off)
	JMP(LabelRef(name + "_loop4"))

	Label(name + "_loop1")
	CMPQ(off, n)
	JGE(LabelRef(name + "_done"))
	body(0)
	ADDQ(U32(vb), off)
	JMP(LabelRef(name + "_loop1"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// transpose16 emits packT16AVX512: the transposing pack for panels whose
// source rows are k-contiguous (op(A) when A is not transposed, op(B) when
// B is). For 16 source rows (row i starting at rows[i]) and k a multiple of
// 16 it stores dst[p*stride+i] = rows[i][p] for p < k and the lanes i set in
// mask. Each 16×16 block is transposed in registers: unpack pairs, shuffle
// quads, then two rounds of 128-bit block shuffles.
func transpose16() {
	name := "packT16AVX512"
	TEXT(name, NOSPLIT, "func(k int, rows *[16]*float32, dst *float32, stride int, mask uint16)")
	Pragma("noescape")
	Doc(name + " stores dst[p*stride+i] = rows[i][p] for p < k (a multiple of 16) and the lanes i < 16 set in mask.")
	k := Load(Param("k"), GP64())
	tbl := Load(Param("rows"), GP64())
	dst := Load(Param("dst"), GP64())
	stride := Load(Param("stride"), GP64())
	m := Load(Param("mask"), GP32())
	mask := K()
	KMOVW(m, mask)
	SHLQ(U8(2), stride)
	SHLQ(U8(2), k)
	off := GP64()
	XORQ(off, off)
	ptr := GP64()

	Label(name + "_loop")
	CMPQ(off, k)
	JGE(LabelRef(name + "_done"))
	r := make([]VecVirtual, 16)
	for i := range r {
		r[i] = ZMM()
		MOVQ(Mem{Base: tbl, Disp: 8 * i}, ptr)
		VMOVUPS(Mem{Base: ptr, Index: off, Scale: 1}, r[i])
		// Source rows are often far apart (a weight's rows) and read for
		// only a kc-long stretch: too short for the hardware prefetcher.
		PREFETCHT0(Mem{Base: ptr, Index: off, Scale: 1, Disp: transposePrefetch})
	}
	// Stage 1: interleave row pairs within 128-bit lanes.
	t := make([]VecVirtual, 16)
	for g := 0; g < 8; g++ {
		t[2*g], t[2*g+1] = ZMM(), ZMM()
		VUNPCKLPS(r[2*g+1], r[2*g], t[2*g])
		VUNPCKHPS(r[2*g+1], r[2*g], t[2*g+1])
	}
	// Stage 2: per group of four rows, column c of each 4×4 lane block.
	s := make([]VecVirtual, 16)
	for g := 0; g < 4; g++ {
		a0, a1, b0, b1 := t[4*g], t[4*g+1], t[4*g+2], t[4*g+3]
		for c, src := range [][2]VecVirtual{{a0, b0}, {a0, b0}, {a1, b1}, {a1, b1}} {
			s[4*g+c] = ZMM()
			imm := uint8(0x44)
			if c%2 == 1 {
				imm = 0xEE
			}
			VSHUFPS(U8(imm), src[1], src[0], s[4*g+c])
		}
	}
	// Stages 3 and 4: transpose the 4×4 grid of 128-bit blocks.
	col := make([]VecVirtual, 16)
	for c := 0; c < 4; c++ {
		t88, tdd, u88, udd := ZMM(), ZMM(), ZMM(), ZMM()
		VSHUFF32X4(U8(0x88), s[4+c], s[c], t88)
		VSHUFF32X4(U8(0xDD), s[4+c], s[c], tdd)
		VSHUFF32X4(U8(0x88), s[12+c], s[8+c], u88)
		VSHUFF32X4(U8(0xDD), s[12+c], s[8+c], udd)
		col[c], col[8+c], col[4+c], col[12+c] = ZMM(), ZMM(), ZMM(), ZMM()
		VSHUFF32X4(U8(0x88), u88, t88, col[c])
		VSHUFF32X4(U8(0xDD), u88, t88, col[8+c])
		VSHUFF32X4(U8(0x88), udd, tdd, col[4+c])
		VSHUFF32X4(U8(0xDD), udd, tdd, col[12+c])
	}
	for q := 0; q < 16; q++ {
		VMOVUPS(col[q], mask, Mem{Base: dst})
		ADDQ(stride, dst)
	}
	ADDQ(U8(64), off)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// transpose8 emits packT8AVX2, the AVX2 twin of packT16AVX512 for 8 rows:
// dst[p*stride+i] = rows[i][p] for p < k (a multiple of 8) and i < 8, each
// 8×8 block transposed in registers. Stores are not masked: with stride < 8
// each store also writes stride..7 lanes into the next depth's lanes (or
// past the block after the last depth), which the caller must allow for.
func transpose8() {
	name := "packT8AVX2"
	TEXT(name, NOSPLIT, "func(k int, rows *[8]*float32, dst *float32, stride int)")
	Pragma("noescape")
	Doc(name + " stores dst[p*stride+i] = rows[i][p] for p < k (a multiple of 8) and i < 8, writing 8 lanes per depth even when stride < 8.")
	k := Load(Param("k"), GP64())
	tbl := Load(Param("rows"), GP64())
	dst := Load(Param("dst"), GP64())
	stride := Load(Param("stride"), GP64())
	SHLQ(U8(2), stride)
	SHLQ(U8(2), k)
	off := GP64()
	XORQ(off, off)
	ptr := GP64()

	Label(name + "_loop")
	CMPQ(off, k)
	JGE(LabelRef(name + "_done"))
	r := make([]VecVirtual, 8)
	for i := range r {
		r[i] = YMM()
		MOVQ(Mem{Base: tbl, Disp: 8 * i}, ptr)
		VMOVUPS(Mem{Base: ptr, Index: off, Scale: 1}, r[i])
		PREFETCHT0(Mem{Base: ptr, Index: off, Scale: 1, Disp: transposePrefetch})
	}
	t := make([]VecVirtual, 8)
	for g := 0; g < 4; g++ {
		t[2*g], t[2*g+1] = YMM(), YMM()
		VUNPCKLPS(r[2*g+1], r[2*g], t[2*g])
		VUNPCKHPS(r[2*g+1], r[2*g], t[2*g+1])
	}
	sv := make([]VecVirtual, 8)
	for g := 0; g < 2; g++ {
		a0, a1, b0, b1 := t[4*g], t[4*g+1], t[4*g+2], t[4*g+3]
		for c, src := range [][2]VecVirtual{{a0, b0}, {a0, b0}, {a1, b1}, {a1, b1}} {
			sv[4*g+c] = YMM()
			imm := uint8(0x44)
			if c%2 == 1 {
				imm = 0xEE
			}
			VSHUFPS(U8(imm), src[1], src[0], sv[4*g+c])
		}
	}
	col := make([]VecVirtual, 8)
	for c := 0; c < 4; c++ {
		col[c], col[4+c] = YMM(), YMM()
		VPERM2F128(U8(0x20), sv[4+c], sv[c], col[c])
		VPERM2F128(U8(0x31), sv[4+c], sv[c], col[4+c])
	}
	// In depth order, so that each store's extra lanes (stride < 8) are
	// overwritten by the next one.
	for q := 0; q < 8; q++ {
		VMOVUPS(col[q], Mem{Base: dst})
		ADDQ(stride, dst)
	}
	ADDQ(U8(32), off)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// copyPack emits packCopyAVX512, the non-transposing pack for panels whose
// rows are k-strided in the source (op(A) when A is transposed, op(B) when
// B is not): dst[p*stride+j] = src[p*ld+j] for j < cols and 0 for
// cols <= j < stride <= 32. The load masks (lm0, lm1) select the cols
// source lanes and zero the rest; the store masks (sm0, sm1) select the
// stride destination lanes. Each row is a separate line or two of the
// source, so it prefetches eight rows ahead.
func copyPack() {
	name := "packCopyAVX512"
	TEXT(name, NOSPLIT, "func(k int, src *float32, ld int, dst *float32, stride int, lm0, lm1, sm0, sm1 uint16)")
	Pragma("noescape")
	Doc(name + " stores dst[p*stride+j] = src[p*ld+j] (masked by lm0, lm1; zero elsewhere) for p < k, in the lanes sm0, sm1 of each 32-lane destination row.")
	k := Load(Param("k"), GP64())
	src := Load(Param("src"), GP64())
	ld := Load(Param("ld"), GP64())
	dst := Load(Param("dst"), GP64())
	stride := Load(Param("stride"), GP64())
	masks := make([]Register, 4)
	for i, nm := range []string{"lm0", "lm1", "sm0", "sm1"} {
		g := Load(Param(nm), GP32())
		masks[i] = K()
		KMOVW(g, masks[i])
	}
	SHLQ(U8(2), ld)
	SHLQ(U8(2), stride)
	ahead := GP64()
	LEAQ(Mem{Base: ld, Index: ld, Scale: 2}, ahead) // 3·ld
	SHLQ(U8(1), ahead)                              // 6·ld
	ADDQ(ld, ahead)
	ADDQ(ld, ahead) // 8·ld
	v0, v1 := ZMM(), ZMM()
	Label(name + "_loop")
	TESTQ(k, k)
	JZ(LabelRef(name + "_done"))
	PREFETCHT0(Mem{Base: src, Index: ahead, Scale: 1})
	PREFETCHT0(Mem{Base: src, Index: ahead, Scale: 1, Disp: 64})
	VMOVUPS_Z(Mem{Base: src}, masks[0], v0)
	VMOVUPS_Z(Mem{Base: src, Disp: 64}, masks[1], v1)
	VMOVUPS(v0, masks[2], Mem{Base: dst})
	VMOVUPS(v1, masks[3], Mem{Base: dst, Disp: 64})
	ADDQ(ld, src)
	ADDQ(stride, dst)
	DECQ(k)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// copyPackAVX2 emits packCopyAVX2, the AVX2 twin of packCopyAVX512 for
// destination strides of 16 (two stores per depth, wide != 0) or at most 8
// (one store): loads are masked by the lane masks m (VMASKMOVPS, which
// zeroes and never faults on the masked-out lanes); stores are not, so with
// stride < 8 each store spills into the next depth's lanes, rewritten by
// the next store, and the caller must leave the last depth to Go.
func copyPackAVX2() {
	name := "packCopyAVX2"
	TEXT(name, NOSPLIT, "func(k int, src *float32, ld int, dst *float32, stride int, m *[16]int32, wide int)")
	Pragma("noescape")
	Doc(name + " stores dst[p*stride+j] = src[p*ld+j] for the lanes j set in m (zero elsewhere) for p < k, writing 16 lanes per depth when wide != 0, else 8.")
	k := Load(Param("k"), GP64())
	src := Load(Param("src"), GP64())
	ld := Load(Param("ld"), GP64())
	dst := Load(Param("dst"), GP64())
	stride := Load(Param("stride"), GP64())
	mp := Load(Param("m"), GP64())
	wide := Load(Param("wide"), GP64())
	m0, m1 := YMM(), YMM()
	VMOVDQU(Mem{Base: mp}, m0)
	VMOVDQU(Mem{Base: mp, Disp: 32}, m1)
	SHLQ(U8(2), ld)
	SHLQ(U8(2), stride)
	v0, v1 := YMM(), YMM()
	Label(name + "_loop")
	TESTQ(k, k)
	JZ(LabelRef(name + "_done"))
	VMASKMOVPS(Mem{Base: src}, m0, v0)
	VMOVUPS(v0, Mem{Base: dst})
	TESTQ(wide, wide)
	JZ(LabelRef(name + "_next"))
	VMASKMOVPS(Mem{Base: src, Disp: 32}, m1, v1)
	VMOVUPS(v1, Mem{Base: dst, Disp: 32})
	Label(name + "_next")
	ADDQ(ld, src)
	ADDQ(stride, dst)
	DECQ(k)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// smallMaxM is the largest row count of A the small-M kernels serve.
const smallMaxM = 8

// smallRows is the number of B rows a small-M kernel for m rows of A takes
// at a time: as many as fit the register file (m·r accumulators, r B
// vectors and two A vectors), at most 4. It must match smallRows in
// internal/gemm.
func smallRows(s isa, m int) int {
	regs := 32
	if s.width == 8 {
		regs = 16
	}
	return min(4, (regs-2)/(m+1))
}

// rowAddr returns the address of row i (of a matrix with row stride ld
// bytes) given base pointers at rows 0, 3 and 6: every row below 9 is one
// of base + {0, 1, 2, 4, 8}·ld from one of them.
func rowAddr(bases []Register, ld Register, i int) Mem {
	for b, base := range bases {
		switch d := i - 3*b; d {
		case 0:
			return Mem{Base: base}
		case 1, 2, 4, 8:
			return Mem{Base: base, Index: ld, Scale: uint8(d)}
		}
	}
	panic(fmt.Sprintf("row %d not reachable from %d bases", i, len(bases)))
}

// rowBases loads base pointers at rows 0, 3, 6 (as many as rows needs) of
// the matrix at p with row stride ld bytes.
func rowBases(p, ld Register, rows int) []Register {
	bases := []Register{p}
	for b := 1; 3*b < rows; b++ {
		nb := GP64()
		LEAQ(Mem{Base: bases[b-1], Index: ld, Scale: 2}, nb)
		ADDQ(ld, nb)
		bases = append(bases, nb)
	}
	return bases
}

// smallDot emits small<ISA>M<m>R<r>: the small-M forward kernel, dot
// products of m rows of A (x, row stride ldx) with r rows of B (w, row
// stride ldw) over k depths (a multiple of the vector width), each B vector
// loaded once and used for all m rows:
//
//	y[i*r+j] = Σ_{p<k} x[i*ldx+p]·w[j*ldw+p],  i < m, j < r.
func smallDot(s isa, m, r int) {
	name := fmt.Sprintf("small%sM%dR%d", s.name, m, r)
	TEXT(name, NOSPLIT, "func(k int, x *float32, ldx int, w *float32, ldw int, y *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s sets y[i*%d+j] = Σ_p x[i*ldx+p]·w[j*ldw+p] for %d rows i of x and %d rows j of w; k must be a multiple of %d.", name, r, m, r, s.width))
	k := Load(Param("k"), GP64())
	x := Load(Param("x"), GP64())
	ldx := Load(Param("ldx"), GP64())
	w := Load(Param("w"), GP64())
	ldw := Load(Param("ldw"), GP64())
	SHLQ(U8(2), ldx)
	SHLQ(U8(2), ldw)
	SHLQ(U8(2), k) // bytes
	xb := rowBases(x, ldx, m)
	wb := rowBases(w, ldw, r)
	acc := make([][]VecVirtual, m)
	for i := range acc {
		acc[i] = make([]VecVirtual, r)
		for j := range acc[i] {
			acc[i][j] = s.vec()
			zero(s, acc[i][j])
		}
	}
	bv := make([]VecVirtual, r)
	for j := range bv {
		bv[j] = s.vec()
	}
	av := [2]VecVirtual{s.vec(), s.vec()}
	vb := 4 * s.width
	step := func(u int) {
		for j := 0; j < r; j++ {
			a := rowAddr(wb, ldw, j)
			a.Disp += u * vb
			VMOVUPS(a, bv[j])
		}
		for i := 0; i < m; i++ {
			a := rowAddr(xb, ldx, i)
			a.Disp += u * vb
			t := av[i%2]
			VMOVUPS(a, t)
			for j := 0; j < r; j++ {
				VFMADD231PS(bv[j], t, acc[i][j])
			}
		}
	}
	advance := func(bytes int) {
		for _, p := range xb {
			ADDQ(U32(bytes), p)
		}
		for _, p := range wb {
			ADDQ(U32(bytes), p)
		}
	}

	Comment("Main loop: two vectors of depth per iteration.")
	Label(name + "_loop2")
	CMPQ(k, U32(2*vb))
	JL(LabelRef(name + "_one"))
	step(0)
	step(1)
	advance(2 * vb)
	SUBQ(U32(2*vb), k)
	JMP(LabelRef(name + "_loop2"))

	Label(name + "_one")
	TESTQ(k, k)
	JZ(LabelRef(name + "_reduce"))
	step(0)

	Label(name + "_reduce")
	y := Load(Param("y"), GP64())
	for i := 0; i < m; i++ {
		for j := 0; j < r; j++ {
			v := acc[i][j]
			xr := v.AsX()
			if s.width == 16 {
				// AVX512F-only (EVEX) steps, as the accumulators may
				// live in Z16-Z31, which VEX instructions cannot name:
				// fold the 256-bit halves, the 128-bit quarters, then
				// the pairs and the lanes of each 128-bit block.
				t := ZMM()
				VSHUFF32X4(U8(0x4E), v, v, t)
				VADDPS(t, v, v)
				VSHUFF32X4(U8(0xB1), v, v, t)
				VADDPS(t, v, v)
				VPERMILPS(U8(0x4E), v, t)
				VADDPS(t, v, v)
				VPERMILPS(U8(0xB1), v, t)
				VADDPS(t, v, v)
			} else {
				h := XMM()
				VEXTRACTF128(U8(1), v, h)
				VADDPS(h, xr, xr)
				VHADDPS(xr, xr, xr)
				VHADDPS(xr, xr, xr)
			}
			VMOVSS(xr, Mem{Base: y, Disp: 4 * (i*r + j)})
		}
	}
	VZEROUPPER()
	RET()
}
