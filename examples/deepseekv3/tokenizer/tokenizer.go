package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"
)

// Tokenizer is a byte-level BPE tokenizer read from a Hugging Face
// tokenizer.json. It is immutable once built and safe for concurrent use.
type Tokenizer struct {
	vocab    map[string]int32 // model vocabulary: byte-level string -> id
	modelTok []string         // model id -> byte-level string
	modelHas []bool
	model    *bpe
	added    *addedVocab
	addedIdx map[string]int32 // added content -> index in added.tokens

	stages         []*splitStage // the Split steps, in order
	prefixSpace    bool          // ByteLevel add_prefix_space
	byteLevelSplit *splitStage   // ByteLevel use_regex, nil when false

	idTok     []string // id -> token string (added tokens first), as id_to_token
	idHas     []bool
	idBytes   [][]byte // id -> bytes the ByteLevel decoder gives it
	idSpecial []bool   // id -> dropped by skip_special_tokens

	cfg      Config
	bos, eos int32 // -1 when not configured

	pool sync.Pool // *scratch
}

// scratch is per-call working memory, pooled.
type scratch struct {
	segs     []segment
	pieces   [][]span // per pre-tokenizer stage
	matchBuf []span
	runes    []rune
	offs     []int
	syms     []int32
	ranks    []uint64
	heap     []candidate
	merged   []int32
}

func (t *Tokenizer) getScratch() *scratch {
	if sc, ok := t.pool.Get().(*scratch); ok {
		return sc
	}
	return &scratch{pieces: make([][]span, len(t.stages)+1)}
}

func (t *Tokenizer) putScratch(sc *scratch) {
	if cap(sc.segs) > 1<<16 || cap(sc.runes) > 1<<16 {
		return // do not pin large buffers
	}
	t.pool.Put(sc)
}

// Encode returns the ids of text without any special token added
// (Hugging Face's encode(text, add_special_tokens=False)). Added tokens that
// occur in text, such as "<｜User｜>" or "<｜end▁of▁sentence｜>", are still
// recognised and encode to their ids. Text that is not valid UTF-8 is
// encoded byte by byte all the same (each invalid byte counts as U+FFFD for
// the split rules).
func (t *Tokenizer) Encode(text string) []int {
	return t.AppendEncode(nil, text)
}

// AppendEncode appends the ids of text (as Encode) to dst.
func (t *Tokenizer) AppendEncode(dst []int, text string) []int {
	sc := t.getScratch()
	dst = t.encode(dst, text, sc)
	t.putScratch(sc)
	return dst
}

// EncodeWithSpecialTokens returns Encode(text) with the BOS token prepended
// and the EOS token appended as tokenizer_config.json asks (add_bos_token,
// add_eos_token), which is what Python transformers' encode(text) returns for
// DeepSeek-V3: [0] + Encode(text). Without a configuration it equals Encode.
func (t *Tokenizer) EncodeWithSpecialTokens(text string) []int {
	var dst []int
	if t.cfg.AddBOS && t.bos >= 0 {
		dst = append(dst, int(t.bos))
	}
	dst = t.AppendEncode(dst, text)
	if t.cfg.AddEOS && t.eos >= 0 {
		dst = append(dst, int(t.eos))
	}
	return dst
}

// encode is the pipeline: added tokens, then the Split stages, then
// ByteLevel and BPE on each piece.
func (t *Tokenizer) encode(dst []int, text string, sc *scratch) []int {
	segs := t.added.split(text, sc.segs[:0])
	sc.segs = segs
	for _, sg := range segs {
		if sg.id >= 0 {
			dst = append(dst, int(sg.id))
			continue
		}
		dst = t.preTokenize(dst, text[sg.start:sg.end], 0, sc)
	}
	return dst
}

// preTokenize runs Split stage k and those after it on s, then encodes each
// piece.
func (t *Tokenizer) preTokenize(dst []int, s string, k int, sc *scratch) []int {
	if k == len(t.stages) {
		return t.byteLevel(dst, s, sc)
	}
	pieces := t.stages[k].split(s, sc.pieces[k][:0], sc)
	sc.pieces[k] = pieces
	for i := 0; i < len(pieces); i++ {
		// Stage k+1 reuses other buffers, so pieces stays valid.
		p := sc.pieces[k][i]
		dst = t.preTokenize(dst, s[p.start:p.end], k+1, sc)
	}
	return dst
}

