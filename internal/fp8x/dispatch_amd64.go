//go:build !purego

package fp8x

func archSets() []*Set { return nil }
