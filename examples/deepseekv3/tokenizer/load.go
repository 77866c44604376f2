package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The parts of tokenizer.json this package reads. Unknown fields are
// ignored, as Hugging Face does.
type fileJSON struct {
	AddedTokens   []addedJSON     `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type addedJSON struct {
	ID         *int    `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
}

type typedJSON struct {
	Type string `json:"type"`
}

type normalizerJSON struct {
	Type        string            `json:"type"`
	Normalizers []json.RawMessage `json:"normalizers"`
}

type preTokJSON struct {
	Type          string            `json:"type"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	Pattern       *struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior       string `json:"behavior"`
	Invert         bool   `json:"invert"`
	AddPrefixSpace bool   `json:"add_prefix_space"`
	UseRegex       *bool  `json:"use_regex"`
}

// maxID bounds token ids so that a corrupt file cannot make the id tables
// huge.
const maxID = 1 << 24

// Load reads a tokenizer from path, which is either a tokenizer.json file or
// a directory holding one. A tokenizer_config.json in the same directory,
// when present, sets the BOS/EOS tokens and whether EncodeWithSpecialTokens
// adds them (see ParseConfig); a malformed one is an error.
func Load(path string) (*Tokenizer, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := FromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	cfgData, err := os.ReadFile(cfgPath)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cfg, err := ParseConfig(cfgData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	t, err = t.WithConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	return t, nil
}

// FromJSON builds a tokenizer from the contents of a Hugging Face
// tokenizer.json. It supports what byte-level BPE tokenizers such as
// DeepSeek-V3's use: a BPE model, added tokens, no normalizer (or an empty
// Sequence), a pre-tokenizer made of Split steps followed by ByteLevel, and
// the ByteLevel decoder. Anything else, and any malformed or inconsistent
// part, is an error naming the field. The post_processor, truncation and
// padding entries are not used (see EncodeWithSpecialTokens). Added tokens
// get their ids as Hugging Face assigns them on loading: the model
// vocabulary's id when the content is in it, otherwise the next id from the
// vocabulary size in file order (for files Hugging Face wrote this is the
// "id" field).
func FromJSON(data []byte) (*Tokenizer, error) {
	return fromJSON(data, true)
}

// fromJSON is FromJSON; with fast false every pattern runs on regexp2 (the
// reference the hand-written scanners are tested against).
func fromJSON(data []byte, fast bool) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if isNull(f.Model) {
		return nil, errors.New("tokenizer.json: no \"model\"")
	}
	t := &Tokenizer{}
	if err := checkNormalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if err := t.parsePreTokenizer(f.PreTokenizer, fast); err != nil {
		return nil, err
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, err
	}
	if err := t.parseModel(f.Model); err != nil {
		return nil, err
	}
	if err := t.parseAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	t.finish()
	return t, nil
}

func isNull(m json.RawMessage) bool {
	m = bytes.TrimSpace(m)
	return len(m) == 0 || string(m) == "null"
}

// checkNormalizer accepts only normalizers that change nothing.
func checkNormalizer(raw json.RawMessage, field string) error {
	if isNull(raw) {
		return nil
	}
	var n normalizerJSON
	if err := json.Unmarshal(raw, &n); err != nil {
		return fmt.Errorf("tokenizer.json: %s: %w", field, err)
	}
	if n.Type != "Sequence" {
		return fmt.Errorf("tokenizer.json: %s: type %q is not supported (only none or an empty Sequence)", field, n.Type)
	}
	for i, sub := range n.Normalizers {
		if err := checkNormalizer(sub, fmt.Sprintf("%s.normalizers[%d]", field, i)); err != nil {
			return err
		}
	}
	return nil
}

func checkDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return errors.New("tokenizer.json: decoder: missing; want the ByteLevel decoder")
	}
	var d typedJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("tokenizer.json: decoder: %w", err)
	}
	if d.Type != "ByteLevel" {
		return fmt.Errorf("tokenizer.json: decoder: type %q is not supported; want ByteLevel", d.Type)
	}
	return nil
}

// parsePreTokenizer flattens the pre-tokenizer into Split stages followed by
// one ByteLevel step.
func (t *Tokenizer) parsePreTokenizer(raw json.RawMessage, fast bool) error {
	if isNull(raw) {
		return errors.New("tokenizer.json: pre_tokenizer: missing; want a ByteLevel pre-tokenizer")
	}
	sawByteLevel := false
	var walk func(raw json.RawMessage, field string) error
	walk = func(raw json.RawMessage, field string) error {
		var p preTokJSON
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("tokenizer.json: %s: %w", field, err)
		}
		if sawByteLevel {
			return fmt.Errorf("tokenizer.json: %s: %q after ByteLevel is not supported; ByteLevel must be the last step", field, p.Type)
		}
		switch p.Type {
		case "Sequence":
			for i, sub := range p.PreTokenizers {
				if err := walk(sub, fmt.Sprintf("%s.pretokenizers[%d]", field, i)); err != nil {
					return err
				}
			}
		case "Split":
			st, err := parseSplit(&p, field, fast)
			if err != nil {
				return err
			}
			t.stages = append(t.stages, st)
		case "ByteLevel":
			sawByteLevel = true
			t.prefixSpace = p.AddPrefixSpace
			if p.UseRegex == nil || *p.UseRegex {
				m, err := newMatcher(gpt2Pattern, fast)
				if err != nil {
					return fmt.Errorf("tokenizer.json: %s: %w", field, err)
				}
				t.byteLevelSplit = &splitStage{m: m, behavior: isolated}
			}
		default:
			return fmt.Errorf("tokenizer.json: %s: type %q is not supported (Sequence, Split, ByteLevel)", field, p.Type)
		}
		return nil
	}
	if err := walk(raw, "pre_tokenizer"); err != nil {
		return err
	}
	if !sawByteLevel {
		return errors.New("tokenizer.json: pre_tokenizer: no ByteLevel step; only byte-level BPE is supported")
	}
	return nil
}

func parseSplit(p *preTokJSON, field string, fast bool) (*splitStage, error) {
	if p.Pattern == nil || (p.Pattern.Regex == nil) == (p.Pattern.String == nil) {
		return nil, fmt.Errorf("tokenizer.json: %s.pattern: want {\"Regex\": ...} or {\"String\": ...}", field)
	}
	b, ok := behaviorNames[p.Behavior]
	if !ok {
		return nil, fmt.Errorf("tokenizer.json: %s.behavior: %q, want one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous", field, p.Behavior)
	}
	st := &splitStage{behavior: b, invert: p.Invert}
	if p.Pattern.String != nil && *p.Pattern.String != "" {
		st.m = literalMatcher{*p.Pattern.String}
		return st, nil
	}
	if p.Pattern.String != nil {
		// An empty literal is an empty regex, which matches between every
		// two characters.
		p.Pattern.Regex = p.Pattern.String
	}
	m, err := newMatcher(*p.Pattern.Regex, fast)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %s.pattern: %w", field, err)
	}
	st.m = m
	return st, nil
}

func (t *Tokenizer) parseModel(raw json.RawMessage) error {
	var mj modelJSON
	if err := json.Unmarshal(raw, &mj); err != nil {
		return fmt.Errorf("tokenizer.json: model: %w", err)
	}
	switch {
	case mj.Type != "BPE":
		return fmt.Errorf("tokenizer.json: model.type: %q is not supported; want BPE", mj.Type)
	case mj.Vocab == nil:
		return errors.New("tokenizer.json: model.vocab: missing")
	case mj.Dropout != nil && *mj.Dropout != 0:
		return fmt.Errorf("tokenizer.json: model.dropout: %v is not supported; want null or 0", *mj.Dropout)
	case mj.ContinuingSubwordPrefix != nil && *mj.ContinuingSubwordPrefix != "":
		return fmt.Errorf("tokenizer.json: model.continuing_subword_prefix: %q is not supported with byte-level BPE", *mj.ContinuingSubwordPrefix)
	case mj.EndOfWordSuffix != nil && *mj.EndOfWordSuffix != "":
		return fmt.Errorf("tokenizer.json: model.end_of_word_suffix: %q is not supported with byte-level BPE", *mj.EndOfWordSuffix)
	case mj.ByteFallback:
		return errors.New("tokenizer.json: model.byte_fallback: true is not supported with byte-level BPE")
	}
	// The id tables.
	n := 0
	for tok, id := range mj.Vocab {
		if id < 0 || id >= maxID {
			return fmt.Errorf("tokenizer.json: model.vocab[%q]: id %d out of range [0, %d)", tok, id, maxID)
		}
		n = max(n, id+1)
	}
	t.modelTok = make([]string, n)
	t.modelHas = make([]bool, n)
	for tok, id := range mj.Vocab {
		if t.modelHas[id] {
			other := t.modelTok[id]
			if other > tok {
				other, tok = tok, other
			}
			return fmt.Errorf("tokenizer.json: model.vocab: id %d is given to both %q and %q", id, other, tok)
		}
		t.modelTok[id], t.modelHas[id] = tok, true
	}
	t.vocab = make(map[string]int32, len(mj.Vocab))
	for tok, id := range mj.Vocab {
		t.vocab[tok] = int32(id)
	}
	m := &bpe{unk: -1, fuse: mj.FuseUnk, linear: 48, cache: newWordCache(defaultCacheEntries)}
	for b := range m.byteID {
		m.byteID[b] = -1
		if id, ok := t.vocab[string(byteRune[b])]; ok {
			m.byteID[b] = id
		}
	}
	if mj.UnkToken != nil {
		id, ok := t.vocab[*mj.UnkToken]
		if !ok {
			return fmt.Errorf("tokenizer.json: model.unk_token: %q is not in model.vocab", *mj.UnkToken)
		}
		m.unk = id
	}
	if mj.IgnoreMerges {
		m.whole = make(map[string]int32)
		for tok, id := range t.vocab {
			if raw, ok := alphabetBytes(tok); ok {
				m.whole[string(raw)] = id
			}
		}
	}
	merges, err := parseMerges(mj.Merges)
	if err != nil {
		return err
	}
	m.merges = make(map[uint64]uint64, len(merges))
	for rank, pair := range merges {
		a, b := pair[0], pair[1]
		ia, ok := t.vocab[a]
		if !ok {
			return fmt.Errorf("tokenizer.json: model.merges[%d]: %q is not in model.vocab", rank, a)
		}
		ib, ok := t.vocab[b]
		if !ok {
			return fmt.Errorf("tokenizer.json: model.merges[%d]: %q is not in model.vocab", rank, b)
		}
		in, ok := t.vocab[a+b]
		if !ok {
			return fmt.Errorf("tokenizer.json: model.merges[%d]: the merged token %q is not in model.vocab", rank, a+b)
		}
		// A repeated pair keeps its last rank, as Hugging Face's map does.
		m.merges[uint64(uint32(ia))<<32|uint64(uint32(ib))] = uint64(rank)<<32 | uint64(uint32(in))
	}
	t.model = m
	return nil
}

// parseMerges reads model.merges, a list of "a b" strings or of ["a", "b"]
// pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	// The common form first, without per-entry allocations.
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("tokenizer.json: model.merges[%d]: %q: want two tokens separated by one space", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	// Pairs, mixed or malformed: entry by entry, naming a bad one.
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("tokenizer.json: model.merges: %w", err)
	}
	out := make([][2]string, len(items))
	for i, item := range items {
		a, b, err := parseMerge(item)
		if err != nil {
			return nil, fmt.Errorf("tokenizer.json: model.merges[%d]: %v", i, err)
		}
		out[i] = [2]string{a, b}
	}
	return out, nil
}

// parseMerge reads a merge as "a b" or ["a", "b"].
func parseMerge(raw json.RawMessage) (string, string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		parts := strings.Split(s, " ")
		if len(parts) != 2 {
			return "", "", fmt.Errorf("%q: want two tokens separated by one space", s)
		}
		return parts[0], parts[1], nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf("%s: want \"a b\" or [\"a\", \"b\"]", raw)
	}
	return pair[0], pair[1], nil
}

// parseAdded reads the added tokens. Their ids are assigned as Hugging
// Face's AddedVocabulary::add_tokens does when it loads a file: a token
// already in the model vocabulary keeps that id, the others are numbered in
// file order from the number of model vocabulary entries. The file's "id"
// fields are not used (Hugging Face only warns when they differ); for files
// Hugging Face wrote, they agree.
func (t *Tokenizer) parseAdded(list []addedJSON) error {
	t.added = &addedVocab{}
	byContent := map[string]int{}
	nextID := len(t.vocab)
	var raw, normd *trie
	for i, a := range list {
		field := fmt.Sprintf("tokenizer.json: added_tokens[%d]", i)
		if a.ID == nil {
			return fmt.Errorf("%s: missing \"id\"", field)
		}
		if a.Content == nil || *a.Content == "" {
			return fmt.Errorf("%s: missing or empty \"content\"", field)
		}
		content := *a.Content
		if prev, ok := byContent[content]; ok {
			return fmt.Errorf("%s: %q is already added_tokens[%d]", field, content, prev)
		}
		byContent[content] = i
		var id int
		if mid, ok := t.vocab[content]; ok {
			id = int(mid)
		} else {
			id = nextID
			nextID++
		}
		if id >= maxID {
			return fmt.Errorf("%s (%q): id %d out of range [0, %d)", field, content, id, maxID)
		}
		tok := AddedToken{
			ID: id, Content: content, Special: a.Special,
			LStrip: a.LStrip, RStrip: a.RStrip, SingleWord: a.SingleWord,
			Normalized: !a.Special,
		}
		if a.Normalized != nil {
			tok.Normalized = *a.Normalized
		}
		k := int32(len(t.added.tokens))
		t.added.tokens = append(t.added.tokens, tok)
		if tok.Normalized {
			if normd == nil {
				normd = newTrie()
			}
			normd.insert(content, k)
		} else {
			if raw == nil {
				raw = newTrie()
			}
			raw.insert(content, k)
		}
	}
	t.added.raw, t.added.normd = raw, normd
	return nil
}

// finish builds the id tables used by decoding.
func (t *Tokenizer) finish() {
	n := len(t.modelTok)
	for _, a := range t.added.tokens {
		n = max(n, a.ID+1)
	}
	t.idTok = make([]string, n)
	t.idHas = make([]bool, n)
	copy(t.idTok, t.modelTok)
	copy(t.idHas, t.modelHas)
	t.addedIdx = make(map[string]int32, len(t.added.tokens))
	specials := map[string]bool{}
	for k, a := range t.added.tokens {
		t.idTok[a.ID], t.idHas[a.ID] = a.Content, true
		t.addedIdx[a.Content] = int32(k)
		if a.Special {
			specials[a.Content] = true
		}
	}
	t.idBytes = make([][]byte, n)
	t.idSpecial = make([]bool, n)
	for id := range t.idTok {
		if t.idHas[id] {
			t.idBytes[id] = decodeTokenBytes(t.idTok[id])
			t.idSpecial[id] = specials[t.idTok[id]]
		}
	}
	t.bos, t.eos = -1, -1
}
