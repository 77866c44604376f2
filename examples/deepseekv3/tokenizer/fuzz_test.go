package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRoundTrip checks that encoding never panics, that every id it returns
// names a token, and that decode(encode(s)) == s for valid UTF-8 s (with and
// without added tokens in the text).
func FuzzRoundTrip(f *testing.F) {
	tok := deepSeek(f)
	for _, s := range interesting {
		f.Add(s)
	}
	f.Add("<｜begin▁of▁sentence｜><｜User｜>Hi 123456 世界\r\n\t  x")
	f.Add("\xff\xfe<|EOT|>\xe4\xb8")
	f.Fuzz(func(t *testing.T, s string) {
		checkRoundTrip(t, tok, s)
	})
}

func checkRoundTrip(t *testing.T, tok *Tokenizer, s string) {
	t.Helper()
	ids := tok.Encode(s)
	var raw []byte
	for _, id := range ids {
		b, ok := tok.TokenBytes(id)
		if !ok {
			t.Fatalf("Encode(%q) returned id %d, which names no token", s, id)
		}
		raw = append(raw, b...)
	}
	// Every input byte is in the output, so even invalid UTF-8 comes back
	// byte for byte before the decoder's UTF-8 check.
	if string(raw) != s {
		t.Fatalf("token bytes of Encode(%q) = %q", s, raw)
	}
	got := tok.Decode(ids, false)
	if utf8.ValidString(s) && got != s {
		t.Fatalf("Decode(Encode(%q)) = %q", s, got)
	}
	if !utf8.ValidString(got) {
		t.Fatalf("Decode(Encode(%q)) = %q is not valid UTF-8", s, got)
	}
}

// TestRoundTripRandom runs the fuzz property on random text in the normal
// test run.
func TestRoundTripRandom(t *testing.T) {
	tok := deepSeek(t)
	r := rand.New(rand.NewPCG(7, 8))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		checkRoundTrip(t, tok, randomText(r, 1+r.IntN(40)))
	}
	// Random bytes, and random runes of the whole range.
	for range n {
		b := make([]byte, r.IntN(64))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		checkRoundTrip(t, tok, string(b))
		var sb strings.Builder
		for range r.IntN(24) {
			sb.WriteRune(rune(r.IntN(0x110000)))
		}
		checkRoundTrip(t, tok, sb.String())
	}
	checkRoundTrip(t, tok, goSource(t, 100_000))
}

// FuzzFromJSON checks that no tokenizer.json, however malformed, makes
// FromJSON panic, and that a tokenizer it accepts encodes and decodes
// without panicking.
func FuzzFromJSON(f *testing.F) {
	f.Add(string(mustMarshal(toyJSON())), "<s>the 12345 <user>x\xff")
	m := toyJSON()
	m["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)[0].(map[string]any)["behavior"] = "MergedWithNext"
	f.Add(string(mustMarshal(m)), " a-b 1 ")
	f.Fuzz(func(t *testing.T, js, text string) {
		tok, err := FromJSON([]byte(js))
		if err != nil {
			return
		}
		ids := tok.Encode(text)
		_ = tok.Decode(ids, true)
		_ = tok.Tokens(text)
	})
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
