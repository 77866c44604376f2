// Command fp8 generates the AVX-512 and AVX2 kernels of
// github.com/dsv3go/dsv3/internal/fp8x. Regenerate from internal/asmgen with
//
//	go run ./fp8 -out ../fp8x/fp8x_amd64.s -stubs ../fp8x/stubs_amd64.go
//
// The kernels:
//
//   - decodeAVX512: E4M3 codes to float32, 64 at a time. A VPERMB puts the
//     codes in the order the unpacks below undo, two VPERMI2B look up the
//     high and low byte of each value's bfloat16 pattern in 128-entry tables
//     (the sign bit is OR-ed back with one VPTERNLOGD), and byte then word
//     unpacks against zero widen the bfloat16 patterns to float32. Exact for
//     all 256 codes (NaN stays NaN, subnormals are exact).
//   - fmaAVX512 (12×32) and fmaAVX2 (6×16): float32 micro-kernels over
//     packed panels, 128-deep K-blocks; after each K-block the tile's sums
//     are multiplied by the row scale and then the column scale and added
//     into C: C[i,j] += (Σ_k a·b)·sa[i]·sb[j].
//   - bf16AVX512 (12×32): the same over bfloat16 pairs with VDPBF16PS,
//     which the Go assembler does not know: it is emitted as bytes (EVEX,
//     register operands only, registers fixed) and verified against GNU as.
//   - encodeAVX512: the saturating round-to-nearest-even E4M3 codes of
//     x/s, 16 at a time, with the integer rounding of the scalar encoder
//     for normal values and a float conversion (round to nearest even) of
//     |x/s|·2^9 for the subnormal range; amaxAVX512: the largest |x| as
//     bits (an integer maximum of the sign-cleared patterns, so that NaN
//     wins).
//   - packPairsAVX512 / packF32AVX512: one 128-code K-block of up to 16
//     weight (or activation) rows into a packed panel, bfloat16 pairs
//     [64][ldd] or float32 [128][ldd]: VPGATHERDD fetches 4 codes of each
//     row, the two table lookups decode them, and VPERMI2B (with zeroing
//     for float32) places the bytes, so the panel comes out transposed
//     without a scalar loop.
//   - gemvAVX2M1..M4, decodeAVX2: the same on AVX2, decoding 8 codes at a
//     time with VPGATHERDD from a 256-entry float32 table (exact, and no
//     float32 subnormals that could slow down older cores).
//   - gemvAVX512M1..M8: weight rows of codes against m <= 8 float32 rows,
//     decoding in registers as decodeAVX512 does; each row's float32 dot
//     products are added to y.
package main

import (
	"flag"
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	flag.Parse() // -out and -stubs are read by avo's build flags
	ConstraintExpr("!purego")
	tables()
	decode()
	fmaKernel(fmaAVX512)
	fmaKernel(fmaAVX2)
	bf16Kernel()
	encode()
	amax()
	packConsts()
	pack(true)
	pack(false)
	for m := 1; m <= 8; m++ {
		gemv(m)
	}
	gemvRows(1, 4)
	gemvRows(2, 2)
	f32Table()
	for m := 1; m <= 4; m++ {
		gemvAVX2(m)
	}
	decodeAVX2()

	Generate()
}

// e4m3 returns the float32 value of an E4M3 code, from the definition.
func e4m3(c int) float32 {
	s := 1.0
	if c&0x80 != 0 {
		s = -1
	}
	e, m := c>>3&15, float64(c&7)
	switch {
	case e == 15 && m == 7:
		return float32(math.NaN())
	case e == 0:
		return float32(s * math.Ldexp(m/8, -6))
	}
	return float32(s * math.Ldexp(1+m/8, e-7))
}

var (
	tabLo, tabHi, permIdx, signMask Mem
)

// tables emits the lookup tables: the low and high bytes of the bfloat16
// pattern of codes 0..127, and the VPERMB index that pre-orders 64 codes.
func tables() {
	var lo, hi [128]byte
	for c := 0; c < 128; c++ {
		b := uint16(math.Float32bits(e4m3(c)) >> 16)
		if c == 0x7F {
			b = 0x7FC0 // canonical quiet NaN
		}
		lo[c], hi[c] = byte(b), byte(b>>8)
	}
	tabLo = GLOBL("e4m3_bf16_lo", RODATA|NOPTR)
	for i, v := range lo {
		DATA(i, U8(v))
	}
	tabHi = GLOBL("e4m3_bf16_hi", RODATA|NOPTR)
	for i, v := range hi {
		DATA(i, U8(v))
	}
	// Position 16l+4q+d receives code 16q+4l+d (a 4×4 transpose of 4-byte
	// groups), so that after the byte and word unpacks output vector q
	// holds codes 16q..16q+15 in order.
	permIdx = GLOBL("e4m3_perm", RODATA|NOPTR)
	for l := 0; l < 4; l++ {
		for q := 0; q < 4; q++ {
			for d := 0; d < 4; d++ {
				DATA(16*l+4*q+d, U8(16*q+4*l+d))
			}
		}
	}
	signMask = GLOBL("e4m3_sign", RODATA|NOPTR)
	DATA(0, U32(0x80808080))
}

// decoder holds the registers of the in-register E4M3 decode.
type decoder struct {
	lo0, lo1, hi0, hi1, perm, zero, sign VecVirtual
}

