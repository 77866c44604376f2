package tokenizer

import "unicode/utf8"

// Hand-written matchers for the three Split regexes of DeepSeek-V3's
// pre-tokenizer. Each returns the same non-overlapping leftmost-first
// matches as the regex run by a backtracking engine (Oniguruma in Hugging
// Face tokenizers, regexp2 here as the reference); scanner_test.go checks
// that by differential fuzzing against regexp2. They are several times
// faster than regexp2, which is what makes encoding run at tens of MB/s.

// The patterns exactly as they appear in DeepSeek-V3's tokenizer.json.
const (
	deepSeekDigits = `\p{N}{1,3}`
	deepSeekCJK    = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
	deepSeekWords  = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
)

// fastMatcher returns the hand-written matcher for pattern, or nil.
func fastMatcher(pattern string) matcher {
	switch pattern {
	case deepSeekDigits:
		return digitsMatcher{}
	case deepSeekCJK:
		return cjkMatcher{}
	case deepSeekWords:
		return wordsMatcher{}
	}
	return nil
}

// digitsMatcher is \p{N}{1,3}: runs of numbers cut into threes from the left.
type digitsMatcher struct{}

func (digitsMatcher) matches(s string, dst []span, _ *scratch) []span {
	i := 0
	for i < len(s) {
		if b := s[i]; b < utf8.RuneSelf && (b < '0' || b > '9') {
			i++ // the only ASCII numbers are the digits
			continue
		}
		c, w := classAt(s, i)
		if c&clN == 0 {
			i += w
			continue
		}
		start := i
		i += w
		for k := 1; k < 3 && i < len(s); k++ {
			c, w = classAt(s, i)
			if c&clN == 0 {
				break
			}
			i += w
		}
		dst = append(dst, span{start, i})
	}
	return dst
}

// cjkMatcher is [\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+.
type cjkMatcher struct{}

func (cjkMatcher) matches(s string, dst []span, _ *scratch) []span {
	i := 0
	for i < len(s) {
		// Every rune of the class is three bytes starting with 0xE3-0xE9.
		if b := s[i]; b < 0xE3 || b > 0xE9 {
			i++
			continue
		}
		c, w := classAt(s, i)
		if c&clCJK == 0 {
			i += w
			continue
		}
		start := i
		i += w
		for i < len(s) {
			c, w = classAt(s, i)
			if c&clCJK == 0 {
				break
			}
			i += w
		}
		dst = append(dst, span{start, i})
	}
	return dst
}

// wordsMatcher is the third pattern, six alternatives tried in order:
//
//	A1 [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+
//	A2 [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
//	A3  ?[\p{P}\p{S}]+[\r\n]*
//	A4 \s*[\r\n]+
//	A5 \s+(?!\S)
//	A6 \s+
type wordsMatcher struct{}

func (wordsMatcher) matches(s string, dst []span, _ *scratch) []span {
	i := 0
	for i < len(s) {
		end, w := wordsAt(s, i)
		if end > i {
			dst = append(dst, span{i, end})
			i = end
		} else {
			i += w
		}
	}
	return dst
}

// run returns the end of the longest run from i of runes whose class has a
// bit of mask.
func run(s string, i int, mask uint16) int {
	for i < len(s) {
		if b := s[i]; b < utf8.RuneSelf { // ASCII, inline
			if byteClasses[b]&mask == 0 {
				break
			}
			i++
			continue
		}
		c, w := classAtSlow(s, i)
		if c&mask == 0 {
			break
		}
		i += w
	}
	return i
}

// wordsAt returns the end of the match of the third pattern starting at i
// (i itself when none) and the width of the rune at i.
func wordsAt(s string, i int) (end, width int) {
	var c0 uint16
	w0 := 1
	if b := s[i]; b < utf8.RuneSelf {
		c0 = byteClasses[b]
	} else {
		c0, w0 = classAtSlow(s, i)
	}
	// A1: one ASCII punctuation or symbol, then ASCII letters.
	if c0&clASCIIPunct != 0 {
		j := i + 1
		for j < len(s) && (s[j]|0x20) >= 'a' && (s[j]|0x20) <= 'z' {
			j++
		}
		if j > i+1 {
			return j, w0
		}
	}
	// A2: an optional rune that is not \r, \n, a letter, punctuation or a
	// symbol, then letters and marks. With the optional rune taken first,
	// then without it (backtracking).
	if c0&(clCRLF|clL|clP|clS) == 0 {
		if j := run(s, i+w0, clL|clM); j > i+w0 {
			return j, w0
		}
	}
	if c0&(clL|clM) != 0 {
		return run(s, i+w0, clL|clM), w0
	}
	// A3: an optional space, punctuation and symbols, then \r and \n.
	p := i
	if s[i] == ' ' {
		p++
	}
	if j := run(s, p, clP|clS); j > p {
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j, w0
	}
	if c0&clSpace == 0 {
		return i, w0
	}
	// The whitespace run [i, j), its last \r or \n, and its last rune.
	j, lastNL, last := i, -1, i
	for j < len(s) {
		c, w := classAt(s, j)
		if c&clSpace == 0 {
			break
		}
		if c&clCRLF != 0 {
			lastNL = j
		}
		last = j
		j += w
	}
	// A4: \s* gives back runes until [\r\n]+ can match: the run up to and
	// including its last line break.
	if lastNL >= 0 {
		return lastNL + 1, w0
	}
	// A5: the whole run at the end of the text; otherwise all but its last
	// rune, which leaves whitespace for (?!\S) to see.
	if j == len(s) {
		return j, w0
	}
	if last > i {
		return last, w0
	}
	// A6: a single whitespace rune before a non-space.
	return j, w0
}
