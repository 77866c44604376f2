package gemm

// The AVX-512 and AVX2 kernels are generated with avo from the generator in
// internal/asmgen/gemm (its own module, so the library does not depend on avo).
//go:generate go run -C ../asmgen ./gemm -pkg gemm -out ../gemm/gemm_amd64.s -stubs ../gemm/gemm_stubs_amd64.go