// newDecoder loads the tables into registers (memory operands in the
// VPERMI2Bs were markedly slower on Zen 4).
func newDecoder() decoder {
	d := decoder{lo0: ZMM(), lo1: ZMM(), hi0: ZMM(), hi1: ZMM(), perm: ZMM(), zero: ZMM(), sign: ZMM()}
	VMOVDQU64(tabLo, d.lo0)
	VMOVDQU64(tabLo.Offset(64), d.lo1)
	VMOVDQU64(tabHi, d.hi0)
	VMOVDQU64(tabHi.Offset(64), d.hi1)
	VMOVDQU64(permIdx, d.perm)
	VPBROADCASTD(signMask, d.sign)
	VPXORD(d.zero, d.zero, d.zero)
	return d
}

// decode64 decodes the 64 codes at src into four vectors of 16 float32
// values each, in order.
func (d decoder) decode64(src Mem) [4]VecVirtual {
	c, l, h := ZMM(), ZMM(), ZMM()
	VPERMB(src, d.perm, c)
	VMOVDQA64(d.lo0, l)
	VPERMT2B(d.lo1, c, l)
	VMOVDQA64(d.hi0, h)
	VPERMT2B(d.hi1, c, h)
	VPTERNLOGD(U8(0xF8), d.sign, c, h) // h |= c & 0x80
	w0, w1 := ZMM(), ZMM()
	VPUNPCKLBW(h, l, w0)
	VPUNPCKHBW(h, l, w1)
	var f [4]VecVirtual
	for i := range f {
		f[i] = ZMM()
	}
	VPUNPCKLWD(w0, d.zero, f[0])
	VPUNPCKHWD(w0, d.zero, f[1])
	VPUNPCKLWD(w1, d.zero, f[2])
	VPUNPCKHWD(w1, d.zero, f[3])
	return f
}

func decode() {
	TEXT("decodeAVX512", NOSPLIT, "func(dst *float32, src *byte, n int)")
	Pragma("noescape")
	Doc("decodeAVX512 sets dst[i] to the value of E4M3 code src[i] for i < 64n.")
	dst := Load(Param("dst"), GP64())
	src := Load(Param("src"), GP64())
	n := Load(Param("n"), GP64())
	d := newDecoder()
	TESTQ(n, n)
	JZ(LabelRef("done"))
	Label("loop")
	f := d.decode64(Mem{Base: src})
	for i := range f {
		VMOVUPS(f[i], Mem{Base: dst, Disp: 64 * i})
	}
	ADDQ(U32(64), src)
	ADDQ(U32(256), dst)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

// fmaISA describes a float32 micro-kernel.
type fmaISA struct {
	name   string
	mr     int // rows of the tile
	lanes  int // float32 lanes per register; the tile is 2·lanes wide
	vec    func() VecVirtual
	unroll int
}

var (
	fmaAVX512 = fmaISA{name: "fmaAVX512", mr: 12, lanes: 16, vec: ZMM, unroll: 4}
	fmaAVX2   = fmaISA{name: "fmaAVX2", mr: 6, lanes: 8, vec: YMM, unroll: 4}
)

// fmaKernel emits the float32 block-scaled micro-kernel. Each K-block's
// scaled sums go into a contiguous tile on the stack, added to C once at the
// end: C's rows are ldc apart, often a multiple of 4 KiB, and flushing
// into them every K-block thrashed one L1 set.
func fmaKernel(s fmaISA) {
	nr := 2 * s.lanes
	TEXT(s.name, 0, "func(kb int, a, b, sa, sb, c *float32, ldc int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s adds Σ_kb (Σ_{k<128} a·b)·sa[i]·sb[j] to the %dx%d tile at c (row stride ldc): a is [kb][128][%d], b [kb][128][%d], sa [kb][%d], sb [kb][%d].",
		s.name, s.mr, nr, s.mr, nr, s.mr, nr))
	tile := AllocLocal(4 * s.mr * nr)
	prefetchC(s.mr, 4*nr)
	kb := Load(Param("kb"), GP64())
	a := Load(Param("a"), GP64())
	b := Load(Param("b"), GP64())
	sa := Load(Param("sa"), GP64())
	sb := Load(Param("sb"), GP64())
	acc := make([]VecVirtual, 2*s.mr)
	for i := range acc {
		acc[i] = s.vec()
	}
	b0, b1 := s.vec(), s.vec()
	VXORPS(b0, b0, b0)
	for i := 0; i < 2*s.mr; i++ {
		VMOVUPS(b0, tile.Offset(4*s.lanes*i))
	}
	TESTQ(kb, kb)
	JZ(LabelRef(s.name + "_done"))
	Label(s.name + "_block")
	for _, r := range acc {
		VXORPS(r, r, r)
	}
	k := GP64()
	MOVQ(U32(128/s.unroll), k)
	Label(s.name + "_k")
	for u := 0; u < s.unroll; u++ {
		VMOVUPS(Mem{Base: b, Disp: 4 * nr * u}, b0)
		VMOVUPS(Mem{Base: b, Disp: 4 * (nr*u + s.lanes)}, b1)
		for i := 0; i < s.mr; i++ {
			t := s.vec()
			VBROADCASTSS(Mem{Base: a, Disp: 4 * (s.mr*u + i)}, t)
			VFMADD231PS(t, b0, acc[2*i])
			VFMADD231PS(t, b1, acc[2*i+1])
		}
	}
	ADDQ(U32(4*s.mr*s.unroll), a)
	ADDQ(U32(4*nr*s.unroll), b)
	DECQ(k)
	JNZ(LabelRef(s.name + "_k"))
	Comment("tile += (acc·sa[i])·sb[j]")
	VMOVUPS(Mem{Base: sb}, b0)
	VMOVUPS(Mem{Base: sb, Disp: 4 * s.lanes}, b1)
	for i := 0; i < s.mr; i++ {
		t := s.vec()
		VBROADCASTSS(Mem{Base: sa, Disp: 4 * i}, t)
		VMULPS(t, acc[2*i], acc[2*i])
		VMULPS(t, acc[2*i+1], acc[2*i+1])
		c0, c1 := s.vec(), s.vec()
		VMOVUPS(tile.Offset(4*nr*i), c0)
		VMOVUPS(tile.Offset(4*(nr*i+s.lanes)), c1)
		VFMADD231PS(b0, acc[2*i], c0)
		VFMADD231PS(b1, acc[2*i+1], c1)
		VMOVUPS(c0, tile.Offset(4*nr*i))
		VMOVUPS(c1, tile.Offset(4*(nr*i+s.lanes)))
	}
	ADDQ(U32(4*s.mr), sa)
	ADDQ(U32(4*nr), sb)
	DECQ(kb)
	JNZ(LabelRef(s.name + "_block"))
	Comment("C += tile")
	c := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	for i := 0; i < s.mr; i++ {
		for h := 0; h < 2; h++ {
			v := s.vec()
			VMOVUPS(tile.Offset(4*(nr*i+s.lanes*h)), v)
			VADDPS(Mem{Base: c, Disp: 4 * s.lanes * h}, v, v)
			VMOVUPS(v, Mem{Base: c, Disp: 4 * s.lanes * h})
		}
		if i+1 < s.mr {
			ADDQ(ldc, c)
		}
	}
	Label(s.name + "_done")
	VZEROUPPER()
	RET()
}

