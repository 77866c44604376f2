//go:build !purego

package fp8x

import (
	"math"
	"syscall"

	"golang.org/x/sys/cpu"
)

// AMX reports what the dispatcher found about AMX: "absent" (no AMX-BF16
// in CPUID, as on the AMD machine this package was developed on), "no
// permission" (the kernel refused ARCH_REQ_XCOMP_PERM), or "permitted". No
// set uses AMX yet: there is no AMX kernel, because none could be tested
// here, so even a permitted AMX falls back to AVX-512.
var AMX = detectAMX()

func detectAMX() string {
	if !cpu.X86.HasAMXTile || !cpu.X86.HasAMXBF16 {
		return "absent"
	}
	// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): without it the
	// first tile instruction raises SIGILL, which recover cannot catch.
	const sysArchPrctl, archReqXcompPerm, xtileData = 158, 0x1023, 18
	if _, _, e := syscall.RawSyscall(sysArchPrctl, archReqXcompPerm, xtileData, 0); e != 0 {
		return "no permission"
	}
	return "permitted"
}

func archSets() []*Set {
	var sets []*Set
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VBMI && cpu.X86.HasAVX512VL {
		s := &Set{
			Name:         "avx512",
			Decode:       decodeAVX512s,
			EncodeScaled: encodeAVX512s,
			Amax:         amaxAVX512s,
			MR:           12, NR: 32,
			FMA:       fmaAVX512s,
			Gemv:      gemvAVX512s,
			PackF32:   packF32AVX512s,
			PackPairs: packPairsAVX512s,
		}
		if cpu.X86.HasAVX512BF16 {
			s.Name = "avx512bf16"
			s.BMR, s.BNR, s.BF16 = 12, 32, bf16AVX512s
		}
		sets = append(sets, s)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		sets = append(sets, &Set{
			Name:         "avx2",
			Decode:       decodeAVX2s,
			EncodeScaled: encodeScaledGo,
			Amax:         amax,
			MR:           6, NR: 16,
			FMA:       fmaAVX2s,
			Gemv:      gemvAVX2s,
			PackF32:   packF32Go,
			PackPairs: packPairsGo,
		})
	}
	return sets
}

// decodeChunk bounds the codes one assembly call decodes (assembly is not
// preempted; this is a few microseconds).
const decodeChunk = 1 << 14

func decodeAVX512s(dst []float32, src []byte) {
	_ = dst[:len(src)]
	for len(src) >= 64 {
		n := min(len(src), decodeChunk) / 64
		decodeAVX512(&dst[0], &src[0], n)
		dst, src = dst[64*n:], src[64*n:]
	}
	decodeGo(dst, src)
}

func encodeAVX512s(dst []byte, src []float32, s float32) {
	_ = dst[:len(src)]
	for len(src) >= 16 {
		n := min(len(src), decodeChunk) / 16
		encodeAVX512(&dst[0], &src[0], n, s)
		dst, src = dst[16*n:], src[16*n:]
	}
	encodeScaledGo(dst, src, s)
}

func amaxAVX512s(x []float32) float32 {
	var m uint32
	for len(x) >= 16 {
		n := min(len(x), decodeChunk) / 16
		m = max(m, amaxAVX512(&x[0], n))
		x = x[16*n:]
	}
	return math.Float32frombits(max(m, math.Float32bits(amax(x))))
}

func fmaAVX512s(kb int, a, b, sa, sb, c []float32, ldc int) {
	const mr, nr = 12, 32
	_, _, _, _, _ = a[kb*Block*mr-1], b[kb*Block*nr-1], sa[kb*mr-1], sb[kb*nr-1], c[(mr-1)*ldc+nr-1]
	fmaAVX512(kb, &a[0], &b[0], &sa[0], &sb[0], &c[0], ldc)
}

func fmaAVX2s(kb int, a, b, sa, sb, c []float32, ldc int) {
	const mr, nr = 6, 16
	_, _, _, _, _ = a[kb*Block*mr-1], b[kb*Block*nr-1], sa[kb*mr-1], sb[kb*nr-1], c[(mr-1)*ldc+nr-1]
	fmaAVX2(kb, &a[0], &b[0], &sa[0], &sb[0], &c[0], ldc)
}

