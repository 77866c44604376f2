package fp8x

// The AVX-512 and AVX2 kernels are generated with avo from the generator in
// internal/asmgen/fp8 (its own module, so the library does not depend on avo).
//go:generate go run -C ../asmgen ./fp8 -pkg fp8x -out ../fp8x/fp8x_amd64.s -stubs ../fp8x/stubs_amd64.go
