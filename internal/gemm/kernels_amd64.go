//go:build !purego

package gemm

import "golang.org/x/sys/cpu"

// archKernelSets returns the assembly kernel sets this CPU and OS support
// (golang.org/x/sys/cpu checks both the CPUID bits and that the OS saves the
// vector state), fastest first.
func archKernelSets() []*kernelSet {
	var sets []*kernelSet
	if cpu.X86.HasAVX512F {
		sets = append(sets, avx512Kernels())
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		sets = append(sets, avx2Kernels())
	}
	return sets
}

// avx512Kernels is the AVX512F set: 14×32 tiles, 16×16 transposes.
func avx512Kernels() *kernelSet {
	return &kernelSet{
		name: "avx512",
		mr:   14, nr: 32,
		micro: []microKernel{nil,
			kernAVX512Rows1, kernAVX512Rows2, kernAVX512Rows3, kernAVX512Rows4,
			kernAVX512Rows5, kernAVX512Rows6, kernAVX512Rows7, kernAVX512Rows8,
			kernAVX512Rows9, kernAVX512Rows10, kernAVX512Rows11, kernAVX512Rows12,
			kernAVX512Rows13, kernAVX512Rows14,
		},
		kc: 512, nc: 1024,
		lanes:    16,
		packRows: packRowsAVX512,
		packCols: packColsAVX512,
		dot4:     dotAVX512R4, dot1: dotAVX512R1,
		axpy4: axpyAVX512R4, axpy1: axpyAVX512R1,
		small: []smallKernels{2: {4, smallAVX512M2R4, smallAVX512M2R1},
			3: {4, smallAVX512M3R4, smallAVX512M3R1},
			4: {4, smallAVX512M4R4, smallAVX512M4R1},
			5: {4, smallAVX512M5R4, smallAVX512M5R1},
			6: {4, smallAVX512M6R4, smallAVX512M6R1},
			7: {3, smallAVX512M7R3, smallAVX512M7R1},
			8: {3, smallAVX512M8R3, smallAVX512M8R1},
		},
	}
}

// avx2Kernels is the AVX2+FMA set: 6×16 tiles, 8×8 transposes.
func avx2Kernels() *kernelSet {
	return &kernelSet{
		name: "avx2",
		mr:   6, nr: 16,
		micro: []microKernel{nil,
			kernAVX2Rows1, kernAVX2Rows2, kernAVX2Rows3,
			kernAVX2Rows4, kernAVX2Rows5, kernAVX2Rows6,
		},
		kc: 512, nc: 1024,
		lanes:    8,
		packRows: packRowsAVX2,
		packCols: packColsAVX2,
		dot4:     dotAVX2R4, dot1: dotAVX2R1,
		axpy4: axpyAVX2R4, axpy1: axpyAVX2R1,
		small: []smallKernels{2: {4, smallAVX2M2R4, smallAVX2M2R1},
			3: {3, smallAVX2M3R3, smallAVX2M3R1},
			4: {2, smallAVX2M4R2, smallAVX2M4R1},
			5: {2, smallAVX2M5R2, smallAVX2M5R1},
			6: {2, smallAVX2M6R2, smallAVX2M6R1},
			7: {1, smallAVX2M7R1, smallAVX2M7R1},
			8: {1, smallAVX2M8R1, smallAVX2M8R1},
		},
	}
}

// zeroRow is the source of the zero padding lanes of packRowsAVX512.
var zeroRow [1024]float32

// packRowsAVX512 is packRows with the depths in whole 16-blocks transposed
// in registers, 16 destination lanes at a time.
func packRowsAVX512(dst, src []float32, ld, rows, k, stride int) {
	kv := k &^ 15
	if kv > len(zeroRow) {
		kv = 0
	}
	if kv > 0 {
		dst = dst[:k*stride]
		var ptrs [16]*float32
		for i0 := 0; i0 < stride; i0 += 16 {
			lanes := min(16, stride-i0)
			for l := range ptrs {
				if i := i0 + l; i < rows {
					ptrs[l] = &src[i*ld]
				} else {
					ptrs[l] = &zeroRow[0]
				}
			}
			packT16AVX512(kv, &ptrs, &dst[i0], stride, uint16(1)<<lanes-1)
		}
	}
	packRowsFrom(dst, src, ld, rows, kv, k, stride)
}

// packRowsAVX2 is packRows with whole 8-blocks of depths transposed in
// registers, 8 lanes at a time. packT8AVX2 stores 8 lanes even when stride
// is smaller (an A panel of up to 6 rows); the extra lanes land on the next
// depth, rewritten by the next store, so the last block is left to Go
// (which rewrites the lanes it spilled onto) and strides below 4 (where a
// store could reach two depths ahead) are packed in Go.
func packRowsAVX2(dst, src []float32, ld, rows, k, stride int) {
	kv := k &^ 7
	switch {
	case stride%8 == 0:
	case stride >= 4 && stride < 8:
		kv = (k - 1) &^ 7
	default:
		kv = 0
	}
	if kv > len(zeroRow) {
		kv = 0
	}
	if kv > 0 {
		dst = dst[:k*stride]
		var ptrs [8]*float32
		for i0 := 0; i0 < stride; i0 += 8 {
			for l := range ptrs {
				if i := i0 + l; i < rows {
					ptrs[l] = &src[i*ld]
				} else {
					ptrs[l] = &zeroRow[0]
				}
			}
			packT8AVX2(kv, &ptrs, &dst[i0], stride)
		}
	}
	packRowsFrom(dst, src, ld, rows, kv, k, stride)
}

// packColsAVX512 is packCols with one or two masked 16-lane loads and
// stores per depth, for panels up to 32 wide.
func packColsAVX512(dst, src []float32, ld, cols, k, stride int) {
	if stride > 32 || k == 0 {
		packCols(dst, src, ld, cols, k, stride)
		return
	}
	dst = dst[:k*stride]
	src = src[:(k-1)*ld+cols]
	lanes := func(n int) uint16 { return uint16(1)<<min(max(n, 0), 16) - 1 }
	packCopyAVX512(k, &src[0], ld, &dst[0], stride, lanes(cols), lanes(cols-16), lanes(stride), lanes(stride-16))
}

// packColsAVX2 is packCols with masked 8-lane loads and unmasked stores,
// for destination strides of 16 or from 4 to 8 (an A panel of up to 6
// rows, whose last depth is left to Go: see packCopyAVX2).
func packColsAVX2(dst, src []float32, ld, cols, k, stride int) {
	kv := k
	switch {
	case stride == 16 || stride == 8:
	case stride >= 4 && stride < 8:
		kv = k - 1
	default:
		kv = 0
	}
	if kv > 0 {
		var m [16]int32
		for j := 0; j < cols && j < 16; j++ {
			m[j] = -1
		}
		dst = dst[:k*stride]
		src = src[:(k-1)*ld+cols]
		wide := 0
		if stride == 16 {
			wide = 1
		}
		packCopyAVX2(kv, &src[0], ld, &dst[0], stride, &m, wide)
	}
	if kv < k {
		packCols(dst[kv*stride:], src[kv*ld:], ld, cols, k-kv, stride)
	}
}
