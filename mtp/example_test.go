package mtp_test

import (
	"fmt"

	"github.com/dsv3go/dsv3/mtp"
)

// A speculative-decoding step in its greedy form: the module drafted token
// 7; the main model's logits at that position decide.
func ExampleVerifyGreedy() {
	var acc mtp.Acceptance
	mainLogits := []float32{0.1, 0.3, 0, 0, 0, 0, 0, 2.5}
	ok, tok := mtp.VerifyGreedy(7, mainLogits)
	acc.Add(ok)
	fmt.Println(ok, tok, acc.Rate())
	// Output: true 7 1
}