// prefetchC prefetches the rows×width bytes of the C tile (row stride ldc
// floats), which the kernel adds to only at its end: the lines arrive
// while it computes.
func prefetchC(rows, width int) {
	c := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	for i := 0; i < rows; i++ {
		for off := 0; off < width; off += 64 {
			PREFETCHT0(Mem{Base: c, Disp: off})
		}
		if i+1 < rows {
			ADDQ(ldc, c)
		}
	}
}

// raw emits bytes as they are.
func raw(bs ...byte) {
	for _, x := range bs {
		Instruction(&ir.Instruction{Opcode: "BYTE", Operands: []Op{U8(x)}})
	}
}

// vdpbf16ps emits VDPBF16PS zmm(s2), zmm(s1), zmm(d) in Go operand order:
// d.fp32[i] += s1.bf16[2i+1]·s2.bf16[2i+1] + s1.bf16[2i]·s2.bf16[2i]
// (EVEX.512.F3.0F38.W0 52 /r, register form).
func vdpbf16ps(s2, s1, d int) {
	inv := func(x, bit int) byte { return byte(^x>>bit) & 1 }
	p0 := inv(d, 3)<<7 | inv(s2, 4)<<6 | inv(s2, 3)<<5 | inv(d, 4)<<4 | 0b10
	p1 := byte(^s1&0xF)<<3 | 1<<2 | 0b10
	p2 := byte(0b10)<<5 | inv(s1, 4)<<3
	Commentf("VDPBF16PS Z%d, Z%d, Z%d", s2, s1, d)
	raw(0x62, p0, p1, p2, 0x52, 0xC0|byte(d&7)<<3|byte(s2&7))
}

var zmms = []Register{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}

