//go:build unix

package gemm

import "golang.org/x/sys/unix"

// processCPU returns the CPU time (user + system) the process has used so
// far, in seconds.
func processCPU() (float64, bool) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, true
}
