package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/dsv3go/dsv3/examples/deepseekv3/tokenizer"
)

// The example tokenizer in testdata/example has DeepSeek-V3's pre-tokenizer
// and four of its added tokens over a small byte-level vocabulary; the ids
// below are the ones Hugging Face tokenizers gives (testdata/hf_reference.json).
func Example() {
	tok, err := tokenizer.Load("testdata/example") // tokenizer.json and tokenizer_config.json
	if err != nil {
		log.Fatal(err)
	}
	text := "<｜User｜>The cat ate 12345 fish.<｜Assistant｜>"
	ids := tok.Encode(text)
	fmt.Println(ids)
	fmt.Printf("%q\n", tok.Tokens(text))

	// BOS is prepended as tokenizer_config.json asks (add_bos_token).
	withBOS := tok.EncodeWithSpecialTokens("Hi")
	bos, _ := tok.BOS()
	fmt.Println(withBOS[0] == bos, tok.Decode(withBOS, false), tok.Decode(withBOS, true))

	fmt.Println(tok.Decode(ids, false) == text)
	// Output:
	// [477 286 274 256 116 101 32 49 265 266 272 105 115 104 46 478]
	// ["<｜User｜>" "The" "Ġcat" "Ġa" "t" "e" "Ġ" "1" "23" "45" "Ġf" "i" "s" "h" "." "<｜Assistant｜>"]
	// true <｜begin▁of▁sentence｜>Hi Hi
	// true
}

// Loading the real DeepSeek-V3 tokenizer from a checkpoint directory, and
// decoding a stream of generated ids as text becomes complete.
func ExampleLoad() {
	tok, err := tokenizer.Load("/models/DeepSeek-V3") // holds tokenizer.json and tokenizer_config.json
	if err != nil {
		log.Fatal(err)
	}
	prompt := tok.EncodeWithSpecialTokens("<｜User｜>Who are you?<｜Assistant｜>") // [0 128803 ...]
	fmt.Println(len(prompt))

	// Tokens can end inside a UTF-8 character: print only complete text.
	var pending []byte
	for _, id := range []int{19923, 2058} { // generated ids
		b, _ := tok.TokenBytes(id)
		pending = append(pending, b...)
		// ... print the longest valid UTF-8 prefix of pending, keep the rest
	}
	fmt.Println(string(pending))
}
