package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// AddedToken is an entry of tokenizer.json's "added_tokens": a string that
// is matched in the raw text before any pre-tokenization and always encodes
// to its own id.
type AddedToken struct {
	ID      int    // assigned as Hugging Face does (see FromJSON)
	Content string // "content": the exact text matched
	// Special marks control tokens (BOS, EOS, placeholders). Decoding with
	// skipSpecialTokens drops them; encoding matches them like any other
	// added token.
	Special bool
	// LStrip and RStrip extend a match over the whitespace to its left or
	// right, which then belongs to the token.
	LStrip, RStrip bool
	// Normalized tokens are matched after the normalizer has run (in the
	// gaps between non-normalized ones); DeepSeek-V3 has no normalizer, so
	// this only orders the two passes.
	Normalized bool
	// SingleWord tokens match only where they are not inside a word: the
	// characters just before and after must not be word characters.
	SingleWord bool
}

// trie is a byte trie of added-token contents, matched leftmost-longest (the
// daachorse MatchKind::LeftmostLongest of Hugging Face tokenizers).
type trie struct {
	nodes []trieNode
	first [256]bool // bytes that start some token
}

type trieNode struct {
	edges []trieEdge
	tok   int32 // index into addedVocab.tokens, -1 when not terminal
}

type trieEdge struct {
	b    byte
	next int32
}

func newTrie() *trie {
	return &trie{nodes: []trieNode{{tok: -1}}}
}

func (t *trie) insert(s string, tok int32) {
	n := int32(0)
	for i := 0; i < len(s); i++ {
		next := t.child(n, s[i])
		if next < 0 {
			next = int32(len(t.nodes))
			t.nodes = append(t.nodes, trieNode{tok: -1})
			t.nodes[n].edges = append(t.nodes[n].edges, trieEdge{s[i], next})
		}
		n = next
	}
	t.nodes[n].tok = tok
	t.first[s[0]] = true
}

func (t *trie) child(n int32, b byte) int32 {
	for _, e := range t.nodes[n].edges {
		if e.b == b {
			return e.next
		}
	}
	return -1
}

// find returns the leftmost-longest match in s at or after from.
func (t *trie) find(s string, from int) (start, end int, tok int32) {
	for i := from; i < len(s); i++ {
		if !t.first[s[i]] {
			continue
		}
		n, best, bestEnd := int32(0), int32(-1), 0
		for j := i; j < len(s); j++ {
			n = t.child(n, s[j])
			if n < 0 {
				break
			}
			if tk := t.nodes[n].tok; tk >= 0 {
				best, bestEnd = tk, j+1
			}
		}
		if best >= 0 {
			return i, bestEnd, best
		}
	}
	return -1, -1, -1
}

// addedVocab holds the added tokens and their two tries: the
// non-normalized tokens are matched first in the raw text, then the
// normalized ones in the remaining gaps (AddedVocabulary::extract_and_normalize).
type addedVocab struct {
	tokens     []AddedToken
	raw, normd *trie // nil when empty
}

// segment is a piece of the input: an added token (id >= 0) or text to
// pre-tokenize (id < 0).
type segment struct {
	span
	id int32
}

// split appends the segments of text to dst.
func (av *addedVocab) split(text string, dst []segment) []segment {
	if av.raw == nil && av.normd == nil {
		return append(dst, segment{span{0, len(text)}, -1})
	}
	if av.raw == nil {
		return av.findMatches(text, 0, av.normd, dst)
	}
	first := av.findMatches(text, 0, av.raw, nil)
	if av.normd == nil {
		return append(dst, first...)
	}
	for _, sg := range first {
		if sg.id >= 0 {
			dst = append(dst, sg)
			continue
		}
		dst = av.findMatches(text[sg.start:sg.end], sg.start, av.normd, dst)
	}
	return dst
}

// findMatches follows AddedVocabulary::find_matches on sentence (which
// starts at byte offset base of the whole text): it honours single_word,
// lstrip and rstrip exactly as Hugging Face does.
func (av *addedVocab) findMatches(sentence string, base int, t *trie, dst []segment) []segment {
	if t == nil {
		if sentence != "" {
			dst = append(dst, segment{span{base, base + len(sentence)}, -1})
		}
		return dst
	}
	startOffset := 0
	for from := 0; from < len(sentence); {
		start, stop, k := t.find(sentence, from)
		if k < 0 {
			break
		}
		from = stop // the iterator continues after the raw match
		tok := &av.tokens[k]
		if tok.SingleWord {
			startSpace := start == 0 || !endsWithWord(sentence[:start])
			stopSpace := stop == len(sentence) || !startsWithWord(sentence[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if tok.LStrip {
			start = max(spaceLeftmostAtEnd(sentence[:start]), startOffset)
		}
		if tok.RStrip {
			stop += spaceRightmostAtStart(sentence[stop:])
		}
		if startOffset < start {
			dst = append(dst, segment{span{base + startOffset, base + start}, -1})
		}
		dst = append(dst, segment{span{base + start, base + stop}, int32(tok.ID)})
		startOffset = stop
	}
	if startOffset < len(sentence) {
		dst = append(dst, segment{span{base + startOffset, base + len(sentence)}, -1})
	}
	return dst
}

// isWordChar is the Unicode \w of Rust's regex crate: Alphabetic, marks,
// decimal numbers, connector punctuation and join controls.
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) ||
		unicode.In(r, unicode.Nd, unicode.Nl, unicode.Pc, unicode.Other_Alphabetic, unicode.Join_Control)
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordChar(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordChar(r)
}

// spaceLeftmostAtEnd is the start of the trailing whitespace of s.
func spaceLeftmostAtEnd(s string) int {
	i := len(s)
	for i > 0 {
		r, w := utf8.DecodeLastRuneInString(s[:i])
		if !unicode.IsSpace(r) {
			break
		}
		i -= w
	}
	return i
}

// spaceRightmostAtStart is the length of the leading whitespace of s.
func spaceRightmostAtStart(s string) int {
	i := 0
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += w
	}
	return i
}
