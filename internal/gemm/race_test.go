//go:build race

package gemm

// raceEnabled trims the heaviest test grids under the race detector, which
// slows the Go parts (packing, reference loops) about tenfold.
const raceEnabled = true
