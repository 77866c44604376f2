//go:build race

package tokenizer

// raceEnabled shrinks the exhaustive tests under the race detector, which
// slows this single-goroutine code about tenfold without finding more.
const raceEnabled = true
