package tokenizer

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// Character classes the DeepSeek-V3 split regexes test, one bit each. The
// Unicode categories come from Go's unicode tables, the same tables
// regexp2 uses for \p{..} and \s.
const (
	clL           uint16 = 1 << iota // \p{L}
	clM                              // \p{M}
	clN                              // \p{N}
	clP                              // \p{P}
	clS                              // \p{S}
	clSpace                          // \s: Unicode White_Space (unicode.IsSpace)
	clCRLF                           // \r or \n
	clASCIIPunct                     // [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]
	clASCIILetter                    // [A-Za-z]
	clCJK                            // [\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]
)

// classify computes the class bits of r from the Unicode tables.
func classify(r rune) uint16 {
	var c uint16
	if unicode.IsLetter(r) {
		c |= clL
	}
	if unicode.IsMark(r) {
		c |= clM
	}
	if unicode.IsNumber(r) {
		c |= clN
	}
	if unicode.IsPunct(r) {
		c |= clP
	}
	if unicode.IsSymbol(r) {
		c |= clS
	}
	if unicode.IsSpace(r) {
		c |= clSpace
	}
	if r == '\r' || r == '\n' {
		c |= clCRLF
	}
	if r < utf8.RuneSelf && (c&(clP|clS) != 0) {
		c |= clASCIIPunct
	}
	if (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') {
		c |= clASCIILetter
	}
	if (r >= 0x4e00 && r <= 0x9fa5) || (r >= 0x3040 && r <= 0x309f) || (r >= 0x30a0 && r <= 0x30ff) {
		c |= clCJK
	}
	return c
}

// bmpClasses caches classify for the Basic Multilingual Plane (128 KiB),
// built on first use.
var (
	bmpOnce    sync.Once
	bmpClasses []uint16
	// byteClasses[b] is the class of the ASCII rune b (for b < 0x80), indexed
	// by a byte so that the lookup needs no bounds check.
	byteClasses [256]uint16
)

func buildClasses() {
	bmpOnce.Do(func() {
		t := make([]uint16, 0x10000)
		for r := range t {
			t[r] = classify(rune(r))
		}
		copy(byteClasses[:utf8.RuneSelf], t)
		bmpClasses = t
	})
}

// classAt decodes the rune at s[i] and returns its class and width. An
// invalid byte counts as one U+FFFD of width 1, as Go's range and []rune
// conversion (and so regexp2) see it. buildClasses must have run.
func classAt(s string, i int) (uint16, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return byteClasses[c], 1
	}
	return classAtSlow(s, i)
}

// classAtSlow is classAt for a rune that is not ASCII.
func classAtSlow(s string, i int) (uint16, int) {
	r, w := utf8.DecodeRuneInString(s[i:])
	if r < 0x10000 {
		return bmpClasses[r], w
	}
	return classify(r), w
}