// byteLevel is the ByteLevel pre-tokenizer (prefix space, optional GPT-2
// split) followed by the BPE model.
func (t *Tokenizer) byteLevel(dst []int, s string, sc *scratch) []int {
	if t.prefixSpace && (len(s) == 0 || s[0] != ' ') {
		s = " " + s
	}
	if t.byteLevelSplit == nil {
		return t.model.appendIDs(dst, s, sc)
	}
	k := len(t.stages)
	pieces := t.byteLevelSplit.split(s, sc.pieces[k][:0], sc)
	sc.pieces[k] = pieces
	for _, p := range pieces {
		dst = t.model.appendIDs(dst, s[p.start:p.end], sc)
	}
	return dst
}

// Tokens returns the token strings of Encode(text), written in the
// byte-level alphabet of the vocabulary ("Ġworld" for " world"); added
// tokens appear as their content. It is meant for inspection and tests.
func (t *Tokenizer) Tokens(text string) []string {
	ids := t.Encode(text)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.idTok[id]
	}
	return out
}

// Decode returns the text of ids, as Hugging Face's decode(ids,
// skip_special_tokens): every id becomes its token string (added tokens
// first, then the model vocabulary), the ByteLevel decoder maps the strings
// back to bytes and joins them all, and the bytes are read as UTF-8 with each
// maximal ill-formed subsequence replaced by U+FFFD (as Rust's
// String::from_utf8_lossy does). With skipSpecialTokens, tokens marked
// special (BOS, EOS, padding, placeholders) are left out; non-special added
// tokens such as "<｜User｜>" are kept. Ids that name no token are skipped,
// as in Hugging Face; see IDToToken to check an id.
func (t *Tokenizer) Decode(ids []int, skipSpecialTokens bool) string {
	var buf []byte
	for _, id := range ids {
		if id < 0 || id >= len(t.idTok) || !t.idHas[id] {
			continue
		}
		if skipSpecialTokens && t.idSpecial[id] {
			continue
		}
		buf = append(buf, t.idBytes[id]...)
	}
	if utf8.Valid(buf) {
		return string(buf)
	}
	return string(appendLossyUTF8(make([]byte, 0, len(buf)+8), buf))
}

// TokenBytes returns the bytes id decodes to before UTF-8 is checked (one
// token may hold part of a character), and false when id names no token. A
// streaming decoder can join these and print the valid UTF-8 prefix. The
// slice must not be modified.
func (t *Tokenizer) TokenBytes(id int) ([]byte, bool) {
	if id < 0 || id >= len(t.idTok) || !t.idHas[id] {
		return nil, false
	}
	return t.idBytes[id], true
}

// IDToToken returns the token string of id (an added token's content, else
// the model vocabulary's byte-level string) and whether id exists.
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if id < 0 || id >= len(t.idTok) || !t.idHas[id] {
		return "", false
	}
	return t.idTok[id], true
}

// TokenToID returns the id of a token string: an added token's content or a
// model vocabulary entry in the byte-level alphabet.
func (t *Tokenizer) TokenToID(token string) (int, bool) {
	if k, ok := t.addedIdx[token]; ok {
		return t.added.tokens[k].ID, true
	}
	id, ok := t.vocab[token]
	return int(id), ok
}

// IsSpecial reports whether id is dropped when decoding with
// skipSpecialTokens.
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.idSpecial) && t.idSpecial[id]
}

// VocabSize returns one more than the largest id (128815 for DeepSeek-V3:
// 128000 model tokens and added tokens up to 128814). The model's embedding
// table may be larger (DeepSeek-V3's vocab_size is 129280).
func (t *Tokenizer) VocabSize() int { return len(t.idTok) }

// AddedTokens returns a copy of the added tokens, in file order.
func (t *Tokenizer) AddedTokens() []AddedToken {
	return append([]AddedToken(nil), t.added.tokens...)
}

