//go:build !amd64 || purego

package fp8x

func archSets() []*Set { return nil }
