//go:build race

package fp8x

const raceEnabled = true
