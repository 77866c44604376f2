package tokenizer

import "testing"

// Expected values from Python's bytes.decode("utf-8", "replace"), which,
// like Rust's String::from_utf8_lossy, substitutes one U+FFFD per maximal
// subpart of an ill-formed sequence (Unicode §3.9, Table 3-8 is the first
// case).
var lossyCases = []struct{ in, want string }{
	{"\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64", "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd"},
	{"\xc0\xaf", "\uFFFD\uFFFD"},
	{"\xe0\x80\xaf", "\uFFFD\uFFFD\uFFFD"},
	{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
	{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"\xf0\x9f\x98", "\uFFFD"},
	{"\xf0\x9f\x98\x80", "\U0001f600"},
	{"\xe4\xb8", "\uFFFD"},
	{"\xe4\xb8\x96", "\u4e16"},
	{"\xff\xfe", "\uFFFD\uFFFD"},
	{"\xc3", "\uFFFD"},
	{"\xc3\x28", "\uFFFD("},
	{"\xe2\x82\x28", "\uFFFD("},
	{"\xf0\x28\x8c\xbc", "\uFFFD(\uFFFD\uFFFD"},
	{"\xf8\x88\x80\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"\xef\xbf\xbd", "\uFFFD"},
	{"\xed\x9f\xbf", "\ud7ff"},
	{"\xee\x80\x80", "\ue000"},
	{"\xf4\x8f\xbf\xbf", "\U0010ffff"},
	{"\x80\x80\x80", "\uFFFD\uFFFD\uFFFD"},
	{"\x61\x62\xe4", "ab\uFFFD"},
	{"", ""},
}

func TestLossyUTF8(t *testing.T) {
	for _, c := range lossyCases {
		if got := string(appendLossyUTF8(nil, []byte(c.in))); got != c.want {
			t.Errorf("lossy(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestDecodeInvalidUTF8 decodes single-byte tokens that split characters.
func TestDecodeInvalidUTF8(t *testing.T) {
	tok := deepSeek(t)
	for _, c := range lossyCases {
		var ids []int
		for i := 0; i < len(c.in); i++ {
			ids = append(ids, int(tok.model.byteID[c.in[i]]))
		}
		if got := tok.Decode(ids, false); got != c.want {
			t.Errorf("Decode(bytes of %q) = %q, want %q", c.in, got, c.want)
		}
	}
}
