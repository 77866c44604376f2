package tokenizer

import (
	"fmt"
	"strings"

	"github.com/dlclark/regexp2"
)

// span is a byte range [start, end) of a piece of text.
type span struct{ start, end int }

// matcher finds the non-overlapping matches of a pattern in s, in order, the
// way Hugging Face's find_iter over an Oniguruma regex does (empty matches
// included).
type matcher interface {
	matches(s string, dst []span, sc *scratch) []span
}

// behavior is a Split pre-tokenizer's SplitDelimiterBehavior.
type behavior int

const (
	removed behavior = iota
	isolated
	mergedWithPrevious
	mergedWithNext
	contiguous
)

var behaviorNames = map[string]behavior{
	"Removed":            removed,
	"Isolated":           isolated,
	"MergedWithPrevious": mergedWithPrevious,
	"MergedWithNext":     mergedWithNext,
	"Contiguous":         contiguous,
}

// splitStage is one Split pre-tokenizer.
type splitStage struct {
	m        matcher
	behavior behavior
	invert   bool
}

// split appends the pieces of s (non-empty, in order) to dst.
func (st *splitStage) split(s string, dst []span, sc *scratch) []span {
	if s == "" {
		return dst
	}
	// Fast path for the common case: isolated matches.
	if st.behavior == isolated {
		ms := st.m.matches(s, sc.matchBuf[:0], sc)
		sc.matchBuf = ms
		prev := 0
		for _, m := range ms {
			if prev < m.start {
				dst = append(dst, span{prev, m.start})
			}
			if m.start < m.end {
				dst = append(dst, m)
			}
			prev = m.end
		}
		if prev < len(s) {
			dst = append(dst, span{prev, len(s)})
		}
		return dst
	}
	// The general case follows NormalizedString::split: first the covering
	// list of (span, is match), then the behaviour.
	ms := st.m.matches(s, sc.matchBuf[:0], sc)
	sc.matchBuf = ms
	type part struct {
		span
		match bool
	}
	parts := make([]part, 0, 2*len(ms)+1)
	prev := 0
	for _, m := range ms {
		if prev != m.start {
			parts = append(parts, part{span{prev, m.start}, st.invert})
		}
		parts = append(parts, part{m, !st.invert})
		prev = m.end
	}
	if prev != len(s) {
		parts = append(parts, part{span{prev, len(s)}, st.invert})
	}
	var out []part // match here means "remove"
	switch st.behavior {
	case removed:
		out = parts
	case contiguous:
		prevMatch := false
		for _, p := range parts {
			if p.match == prevMatch && len(out) > 0 {
				out[len(out)-1].end = p.end
			} else {
				out = append(out, part{p.span, false})
			}
			prevMatch = p.match
		}
	case mergedWithPrevious:
		prevMatch := false
		for _, p := range parts {
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = p.end
			} else {
				out = append(out, part{p.span, false})
			}
			prevMatch = p.match
		}
	case mergedWithNext:
		prevMatch := false
		for k := len(parts) - 1; k >= 0; k-- {
			p := parts[k]
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = p.start
			} else {
				out = append(out, part{p.span, false})
			}
			prevMatch = p.match
		}
		for a, b := 0, len(out)-1; a < b; a, b = a+1, b-1 {
			out[a], out[b] = out[b], out[a]
		}
	}
	for _, p := range out {
		if !p.match && p.start < p.end {
			dst = append(dst, p.span)
		}
	}
	return dst
}

// regexMatcher runs a regex with regexp2, the general path for patterns
// without a hand-written matcher.
type regexMatcher struct {
	re *regexp2.Regexp
}

func compileRegex(pattern string) (*regexMatcher, error) {
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, err
	}
	return &regexMatcher{re: re}, nil
}

// matches follows the onig crate's FindMatches: an empty match right after
// the previous match is skipped by advancing one character.
func (rm *regexMatcher) matches(s string, dst []span, sc *scratch) []span {
	// regexp2 works on runes; offs maps rune indices to byte offsets.
	runes, offs := sc.runes[:0], sc.offs[:0]
	for i, r := range s {
		runes = append(runes, r)
		offs = append(offs, i)
	}
	offs = append(offs, len(s))
	sc.runes, sc.offs = runes, offs
	at, lastEnd := 0, -1
	for at <= len(runes) {
		m, err := rm.re.FindRunesMatchStartingAt(runes, at)
		if err != nil || m == nil {
			break
		}
		start, end := m.Index, m.Index+m.Length
		if start == end && end == lastEnd {
			at++
			continue
		}
		dst = append(dst, span{offs[start], offs[end]})
		at, lastEnd = end, end
	}
	return dst
}

// literalMatcher is a Split pattern given as {"String": "..."}.
type literalMatcher struct{ lit string }

func (lm literalMatcher) matches(s string, dst []span, _ *scratch) []span {
	if lm.lit == "" {
		return dst
	}
	i := 0
	for {
		k := strings.Index(s[i:], lm.lit)
		if k < 0 {
			return dst
		}
		dst = append(dst, span{i + k, i + k + len(lm.lit)})
		i += k + len(lm.lit)
	}
}

// gpt2Pattern is the regex the ByteLevel pre-tokenizer splits with when
// use_regex is true.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// newMatcher builds the matcher for a Split pattern: a hand-written one for
// DeepSeek-V3's patterns, regexp2 otherwise.
func newMatcher(pattern string, useFast bool) (matcher, error) {
	if useFast {
		if m := fastMatcher(pattern); m != nil {
			buildClasses()
			return m, nil
		}
	}
	rm, err := compileRegex(pattern)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %v", pattern, err)
	}
	return rm, nil
}
