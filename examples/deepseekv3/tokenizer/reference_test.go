package tokenizer

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// testdata/hf_reference.json holds ids and texts produced by Hugging Face
// tokenizers 0.23.2 (see testdata/gen_reference.js): random strings for the
// real DeepSeek-V3 tokenizer, random id sequences to decode, and small
// tokenizers exercising every option this package implements.
type hfReference struct {
	Format         string `json:"format"`
	DeepSeekEncode []struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	} `json:"deepseek_encode"`
	DeepSeekDecode []struct {
		IDs         []int  `json:"ids"`
		SkipSpecial bool   `json:"skip_special_tokens"`
		Text        string `json:"text"`
	} `json:"deepseek_decode"`
	ToyVocab  json.RawMessage `json:"toy_vocab"`
	ToyMerges json.RawMessage `json:"toy_merges"`
	Toys      []struct {
		Name      string                     `json:"name"`
		Tokenizer map[string]json.RawMessage `json:"tokenizer"`
		Cases     []struct {
			Text               string  `json:"text"`
			IDs                []int   `json:"ids"`
			Decoded            *string `json:"decoded"`
			DecodedSkipSpecial *string `json:"decoded_skip_special"`
		} `json:"cases"`
	} `json:"toys"`
}

func loadReference(t *testing.T) *hfReference {
	t.Helper()
	data, err := os.ReadFile("testdata/hf_reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var r hfReference
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	if r.Format != "dsv3-tokenizer-hf-reference/1" || len(r.DeepSeekEncode) == 0 || len(r.Toys) == 0 {
		t.Fatalf("testdata/hf_reference.json: format %q, %d strings, %d toys", r.Format, len(r.DeepSeekEncode), len(r.Toys))
	}
	return &r
}

func TestReferenceDeepSeekEncode(t *testing.T) {
	tok := deepSeek(t)
	ref := loadReference(t)
	for _, c := range ref.DeepSeekEncode {
		if got := tok.Encode(c.Text); !slices.Equal(got, c.IDs) {
			t.Errorf("Encode(%q) = %v, want %v\n tokens %q", c.Text, got, c.IDs, tok.Tokens(c.Text))
		}
		if got := tok.Decode(c.IDs, false); got != c.Text {
			t.Errorf("Decode(%v) = %q, want %q", c.IDs, got, c.Text)
		}
	}
	t.Logf("%d strings", len(ref.DeepSeekEncode))
}

func TestReferenceDeepSeekDecode(t *testing.T) {
	tok := deepSeek(t)
	ref := loadReference(t)
	for _, c := range ref.DeepSeekDecode {
		if got := tok.Decode(c.IDs, c.SkipSpecial); got != c.Text {
			t.Errorf("Decode(%v, %v) = %q, want %q", c.IDs, c.SkipSpecial, got, c.Text)
		}
	}
	t.Logf("%d id sequences", len(ref.DeepSeekDecode))
}

func TestReferenceToys(t *testing.T) {
	ref := loadReference(t)
	for _, toy := range ref.Toys {
		t.Run(toy.Name, func(t *testing.T) {
			// Put the shared vocabulary and merges back in.
			var model map[string]json.RawMessage
			if err := json.Unmarshal(toy.Tokenizer["model"], &model); err != nil {
				t.Fatal(err)
			}
			if string(model["vocab"]) == `"toy_vocab"` {
				model["vocab"] = ref.ToyVocab
			}
			if string(model["merges"]) == `"toy_merges"` {
				model["merges"] = ref.ToyMerges
			}
			spec := map[string]any{}
			for k, v := range toy.Tokenizer {
				spec[k] = v
			}
			spec["model"] = model
			data, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := FromJSON(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range toy.Cases {
				if got := tok.Encode(c.Text); !slices.Equal(got, c.IDs) {
					t.Errorf("Encode(%q) = %v, want %v\n tokens %q", c.Text, got, c.IDs, tok.Tokens(c.Text))
				}
				decoded := c.Text
				if c.Decoded != nil {
					decoded = *c.Decoded
				}
				skip := decoded
				if c.DecodedSkipSpecial != nil {
					skip = *c.DecodedSkipSpecial
				}
				if got := tok.Decode(c.IDs, false); got != decoded {
					t.Errorf("Decode(%v) = %q, want %q", c.IDs, got, decoded)
				}
				if got := tok.Decode(c.IDs, true); got != skip {
					t.Errorf("Decode(%v, skip special) = %q, want %q", c.IDs, got, skip)
				}
			}
		})
	}
}