func bf16AVX512s(kb int, a, b []uint32, sa, sb, c []float32, ldc int) {
	const mr, nr = 12, 32
	_, _, _, _, _ = a[kb*Block/2*mr-1], b[kb*Block/2*nr-1], sa[kb*mr-1], sb[kb*nr-1], c[(mr-1)*ldc+nr-1]
	bf16AVX512(kb, &a[0], &b[0], &sa[0], &sb[0], &c[0], ldc)
}

var gemvAVX512 = [...]func(rows, kb int, codes *byte, ldw int, x *float32, ldx int, f, y *float32){
	nil, gemvAVX512M1, gemvAVX512M2, gemvAVX512M3, gemvAVX512M4,
	gemvAVX512M5, gemvAVX512M6, gemvAVX512M7, gemvAVX512M8,
}

func gemvAVX512s(m, rows, kb int, codes []byte, ldw int, x []float32, ldx int, f, y []float32) {
	if rows == 0 || kb == 0 {
		return
	}
	_, _, _, _ = codes[(rows-1)*ldw+kb*Block-1], x[(m-1)*ldx+kb*Block-1], f[kb*m-1], y[rows*m-1]
	// One and two rows of x take several weight rows at a time (several
	// memory streams per core); the remaining rows go one at a time.
	done := 0
	switch {
	case m == 1 && rows >= 4:
		done = rows &^ 3
		gemvAVX512M1R4(done, kb, &codes[0], ldw, &x[0], ldx, &f[0], &y[0])
	case m == 2 && rows >= 2:
		done = rows &^ 1
		gemvAVX512M2R2(done, kb, &codes[0], ldw, &x[0], ldx, &f[0], &y[0])
	}
	if done < rows {
		gemvAVX512[m](rows-done, kb, &codes[done*ldw], ldw, &x[0], ldx, &f[0], &y[done*m])
	}
}

func packF32AVX512s(dst []float32, ldd int, codes []byte, ldw, rows int) {
	if rows <= 0 {
		return
	}
	_, _ = dst[(Block-1)*ldd+rows-1], codes[(rows-1)*ldw+Block-1]
	packF32AVX512(&dst[0], ldd, &codes[0], ldw, rows)
}

func packPairsAVX512s(dst []uint32, ldd int, codes []byte, ldw, rows int) {
	if rows <= 0 {
		return
	}
	_, _ = dst[(Block/2-1)*ldd+rows-1], codes[(rows-1)*ldw+Block-1]
	packPairsAVX512(&dst[0], ldd, &codes[0], ldw, rows)
}

func decodeAVX2s(dst []float32, src []byte) {
	_ = dst[:len(src)]
	for len(src) >= 32 {
		n := min(len(src), decodeChunk) / 32
		decodeAVX2(&dst[0], &src[0], n)
		dst, src = dst[32*n:], src[32*n:]
	}
	decodeGo(dst, src)
}

var gemvAVX2 = [...]func(rows, kb int, codes *byte, ldw int, x *float32, ldx int, f, y *float32){
	nil, gemvAVX2M1, gemvAVX2M2, gemvAVX2M3, gemvAVX2M4,
}

// gemvAVX2s runs the AVX2 kernels for up to 4 rows of x and the Go kernel
// beyond (16 YMM registers hold no more accumulators).
func gemvAVX2s(m, rows, kb int, codes []byte, ldw int, x []float32, ldx int, f, y []float32) {
	if rows == 0 || kb == 0 {
		return
	}
	if m > 4 {
		gemvGo(m, rows, kb, codes, ldw, x, ldx, f, y)
		return
	}
	_, _, _, _ = codes[(rows-1)*ldw+kb*Block-1], x[(m-1)*ldx+kb*Block-1], f[kb*m-1], y[rows*m-1]
	gemvAVX2[m](rows, kb, &codes[0], ldw, &x[0], ldx, &f[0], &y[0])
}
