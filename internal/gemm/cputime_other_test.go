//go:build !unix

package gemm

// processCPU is not available here; benchmarks report wall-clock rates only.
func processCPU() (float64, bool) { return 0, false }
