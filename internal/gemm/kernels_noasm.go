//go:build purego || !amd64

package gemm

// archKernelSets returns no assembly kernels: this build uses pure Go.
func archKernelSets() []*kernelSet { return nil }
