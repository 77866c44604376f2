package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// toyJSON returns a small byte-level BPE tokenizer.json as a generic map: the
// 256 byte tokens (ids 0-255 in byte order), merges building "Ġt", "he",
// "Ġthe" and "12", and two added tokens.
func toyJSON() map[string]any {
	vocab := map[string]any{}
	for b := 0; b < 256; b++ {
		vocab[string(byteRune[b])] = b
	}
	merges := []any{"Ġ t", "h e", "Ġt he", "1 2"}
	for i, tok := range []string{"Ġt", "he", "Ġthe", "12"} {
		vocab[tok] = 256 + i
	}
	return map[string]any{
		"version": "1.0",
		"added_tokens": []any{
			map[string]any{"id": 260, "content": "<s>", "special": true, "normalized": false},
			map[string]any{"id": 261, "content": "<user>", "special": false, "normalized": true},
		},
		"normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\p{N}{1,3}`}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		}},
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "fuse_unk": false, "byte_fallback": false,
			"vocab": vocab, "merges": merges,
		},
	}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestToyTokenizer(t *testing.T) {
	tok, err := FromJSON(marshal(t, toyJSON()))
	if err != nil {
		t.Fatal(err)
	}
	// GPT-2 split: "<s>" | "the" " the" " 12" "3" "<user>" "x"; BPE: "the" has
	// no "t h" merge, so t,he; " the" merges fully.
	got := tok.Encode("<s>the the 1234<user>x")
	want := []int{260, 't', 257, 258, ' ', 259, '3', '4', 261, 'x'}
	if !equalInts(got, want) {
		t.Fatalf("Encode = %v, want %v (tokens %q)", got, want, tok.Tokens("<s>the the 1234<user>x"))
	}
	if s := tok.Decode(got, true); s != "the the 1234<user>x" {
		t.Fatalf("Decode(skip special) = %q", s)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFromJSONErrors(t *testing.T) {
	model := func(m map[string]any) map[string]any { return m["model"].(map[string]any) }
	pre := func(m map[string]any) []any {
		return m["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)
	}
	split := func(m map[string]any) map[string]any { return pre(m)[0].(map[string]any) }
	added := func(m map[string]any, i int) map[string]any { return m["added_tokens"].([]any)[i].(map[string]any) }
	cases := []struct {
		name   string
		edit   func(m map[string]any)
		raw    string // used instead of the edited toy when set
		errHas string
	}{
		{name: "not json", raw: `{"model": `, errHas: "tokenizer.json: unexpected end of JSON input"},
		{name: "wrong json type", raw: `[1, 2]`, errHas: "tokenizer.json: json: cannot unmarshal array"},
		{name: "no model", edit: func(m map[string]any) { delete(m, "model") }, errHas: `no "model"`},
		{name: "model type", edit: func(m map[string]any) { model(m)["type"] = "WordPiece" }, errHas: `model.type: "WordPiece" is not supported; want BPE`},
		{name: "no vocab", edit: func(m map[string]any) { delete(model(m), "vocab") }, errHas: "model.vocab: missing"},
		{name: "negative id", edit: func(m map[string]any) { model(m)["vocab"].(map[string]any)["zz"] = -3 }, errHas: `model.vocab["zz"]: id -3 out of range`},
		{name: "huge id", edit: func(m map[string]any) { model(m)["vocab"].(map[string]any)["zz"] = 1 << 30 }, errHas: `model.vocab["zz"]: id 1073741824 out of range [0, 16777216)`},
		{name: "duplicate id", edit: func(m map[string]any) { model(m)["vocab"].(map[string]any)["zz"] = 5 }, errHas: "model.vocab: id 5 is given to both"},
		{name: "merges not a list", edit: func(m map[string]any) { model(m)["merges"] = 5 }, errHas: "model.merges: json: cannot unmarshal number"},
		{name: "merge three parts", edit: func(m map[string]any) { model(m)["merges"] = []any{"a b c"} }, errHas: `model.merges[0]: "a b c": want two tokens separated by one space`},
		{name: "merge bad pair", edit: func(m map[string]any) { model(m)["merges"] = []any{"h e", []any{"a"}} }, errHas: `model.merges[1]: ["a"]: want "a b" or ["a", "b"]`},
		{name: "merge part unknown", edit: func(m map[string]any) { model(m)["merges"] = []any{"h e", "he Ġq"} }, errHas: `model.merges[1]: "Ġq" is not in model.vocab`},
		{name: "merge result unknown", edit: func(m map[string]any) { model(m)["merges"] = []any{"a b"} }, errHas: `model.merges[0]: the merged token "ab" is not in model.vocab`},
		{name: "dropout", edit: func(m map[string]any) { model(m)["dropout"] = 0.1 }, errHas: "model.dropout: 0.1 is not supported"},
		{name: "subword prefix", edit: func(m map[string]any) { model(m)["continuing_subword_prefix"] = "##" }, errHas: `model.continuing_subword_prefix: "##" is not supported`},
		{name: "suffix", edit: func(m map[string]any) { model(m)["end_of_word_suffix"] = "</w>" }, errHas: `model.end_of_word_suffix: "</w>" is not supported`},
		{name: "byte fallback", edit: func(m map[string]any) { model(m)["byte_fallback"] = true }, errHas: "model.byte_fallback: true is not supported"},
		{name: "unk unknown", edit: func(m map[string]any) { model(m)["unk_token"] = "<unk>" }, errHas: `model.unk_token: "<unk>" is not in model.vocab`},
		{name: "normalizer", edit: func(m map[string]any) { m["normalizer"] = map[string]any{"type": "NFC"} }, errHas: `normalizer: type "NFC" is not supported`},
		{name: "nested normalizer", edit: func(m map[string]any) {
			m["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "Lowercase"}}}
		}, errHas: `normalizer.normalizers[0]: type "Lowercase" is not supported`},
		{name: "no pre-tokenizer", edit: func(m map[string]any) { m["pre_tokenizer"] = nil }, errHas: "pre_tokenizer: missing"},
		{name: "pre-tokenizer type", edit: func(m map[string]any) { pre(m)[0] = map[string]any{"type": "Whitespace"} }, errHas: `pre_tokenizer.pretokenizers[0]: type "Whitespace" is not supported`},
		{name: "no byte level", edit: func(m map[string]any) {
			m["pre_tokenizer"].(map[string]any)["pretokenizers"] = pre(m)[:1]
		}, errHas: "pre_tokenizer: no ByteLevel step"},
		{name: "split after byte level", edit: func(m map[string]any) {
			p := pre(m)
			m["pre_tokenizer"].(map[string]any)["pretokenizers"] = []any{p[1], p[0]}
		}, errHas: `pre_tokenizer.pretokenizers[1]: "Split" after ByteLevel is not supported`},
		{name: "bad regex", edit: func(m map[string]any) { split(m)["pattern"] = map[string]any{"Regex": "(ab"} }, errHas: `pre_tokenizer.pretokenizers[0].pattern: regex "(ab"`},
		{name: "no pattern", edit: func(m map[string]any) { delete(split(m), "pattern") }, errHas: `pre_tokenizer.pretokenizers[0].pattern: want {"Regex": ...} or {"String": ...}`},
		{name: "bad behavior", edit: func(m map[string]any) { split(m)["behavior"] = "Merged" }, errHas: `pre_tokenizer.pretokenizers[0].behavior: "Merged", want one of`},
		{name: "no decoder", edit: func(m map[string]any) { delete(m, "decoder") }, errHas: "decoder: missing"},
		{name: "decoder type", edit: func(m map[string]any) { m["decoder"] = map[string]any{"type": "WordPiece"} }, errHas: `decoder: type "WordPiece" is not supported`},
		{name: "added no content", edit: func(m map[string]any) { delete(added(m, 1), "content") }, errHas: `added_tokens[1]: missing or empty "content"`},
		{name: "added empty content", edit: func(m map[string]any) { added(m, 0)["content"] = "" }, errHas: `added_tokens[0]: missing or empty "content"`},
		{name: "added no id", edit: func(m map[string]any) { delete(added(m, 0), "id") }, errHas: `added_tokens[0]: missing "id"`},
		{name: "added duplicate", edit: func(m map[string]any) { added(m, 1)["content"] = "<s>" }, errHas: `added_tokens[1]: "<s>" is already added_tokens[0]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(c.raw)
			if c.raw == "" {
				m := toyJSON()
				c.edit(m)
				data = marshal(t, m)
			}
			tok, err := FromJSON(data)
			if err == nil {
				t.Fatalf("FromJSON succeeded (%d ids), want an error containing %q", tok.VocabSize(), c.errHas)
			}
			if !strings.Contains(err.Error(), c.errHas) {
				t.Fatalf("error %q does not contain %q", err, c.errHas)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	tok, err := FromJSON(marshal(t, toyJSON()))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tok.BOS(); ok {
		t.Fatal("BOS configured without a tokenizer_config.json")
	}
	if got := tok.EncodeWithSpecialTokens("12"); !equalInts(got, []int{259}) {
		t.Fatalf("EncodeWithSpecialTokens without config = %v", got)
	}
	cases := []struct {
		name, cfg string
		encoded   []int // EncodeWithSpecialTokens("12")
		errHas    string
	}{
		{name: "llama default", cfg: `{"bos_token": {"__type": "AddedToken", "content": "<s>"}, "tokenizer_class": "LlamaTokenizerFast"}`, encoded: []int{260, 259}},
		{name: "explicit", cfg: `{"add_bos_token": true, "add_eos_token": true, "bos_token": "<s>", "eos_token": "<user>"}`, encoded: []int{260, 259, 261}},
		{name: "off", cfg: `{"add_bos_token": false, "bos_token": "<s>", "tokenizer_class": "LlamaTokenizerFast"}`, encoded: []int{259}},
		{name: "other class", cfg: `{"bos_token": "<s>", "tokenizer_class": "PreTrainedTokenizerFast"}`, encoded: []int{259}},
		{name: "bad json", cfg: `{"add_bos_token": "yes"}`, errHas: "tokenizer_config.json: json: cannot unmarshal string"},
		{name: "bad bos", cfg: `{"bos_token": 3}`, errHas: "tokenizer_config.json: bos_token: 3: want a string or an object"},
		{name: "unknown bos", cfg: `{"bos_token": "<bos>"}`, errHas: `bos_token "<bos>" is not a token of tokenizer.json`},
		{name: "unknown eos", cfg: `{"eos_token": {"content": "</s>"}}`, errHas: `eos_token "</s>" is not a token of tokenizer.json`},
		{name: "add without bos", cfg: `{"add_bos_token": true}`, errHas: "add_bos_token is true but bos_token is not set"},
		{name: "add without eos", cfg: `{"add_eos_token": true}`, errHas: "add_eos_token is true but eos_token is not set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(c.cfg))
			var tc *Tokenizer
			if err == nil {
				tc, err = tok.WithConfig(cfg)
			}
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("error %v, want one containing %q", err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.EncodeWithSpecialTokens("12"); !equalInts(got, c.encoded) {
				t.Fatalf("EncodeWithSpecialTokens = %v, want %v", got, c.encoded)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("Load of a missing file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), marshal(t, toyJSON()), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir) // a directory without tokenizer_config.json
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tok.BOS(); ok {
		t.Fatal("BOS set without tokenizer_config.json")
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	if err := os.WriteFile(cfgPath, []byte(`{"add_bos_token": true, "bos_token": "<s>"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err = Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := tok.BOS(); !ok || id != 260 || !tok.Config().AddBOS {
		t.Fatalf("BOS = %d, %v; config %+v", id, ok, tok.Config())
	}
	if err := os.WriteFile(cfgPath, []byte(`{"bos_token": `), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Fatalf("Load with a truncated tokenizer_config.json: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Fatalf("Load of a truncated tokenizer.json: %v", err)
	}
}

func TestAccessors(t *testing.T) {
	tok := deepSeek(t)
	if n := tok.VocabSize(); n != 128815 {
		t.Errorf("VocabSize = %d, want 128815", n)
	}
	if id, ok := tok.BOS(); !ok || id != 0 {
		t.Errorf("BOS = %d, %v, want 0", id, ok)
	}
	if id, ok := tok.EOS(); !ok || id != 1 {
		t.Errorf("EOS = %d, %v, want 1", id, ok)
	}
	for _, c := range []struct {
		tok     string
		id      int
		special bool
	}{
		{"<｜begin▁of▁sentence｜>", 0, true}, {"<｜User｜>", 128803, false}, {"<|EOT|>", 128805, true},
		{"Ġworld", 2058, false}, {"Ġ", 223, false},
	} {
		id, ok := tok.TokenToID(c.tok)
		if !ok || id != c.id {
			t.Errorf("TokenToID(%q) = %d, %v, want %d", c.tok, id, ok, c.id)
		}
		if s, ok := tok.IDToToken(c.id); !ok || s != c.tok {
			t.Errorf("IDToToken(%d) = %q, %v, want %q", c.id, s, ok, c.tok)
		}
		if tok.IsSpecial(c.id) != c.special {
			t.Errorf("IsSpecial(%d) = %v", c.id, !c.special)
		}
	}
	for _, id := range []int{-1, 128815, 1 << 40} {
		if _, ok := tok.IDToToken(id); ok {
			t.Errorf("IDToToken(%d) exists", id)
		}
		if _, ok := tok.TokenBytes(id); ok {
			t.Errorf("TokenBytes(%d) exists", id)
		}
	}
	if got := tok.Decode([]int{-5, 19923, 129000, 2058}, false); got != "Hello world" {
		t.Errorf("Decode with unknown ids = %q, want them skipped", got)
	}
	// Bytes of a token that holds part of a character: "ä¸ĸ" is 世 without its
	// last byte.
	id, _ := tok.TokenToID("ä¸")
	if b, ok := tok.TokenBytes(id); !ok || string(b) != "\xe4\xb8" || utf8.Valid(b) {
		t.Errorf("TokenBytes(%q) = %q, %v", "ä¸", b, ok)
	}
	added := tok.AddedTokens()
	if len(added) != 818 || added[0].Content != "<｜begin▁of▁sentence｜>" || !added[0].Special {
		t.Errorf("AddedTokens: %d, first %+v", len(added), added[0])
	}
}