// bf16Kernel emits bf16AVX512, the 12×32 block-scaled micro-kernel on
// bfloat16 pairs: accumulators Z0..Z23 (row i in Z2i, Z2i+1), B in Z24/Z25,
// broadcast A pairs in Z26/Z27.
func bf16Kernel() {
	const mr, nr, unroll = 12, 32, 4
	name := "bf16AVX512"
	TEXT(name, 0, "func(kb int, a, b *uint32, sa, sb, c *float32, ldc int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s adds Σ_kb (Σ_{p<64} a·b as bfloat16 pairs)·sa[i]·sb[j] to the %dx%d tile at c (row stride ldc): a is [kb][64][%d] pairs, b [kb][64][%d], sa [kb][%d], sb [kb][%d].",
		name, mr, nr, mr, nr, mr, nr))
	tile := AllocLocal(4 * mr * nr) // as in fmaKernel
	prefetchC(mr, 4*nr)
	kb := Load(Param("kb"), GP64())
	a := Load(Param("a"), GP64())
	b := Load(Param("b"), GP64())
	sa := Load(Param("sa"), GP64())
	sb := Load(Param("sb"), GP64())
	VPXORD(Z28, Z28, Z28)
	for i := 0; i < 2*mr; i++ {
		VMOVUPS(Z28, tile.Offset(64*i))
	}
	TESTQ(kb, kb)
	JZ(LabelRef(name + "_done"))
	Label(name + "_block")
	for i := 0; i < 2*mr; i++ {
		VPXORD(zmms[i], zmms[i], zmms[i])
	}
	k := GP64()
	MOVQ(U32(64/unroll), k)
	Label(name + "_k")
	for u := 0; u < unroll; u++ {
		VMOVDQU32(Mem{Base: b, Disp: 4 * nr * u}, Z24)
		VMOVDQU32(Mem{Base: b, Disp: 4 * (nr*u + 16)}, Z25)
		for i := 0; i < mr; i++ {
			t := 26 + i%2
			VPBROADCASTD(Mem{Base: a, Disp: 4 * (mr*u + i)}, zmms[t])
			vdpbf16ps(t, 24, 2*i)
			vdpbf16ps(t, 25, 2*i+1)
		}
	}
	ADDQ(U32(4*mr*unroll), a)
	ADDQ(U32(4*nr*unroll), b)
	DECQ(k)
	JNZ(LabelRef(name + "_k"))
	Comment("tile += (acc·sa[i])·sb[j]")
	VMOVUPS(Mem{Base: sb}, Z24)
	VMOVUPS(Mem{Base: sb, Disp: 64}, Z25)
	for i := 0; i < mr; i++ {
		VBROADCASTSS(Mem{Base: sa, Disp: 4 * i}, Z26)
		VMULPS(Z26, zmms[2*i], zmms[2*i])
		VMULPS(Z26, zmms[2*i+1], zmms[2*i+1])
		VMOVUPS(tile.Offset(128*i), Z28)
		VMOVUPS(tile.Offset(128*i+64), Z29)
		VFMADD231PS(Z24, zmms[2*i], Z28)
		VFMADD231PS(Z25, zmms[2*i+1], Z29)
		VMOVUPS(Z28, tile.Offset(128*i))
		VMOVUPS(Z29, tile.Offset(128*i+64))
	}
	ADDQ(U32(4*mr), sa)
	ADDQ(U32(4*nr), sb)
	DECQ(kb)
	JNZ(LabelRef(name + "_block"))
	Comment("C += tile")
	c := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	for i := 0; i < mr; i++ {
		for h := 0; h < 2; h++ {
			VMOVUPS(tile.Offset(128*i+64*h), Z28)
			VADDPS(Mem{Base: c, Disp: 64 * h}, Z28, Z28)
			VMOVUPS(Z28, Mem{Base: c, Disp: 64 * h})
		}
		if i+1 < mr {
			ADDQ(ldc, c)
		}
	}
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// gemvPrefetch is how far ahead of the K-block being decoded the GEMV
// kernels prefetch the row's codes (bytes). Measured on the 18432x7168
// GEMV (bytes per CPU-second, 2 workers): none 7.8, 512 8.7, 1024 9.1,
// 2048 9.15, 4096 8.9 GB/s.
var gemvPrefetch = 1024

// gemv emits gemvAVX512M<m>: for each of rows weight rows r (codes at
// codes + r*ldw), y[r*m+i] += Σ_kb f[kb*m+i]·Σ_{k<128} x[i*ldx+128kb+k]·
// E4M3(codes[r*ldw+128kb+k]) for i < m.
func gemv(m int) { gemvNamed(m, fmt.Sprintf("gemvAVX512M%d", m), gemvPrefetch) }

