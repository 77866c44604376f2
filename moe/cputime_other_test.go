//go:build !unix

package moe

func cpuSeconds() float64 { return 0 }
