//go:build !amd64 || purego

package fp8x

// AMX reports what the dispatcher found about AMX; without the amd64
// assembly nothing is checked.
var AMX = "not checked (no amd64 assembly in this build)"

func archSets() []*Set { return nil }
