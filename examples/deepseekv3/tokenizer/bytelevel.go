package tokenizer

import "unicode/utf8"

// The byte-level alphabet of GPT-2, used by Hugging Face's ByteLevel
// pre-tokenizer and decoder: every byte maps to one printable rune, the
// printable Latin-1 bytes to themselves and the others (control bytes,
// space, 0x7F-0xA0, 0xAD) to U+0100 onwards in byte order. A vocabulary
// entry is a string over this alphabet; "Ġ" (U+0120) is the byte 0x20.
var (
	byteRune [256]rune  // byte -> alphabet rune
	runeByte [324]int16 // alphabet rune -> byte, -1 outside the alphabet
)

func init() {
	for i := range runeByte {
		runeByte[i] = -1
	}
	n := rune(0)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteRune[b] = rune(b)
		} else {
			byteRune[b] = 256 + n
			n++
		}
		runeByte[byteRune[b]] = int16(b)
	}
}

// alphabetBytes maps a byte-level alphabet string back to raw bytes. ok is
// false when a rune is outside the alphabet.
func alphabetBytes(tok string) (raw []byte, ok bool) {
	raw = make([]byte, 0, len(tok))
	for _, r := range tok {
		if r < 0 || int(r) >= len(runeByte) || runeByte[r] < 0 {
			return nil, false
		}
		raw = append(raw, byte(runeByte[r]))
	}
	return raw, true
}

// decodeTokenBytes is the ByteLevel decoder's rule for one token string: its
// runes mapped back to bytes when every rune is in the alphabet, otherwise
// the token's own UTF-8 bytes unchanged (this is how added tokens such as
// "<｜begin▁of▁sentence｜>" decode to their text).
func decodeTokenBytes(tok string) []byte {
	if raw, ok := alphabetBytes(tok); ok {
		return raw
	}
	return []byte(tok)
}

// appendLossyUTF8 appends b to dst as valid UTF-8, replacing every maximal
// ill-formed subsequence with one U+FFFD, the substitution of Unicode
// §3.9 ("U+FFFD Substitution of Maximal Subparts") that Rust's
// String::from_utf8_lossy and Hugging Face's decoders use. (Go's
// strings.ToValidUTF8 replaces whole runs instead, and ranging over a string
// replaces every byte; neither matches.)
func appendLossyUTF8(dst []byte, b []byte) []byte {
	const repl = "\uFFFD"
	i := 0
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		// Expected length and the accepted range of the second byte.
		var n int
		lo, hi := byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			n = 2
		case c == 0xE0:
			n, lo = 3, 0xA0
		case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
			n = 3
		case c == 0xED:
			n, hi = 3, 0x9F
		case c == 0xF0:
			n, lo = 4, 0x90
		case c >= 0xF1 && c <= 0xF3:
			n = 4
		case c == 0xF4:
			n, hi = 4, 0x8F
		default: // 0x80-0xC1, 0xF5-0xFF never start a character
			dst = append(dst, repl...)
			i++
			continue
		}
		// Count how many bytes of the sequence are well formed so far.
		k := 1
		for k < n && i+k < len(b) {
			x := b[i+k]
			if k == 1 {
				if x < lo || x > hi {
					break
				}
			} else if x < 0x80 || x > 0xBF {
				break
			}
			k++
		}
		if k == n {
			dst = append(dst, b[i:i+n]...)
		} else {
			dst = append(dst, repl...)
		}
		i += k
	}
	return dst
}