// BOS returns the beginning-of-sequence id from tokenizer_config.json
// (bos_token), and false when none is configured.
func (t *Tokenizer) BOS() (int, bool) { return int(t.bos), t.bos >= 0 }

// EOS returns the end-of-sequence id from tokenizer_config.json
// (eos_token), and false when none is configured.
func (t *Tokenizer) EOS() (int, bool) { return int(t.eos), t.eos >= 0 }

// Config returns the tokenizer_config.json settings in use (the zero Config
// when there were none).
func (t *Tokenizer) Config() Config { return t.cfg }

// Config holds what this package uses from a Hugging Face
// tokenizer_config.json.
type Config struct {
	BOSToken string // bos_token ("" if absent)
	EOSToken string // eos_token ("" if absent)
	AddBOS   bool   // add_bos_token: EncodeWithSpecialTokens prepends BOS
	AddEOS   bool   // add_eos_token: EncodeWithSpecialTokens appends EOS
}

// ParseConfig reads a tokenizer_config.json. bos_token and eos_token may be
// strings or AddedToken objects ({"content": ...}). When add_bos_token is
// absent it defaults as in transformers: true for the Llama tokenizer
// classes (DeepSeek-V3 uses LlamaTokenizerFast), false otherwise;
// add_eos_token defaults to false.
func ParseConfig(data []byte) (Config, error) {
	var raw struct {
		AddBOS *bool           `json:"add_bos_token"`
		AddEOS *bool           `json:"add_eos_token"`
		BOS    json.RawMessage `json:"bos_token"`
		EOS    json.RawMessage `json:"eos_token"`
		Class  string          `json:"tokenizer_class"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	var c Config
	var err error
	if c.BOSToken, err = tokenContent(raw.BOS); err != nil {
		return Config{}, fmt.Errorf("tokenizer_config.json: bos_token: %w", err)
	}
	if c.EOSToken, err = tokenContent(raw.EOS); err != nil {
		return Config{}, fmt.Errorf("tokenizer_config.json: eos_token: %w", err)
	}
	switch {
	case raw.AddBOS != nil:
		c.AddBOS = *raw.AddBOS
	case raw.Class == "LlamaTokenizerFast" || raw.Class == "LlamaTokenizer":
		c.AddBOS = true
	}
	if raw.AddEOS != nil {
		c.AddEOS = *raw.AddEOS
	}
	return c, nil
}

// tokenContent reads a special token given as a string, an object with a
// "content" field, or null.
func tokenContent(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", fmt.Errorf("%s: want a string or an object with \"content\"", raw)
	}
	return *obj.Content, nil
}

// WithConfig returns a tokenizer sharing t's tables with cfg applied. The BOS
// and EOS tokens, when named, must exist; adding a token that is not named
// is an error.
func (t *Tokenizer) WithConfig(cfg Config) (*Tokenizer, error) {
	bos, eos := int32(-1), int32(-1)
	if cfg.BOSToken != "" {
		id, ok := t.TokenToID(cfg.BOSToken)
		if !ok {
			return nil, fmt.Errorf("bos_token %q is not a token of tokenizer.json", cfg.BOSToken)
		}
		bos = int32(id)
	} else if cfg.AddBOS {
		return nil, errors.New("add_bos_token is true but bos_token is not set")
	}
	if cfg.EOSToken != "" {
		id, ok := t.TokenToID(cfg.EOSToken)
		if !ok {
			return nil, fmt.Errorf("eos_token %q is not a token of tokenizer.json", cfg.EOSToken)
		}
		eos = int32(id)
	} else if cfg.AddEOS {
		return nil, errors.New("add_eos_token is true but eos_token is not set")
	}
	c := &Tokenizer{
		vocab: t.vocab, modelTok: t.modelTok, modelHas: t.modelHas,
		model: t.model, added: t.added, addedIdx: t.addedIdx,
		stages: t.stages, prefixSpace: t.prefixSpace, byteLevelSplit: t.byteLevelSplit,
		idTok: t.idTok, idHas: t.idHas, idBytes: t.idBytes, idSpecial: t.idSpecial,
		cfg: cfg, bos: bos, eos: eos,
	}
	return c, nil
}