func gemvNamed(m int, name string, prefetch int) {
	TEXT(name, NOSPLIT, "func(rows, kb int, codes *byte, ldw int, x *float32, ldx int, f, y *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s adds Σ_kb f[kb*%d+i]·Σ_{k<128} x[i*ldx+128kb+k]·E4M3(codes[r*ldw+128kb+k]) to y[r*%d+i] for i < %d and r < rows.", name, m, m, m))
	rows := Load(Param("rows"), GP64())
	codes := Load(Param("codes"), GP64())
	ldx := Load(Param("ldx"), GP64())
	y := Load(Param("y"), GP64())
	SHLQ(U8(2), ldx)
	ldx3 := GP64()
	LEAQ(Mem{Base: ldx, Index: ldx, Scale: 2}, ldx3)
	nacc := 1
	switch {
	case m <= 2:
		nacc = 4
	case m <= 4:
		nacc = 2
	}
	d := newDecoder()
	tot := make([]VecVirtual, m)
	acc := make([][]VecVirtual, m)
	for i := range acc {
		tot[i] = ZMM()
		acc[i] = make([]VecVirtual, nacc)
		for j := range acc[i] {
			acc[i][j] = ZMM()
		}
	}
	TESTQ(rows, rows)
	JZ(LabelRef(name + "_done"))
	Label(name + "_row")
	// Per row: the block count, the K-block pointer into this row's codes,
	// x's row pointers and f restart.
	kb := Load(Param("kb"), GP64())
	cp := GP64()
	MOVQ(codes, cp)
	f := Load(Param("f"), GP64())
	// Row i of x is at x0 + i·ldx: rows 0..3 from x0, 4..7 from x4 = x0 +
	// 4·ldx, with ldx or ldx3 = 3·ldx as the index.
	x0, x4 := GP64(), GP64()
	Load(Param("x"), x0)
	LEAQ(Mem{Base: x0, Index: ldx, Scale: 4}, x4)
	xrow := func(i, disp int) Mem {
		base := x0
		if i >= 4 {
			base, i = x4, i-4
		}
		switch i {
		case 0:
			return Mem{Base: base, Disp: disp}
		case 1:
			return Mem{Base: base, Index: ldx, Scale: 1, Disp: disp}
		case 2:
			return Mem{Base: base, Index: ldx, Scale: 2, Disp: disp}
		}
		return Mem{Base: base, Index: ldx3, Scale: 1, Disp: disp}
	}
	for i := range tot {
		VPXORD(tot[i], tot[i], tot[i])
	}
	TESTQ(kb, kb)
	JZ(LabelRef(name + "_store"))
	Label(name + "_block")
	for i := range acc {
		for _, r := range acc[i] {
			VPXORD(r, r, r)
		}
	}
	if prefetch > 0 {
		PREFETCHT0(Mem{Base: cp, Disp: prefetch})
		PREFETCHT0(Mem{Base: cp, Disp: prefetch + 64})
	}
	for half := 0; half < 2; half++ {
		fv := d.decode64(Mem{Base: cp, Disp: 64 * half})
		for i := 0; i < m; i++ {
			for q := 0; q < 4; q++ {
				VFMADD231PS(xrow(i, 4*(64*half+16*q)), fv[q], acc[i][(4*half+q)%nacc])
			}
		}
	}
	for i := 0; i < m; i++ {
		for j := 1; j < nacc; j++ {
			VADDPS(acc[i][j], acc[i][0], acc[i][0])
		}
		VFMADD231PS_BCST(Mem{Base: f, Disp: 4 * i}, acc[i][0], tot[i])
	}
	ADDQ(U32(512), x0)
	ADDQ(U32(512), x4)
	ADDQ(U32(128), cp)
	ADDQ(U32(4*m), f)
	DECQ(kb)
	JNZ(LabelRef(name + "_block"))
	Label(name + "_store")
	for i := 0; i < m; i++ {
		hsumAdd(tot[i], Mem{Base: y, Disp: 4 * i})
	}
	ldw, _ := Param("ldw").Resolve()
	ADDQ(ldw.Addr, codes)
	ADDQ(U32(4*m), y)
	DECQ(rows)
	JNZ(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// hsumAdd adds the sum of the 16 lanes of z to the float32 at dst.
func hsumAdd(z VecVirtual, dst Mem) {
	yv, xv := YMM(), XMM()
	VEXTRACTF64X4(U8(1), z, yv)
	VADDPS(yv, z.AsY(), yv)
	VEXTRACTF32X4(U8(1), yv, xv)
	VADDPS(xv, yv.AsX(), xv)
	t := XMM()
	VPERMILPS(U8(0x4E), xv, t)
	VADDPS(t, xv, xv)
	VPERMILPS(U8(0xB1), xv, t)
	VADDPS(t, xv, xv)
	VADDSS(dst, xv, xv)
	VMOVSS(xv, dst)
}

// encConst is the table of constants of the encoder, one dword each.
var encConst Mem

func encConsts() {
	encConst = GLOBL("e4m3_enc", RODATA|NOPTR)
	for i, v := range []uint32{
		0x7FFFFFFF,            // 0 abs mask
		0x80,                  // 4 sign bit of a code
		1,                     // 8
		0x7FFFF,               // 12 rounding bias below bit 20
		(127 - 7) << 3,        // 16 exponent rebias, in code units
		math.Float32bits(512), // 20 2^9: subnormal steps
		0x3C800000,            // 24 2^-6, the smallest normal
		0x43E00000,            // 28 448
		0x7F800000,            // 32 +Inf
		0x7E,                  // 36 max finite code
		0x7F,                  // 40 NaN code
	} {
		DATA(4*i, U32(v))
	}
}

func encode() {
	encConsts()
	c := func(i int) Mem { return encConst.Offset(4 * i) }
	TEXT("encodeAVX512", NOSPLIT, "func(dst *byte, src *float32, n int, s float32)")
	Pragma("noescape")
	Doc("encodeAVX512 sets dst[i] to the saturating round-to-nearest-even E4M3 code of src[i]/s for i < 16n.")
	dst := Load(Param("dst"), GP64())
	src := Load(Param("src"), GP64())
	n := Load(Param("n"), GP64())
	sx := Load(Param("s"), XMM())
	sv := ZMM()
	VBROADCASTSS(sx, sv)
	k7e, k7f := ZMM(), ZMM()
	VPBROADCASTD(c(9), k7e)
	VPBROADCASTD(c(10), k7f)
	TESTQ(n, n)
	JZ(LabelRef("encode_done"))
	Label("encode_loop")
	x, v, a, sg, t, u := ZMM(), ZMM(), ZMM(), ZMM(), ZMM(), ZMM()
	VMOVUPS(Mem{Base: src}, x)
	VDIVPS(sv, x, v)
	VPANDD_BCST(c(0), v, a)
	VPSRLD(U8(24), v, sg)
	VPANDD_BCST(c(1), sg, sg)
	Comment("normal range: round the mantissa to 3 bits (ties to even) and rebias")
	VPSRLD(U8(20), a, t)
	VPANDD_BCST(c(2), t, t)
	VPADDD(a, t, t)
	VPADDD_BCST(c(3), t, t)
	VPSRLD(U8(20), t, t)
	VPSUBD_BCST(c(4), t, t)
	Comment("subnormal range: round(|v|·2^9) to nearest even")
	VMULPS_BCST(c(5), a, u)
	VCVTPS2DQ_RN_SAE(u, u)
	VPCMPUD_BCST(U8(1), c(6), a, K1)
	VMOVDQA32(u, K1, t)
	Comment("saturate at 448 (and Inf), NaN to 0x7F")
	VPCMPUD_BCST(U8(5), c(7), a, K2)
	VMOVDQA32(k7e, K2, t)
	VPCMPUD_BCST(U8(6), c(8), a, K3)
	VMOVDQA32(k7f, K3, t)
	VPORD(sg, t, t)
	VPMOVDB(t, Mem{Base: dst})
	ADDQ(U32(64), src)
	ADDQ(U32(16), dst)
	DECQ(n)
	JNZ(LabelRef("encode_loop"))
	Label("encode_done")
	VZEROUPPER()
	RET()
}

func amax() {
	TEXT("amaxAVX512", NOSPLIT, "func(src *float32, n int) uint32")
	Pragma("noescape")
	Doc("amaxAVX512 returns the largest of the sign-cleared bit patterns of src[i], i < 16n (NaN beats Inf beats every finite value).")
	src := Load(Param("src"), GP64())
	n := Load(Param("n"), GP64())
	m, t := ZMM(), ZMM()
	VPXORD(m, m, m)
	TESTQ(n, n)
	JZ(LabelRef("amax_done"))
	Label("amax_loop")
	VMOVDQU32(Mem{Base: src}, t)
	VPANDD_BCST(encConst, t, t)
	VPMAXUD(t, m, m)
	ADDQ(U32(64), src)
	DECQ(n)
	JNZ(LabelRef("amax_loop"))
	Label("amax_done")
	y, x, x2 := YMM(), XMM(), XMM()
	VEXTRACTI64X4(U8(1), m, y)
	VPMAXUD(y, m.AsY(), y)
	VEXTRACTI128(U8(1), y, x)
	VPMAXUD(x, y.AsX(), x)
	VPSHUFD(U8(0x4E), x, x2)
	VPMAXUD(x2, x, x)
	VPSHUFD(U8(0xB1), x, x2)
	VPMAXUD(x2, x, x)
	r := GP32()
	VMOVD(x, r)
	Store(r, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

var packIdx Mem

// packConsts emits the byte-placement indices of the pack kernels. Within
// each dword d of the gathered vector (4 codes of row d), L and H hold the
// low and high bytes of the codes' bfloat16 patterns; VPERMI2B picks
// bytes from L (index < 64) and H (index >= 64).
func packConsts() {
	packIdx = GLOBL("e4m3_pack", RODATA|NOPTR)
	off := 0
	put := func(f func(d, b int) int) {
		for d := 0; d < 16; d++ {
			for b := 0; b < 4; b++ {
				DATA(off+4*d+b, U8(f(d, b)))
			}
		}
		off += 64
	}
	// Pairs: P0 = [L0 H0 L1 H1], P1 = [L2 H2 L3 H3] per dword.
	put(func(d, b int) int { return 4*d + b/2 + 64*(b%2) })
	put(func(d, b int) int { return 4*d + 2 + b/2 + 64*(b%2) })
	// Float32: F_c = [0 0 L_c H_c] (bytes 0, 1 zeroed by the mask).
	for c := 0; c < 4; c++ {
		put(func(d, b int) int {
			if b < 2 {
				return 0
			}
			return 4*d + c + 64*(b-2)
		})
	}
	for j := 0; j < 16; j++ { // iota, for the gather offsets
		DATA(off+4*j, U32(j))
	}
}

// pack emits packPairsAVX512 (pairs) or packF32AVX512.
func pack(pairs bool) {
	name, sig, what := "packF32AVX512", "func(dst *float32, ldd int, codes *byte, ldw int, rows int)", "float32 values at dst[k*ldd+j]"
	if pairs {
		name, sig, what = "packPairsAVX512", "func(dst *uint32, ldd int, codes *byte, ldw int, rows int)", "bfloat16 pairs (k = 2p low, 2p+1 high) at dst[p*ldd+j]"
	}
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(fmt.Sprintf("%s writes the 128 codes at codes + j*ldw, j < rows <= 16, as %s.", name, what))
	dst := Load(Param("dst"), GP64())
	ldd := Load(Param("ldd"), GP64())
	codes := Load(Param("codes"), GP64())
	ldw, rows := GP64(), GP64()
	Load(Param("ldw"), ldw)
	Load(Param("rows"), rows)
	SHLQ(U8(2), ldd)
	d := newDecoder()
	// K1: the rows' lanes; K2: bytes 2 and 3 of every dword.
	all, mk := GP64(), GP64()
	MOVQ(U32(0xFFFF), all)
	BZHIQ(rows, all, mk)
	KMOVW(mk.As32(), K1)
	cc := GP64()
	MOVQ(U64(0xCCCCCCCCCCCCCCCC), cc)
	KMOVQ(cc, K2)
	// Gather offsets j*ldw.
	idx := ZMM()
	VPBROADCASTD(ldw.As32(), idx)
	VPMULLD(packIdx.Offset(6*64), idx, idx)
	ldd3 := GP64()
	LEAQ(Mem{Base: ldd, Index: ldd, Scale: 2}, ldd3)
	t := GP64()
	MOVQ(U32(Block4), t)
	Label(name + "_loop")
	g := ZMM()
	VPXORD(g, g, g)
	KMOVW(K1, K3) // the gather clears its mask
	VPGATHERDD(Mem{Base: codes, Index: idx, Scale: 1}, K3, g)
	l, h := ZMM(), ZMM()
	VMOVDQA64(d.lo0, l)
	VPERMT2B(d.lo1, g, l)
	VMOVDQA64(d.hi0, h)
	VPERMT2B(d.hi1, g, h)
	VPTERNLOGD(U8(0xF8), d.sign, g, h) // h |= g & 0x80
	if pairs {
		p0, p1 := ZMM(), ZMM()
		VMOVDQU64(packIdx, p0)
		VPERMI2B(h, l, p0)
		VMOVDQU32(p0, K1, Mem{Base: dst})
		VMOVDQU64(packIdx.Offset(64), p1)
		VPERMI2B(h, l, p1)
		VMOVDQU32(p1, K1, Mem{Base: dst, Index: ldd, Scale: 1})
		LEAQ(Mem{Base: dst, Index: ldd, Scale: 2}, dst)
	} else {
		for c := 0; c < 4; c++ {
			f := ZMM()
			VMOVDQU64(packIdx.Offset(64*(2+c)), f)
			VPERMI2B_Z(h, l, K2, f)
			addr := []Mem{{Base: dst}, {Base: dst, Index: ldd, Scale: 1}, {Base: dst, Index: ldd, Scale: 2}, {Base: dst, Index: ldd3, Scale: 1}}[c]
			VMOVDQU32(f, K1, addr)
		}
		LEAQ(Mem{Base: dst, Index: ldd, Scale: 4}, dst)
	}
	ADDQ(U32(4), codes)
	DECQ(t)
	JNZ(LabelRef(name + "_loop"))
	VZEROUPPER()
	RET()
}

// Block4 is the number of 4-code groups in a K-block.
const Block4 = 128 / 4

// gemvRows emits gemvAVX512M<m>R<r>: gemvAVX512M<m> for rows a multiple of
// r, taking r weight rows at a time. The r rows are r concurrent memory
// streams (one stream per core could not keep the memory busy) and share
// each load of x.
func gemvRows(m, r int) {
	name := fmt.Sprintf("gemvAVX512M%dR%d", m, r)
	TEXT(name, NOSPLIT, "func(rows, kb int, codes *byte, ldw int, x *float32, ldx int, f, y *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is gemvAVX512M%d for rows a multiple of %d, %d rows at a time.", name, m, r, r))
	rows := Load(Param("rows"), GP64())
	codes := Load(Param("codes"), GP64())
	ldw := GP64()
	Load(Param("ldw"), ldw)
	ldx := Load(Param("ldx"), GP64())
	y := Load(Param("y"), GP64())
	SHLQ(U8(2), ldx)
	ldw3 := GP64()
	LEAQ(Mem{Base: ldw, Index: ldw, Scale: 2}, ldw3)
	row := func(base Register, i int, disp int) Mem {
		switch i {
		case 0:
			return Mem{Base: base, Disp: disp}
		case 1:
			return Mem{Base: base, Index: ldw, Scale: 1, Disp: disp}
		case 2:
			return Mem{Base: base, Index: ldw, Scale: 2, Disp: disp}
		}
		return Mem{Base: base, Index: ldw3, Scale: 1, Disp: disp}
	}
	d := newDecoder()
	tot := make([][]VecVirtual, r)
	acc := make([][]VecVirtual, r)
	for j := range tot {
		tot[j], acc[j] = make([]VecVirtual, m), make([]VecVirtual, m)
		for i := range tot[j] {
			tot[j][i], acc[j][i] = ZMM(), ZMM()
		}
	}
	TESTQ(rows, rows)
	JZ(LabelRef(name + "_done"))
	Label(name + "_rows")
	kb := Load(Param("kb"), GP64())
	cp := GP64()
	MOVQ(codes, cp)
	f := Load(Param("f"), GP64())
	xp := GP64()
	Load(Param("x"), xp)
	for j := range tot {
		for _, t := range tot[j] {
			VPXORD(t, t, t)
		}
	}
	TESTQ(kb, kb)
	JZ(LabelRef(name + "_store"))
	Label(name + "_block")
	for j := range acc {
		for _, a := range acc[j] {
			VPXORD(a, a, a)
		}
	}
	for j := 0; j < r; j++ {
		PREFETCHT0(row(cp, j, gemvPrefetch))
		PREFETCHT0(row(cp, j, gemvPrefetch+64))
	}
	for half := 0; half < 2; half++ {
		xv := make([][4]VecVirtual, m)
		for i := range xv {
			for q := range xv[i] {
				xv[i][q] = ZMM()
				addr := Mem{Base: xp, Disp: 4 * (64*half + 16*q)}
				if i == 1 {
					addr = Mem{Base: xp, Index: ldx, Scale: 1, Disp: 4 * (64*half + 16*q)}
				}
				VMOVUPS(addr, xv[i][q])
			}
		}
		for j := 0; j < r; j++ {
			fv := d.decode64(row(cp, j, 64*half))
			for i := 0; i < m; i++ {
				for q := 0; q < 4; q++ {
					VFMADD231PS(xv[i][q], fv[q], acc[j][i])
				}
			}
		}
	}
	for j := 0; j < r; j++ {
		for i := 0; i < m; i++ {
			VFMADD231PS_BCST(Mem{Base: f, Disp: 4 * i}, acc[j][i], tot[j][i])
		}
	}
	ADDQ(U32(512), xp)
	ADDQ(U32(128), cp)
	ADDQ(U32(4*m), f)
	DECQ(kb)
	JNZ(LabelRef(name + "_block"))
	Label(name + "_store")
	for j := 0; j < r; j++ {
		for i := 0; i < m; i++ {
			hsumAdd(tot[j][i], Mem{Base: y, Disp: 4 * (j*m + i)})
		}
	}
	LEAQ(Mem{Base: codes, Index: ldw, Scale: uint8(r)}, codes)
	ADDQ(U32(4*m*r), y)
	SUBQ(U32(r), rows)
	JNZ(LabelRef(name + "_rows"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

var f32Tab Mem

// f32Table emits the float32 value of every E4M3 code.
func f32Table() {
	f32Tab = GLOBL("e4m3_f32", RODATA|NOPTR)
	for c := 0; c < 256; c++ {
		b := math.Float32bits(e4m3(c))
		if c&0x7F == 0x7F {
			b = 0x7FC00000 | uint32(c&0x80)<<24
		}
		DATA(4*c, U32(b))
	}
}

// gather8 decodes the 8 codes at src into a YMM register of float32 values.
func gather8(src Mem, tab GPVirtual) VecVirtual {
	idx, mask, v := YMM(), YMM(), YMM()
	VPMOVZXBD(src, idx)
	VPCMPEQD(mask, mask, mask)
	VPXOR(v, v, v)
	VPGATHERDD(mask, Mem{Base: tab, Index: idx, Scale: 4}, v)
	return v
}

// gemvAVX2 emits gemvAVX2M<m>, gemvAVX512M<m> for AVX2.
func gemvAVX2(m int) {
	name := fmt.Sprintf("gemvAVX2M%d", m)
	TEXT(name, NOSPLIT, "func(rows, kb int, codes *byte, ldw int, x *float32, ldx int, f, y *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s adds Σ_kb f[kb*%d+i]·Σ_{k<128} x[i*ldx+128kb+k]·E4M3(codes[r*ldw+128kb+k]) to y[r*%d+i] for i < %d and r < rows.", name, m, m, m))
	rows := Load(Param("rows"), GP64())
	codes := Load(Param("codes"), GP64())
	ldx := GP64()
	Load(Param("ldx"), ldx)
	y := Load(Param("y"), GP64())
	SHLQ(U8(2), ldx)
	tab := GP64()
	LEAQ(f32Tab, tab)
	ldx3 := GP64()
	LEAQ(Mem{Base: ldx, Index: ldx, Scale: 2}, ldx3)
	xrow := func(base Register, i, disp int) Mem {
		switch i {
		case 0:
			return Mem{Base: base, Disp: disp}
		case 1:
			return Mem{Base: base, Index: ldx, Scale: 1, Disp: disp}
		case 2:
			return Mem{Base: base, Index: ldx, Scale: 2, Disp: disp}
		}
		return Mem{Base: base, Index: ldx3, Scale: 1, Disp: disp}
	}
	tot := make([]VecVirtual, m)
	acc := make([][2]VecVirtual, m)
	for i := range tot {
		tot[i] = YMM()
		acc[i] = [2]VecVirtual{YMM(), YMM()}
	}
	TESTQ(rows, rows)
	JZ(LabelRef(name + "_done"))
	Label(name + "_row")
	kb := Load(Param("kb"), GP64())
	cp := GP64()
	MOVQ(codes, cp)
	f := Load(Param("f"), GP64())
	xp := GP64()
	Load(Param("x"), xp)
	for i := range tot {
		VXORPS(tot[i], tot[i], tot[i])
	}
	TESTQ(kb, kb)
	JZ(LabelRef(name + "_store"))
	Label(name + "_block")
	for i := range acc {
		VXORPS(acc[i][0], acc[i][0], acc[i][0])
		VXORPS(acc[i][1], acc[i][1], acc[i][1])
	}
	PREFETCHT0(Mem{Base: cp, Disp: gemvPrefetch})
	PREFETCHT0(Mem{Base: cp, Disp: gemvPrefetch + 64})
	for g := 0; g < 16; g++ {
		v := gather8(Mem{Base: cp, Disp: 8 * g}, tab)
		for i := 0; i < m; i++ {
			VFMADD231PS(xrow(xp, i, 32*g), v, acc[i][g%2])
		}
	}
	for i := 0; i < m; i++ {
		VADDPS(acc[i][1], acc[i][0], acc[i][0])
		t := YMM()
		VBROADCASTSS(Mem{Base: f, Disp: 4 * i}, t)
		VFMADD231PS(t, acc[i][0], tot[i])
	}
	ADDQ(U32(512), xp)
	ADDQ(U32(128), cp)
	ADDQ(U32(4*m), f)
	DECQ(kb)
	JNZ(LabelRef(name + "_block"))
	Label(name + "_store")
	for i := 0; i < m; i++ {
		xv, t := XMM(), XMM()
		VEXTRACTF128(U8(1), tot[i], xv)
		VADDPS(xv, tot[i].AsX(), xv)
		VPERMILPS(U8(0x4E), xv, t)
		VADDPS(t, xv, xv)
		VPERMILPS(U8(0xB1), xv, t)
		VADDPS(t, xv, xv)
		VADDSS(Mem{Base: y, Disp: 4 * i}, xv, xv)
		VMOVSS(xv, Mem{Base: y, Disp: 4 * i})
	}
	ldw, _ := Param("ldw").Resolve()
	ADDQ(ldw.Addr, codes)
	ADDQ(U32(4*m), y)
	DECQ(rows)
	JNZ(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// decodeAVX2 emits decodeAVX2: decodeAVX512 for AVX2, 32 codes a step.
func decodeAVX2() {
	TEXT("decodeAVX2", NOSPLIT, "func(dst *float32, src *byte, n int)")
	Pragma("noescape")
	Doc("decodeAVX2 sets dst[i] to the value of E4M3 code src[i] for i < 32n.")
	dst := Load(Param("dst"), GP64())
	src := Load(Param("src"), GP64())
	n := Load(Param("n"), GP64())
	tab := GP64()
	LEAQ(f32Tab, tab)
	TESTQ(n, n)
	JZ(LabelRef("decodeAVX2_done"))
	Label("decodeAVX2_loop")
	for g := 0; g < 4; g++ {
		v := gather8(Mem{Base: src, Disp: 8 * g}, tab)
		VMOVUPS(v, Mem{Base: dst, Disp: 32 * g})
	}
	ADDQ(U32(32), src)
	ADDQ(U32(128), dst)
	DECQ(n)
	JNZ(LabelRef("decodeAVX2_loop"))
	Label("decodeAVX2_done")
	VZEROUPPER()
	RET()
}
