package tokenizer

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/dsv3go/dsv3/internal/testutil"
)

// casesFile is fixtures/tokenizer/cases.json: ids and texts produced by
// Hugging Face's Rust tokenizers 0.23.2 from the real DeepSeek-V3 files.
type casesFile struct {
	Format string `json:"format"`
	Count  int    `json:"count"`
	Cases  []struct {
		ID                 string   `json:"id"`
		Text               string   `json:"text"`
		IDs                []int    `json:"ids"`
		IDsAddSpecial      []int    `json:"ids_add_special_tokens"`
		IDsWithBOS         []int    `json:"ids_with_bos"`
		Tokens             []string `json:"tokens"`
		Decoded            *string  `json:"decoded"`
		DecodedSkipSpecial *string  `json:"decoded_skip_special"`
		Roundtrip          bool     `json:"roundtrip"`
	} `json:"cases"`
	DecodeCases []struct {
		ID          string `json:"id"`
		IDs         []int  `json:"ids"`
		SkipSpecial bool   `json:"skip_special_tokens"`
		Text        string `json:"text"`
	} `json:"decode_cases"`
}

var (
	dsOnce sync.Once
	dsTok  *Tokenizer
	dsErr  error
)

// deepSeek loads the real DeepSeek-V3 tokenizer (and its
// tokenizer_config.json) once per test binary.
func deepSeek(t testing.TB) *Tokenizer {
	t.Helper()
	dir := testutil.Fixture(t, "tokenizer")
	dsOnce.Do(func() { dsTok, dsErr = Load(filepath.Join(dir, "tokenizer.json")) })
	if dsErr != nil {
		t.Fatal(dsErr)
	}
	return dsTok
}

func loadCases(t *testing.T) *casesFile {
	t.Helper()
	var c casesFile
	testutil.ReadJSON(t, testutil.Fixture(t, "tokenizer", "cases.json"), &c)
	if c.Format != "deepseek-v3-tokenizer-cases/1" || len(c.Cases) != c.Count || c.Count == 0 {
		t.Fatalf("cases.json: format %q with %d cases (count %d)", c.Format, len(c.Cases), c.Count)
	}
	return &c
}

func TestFixtureCases(t *testing.T) {
	tok := deepSeek(t)
	c := loadCases(t)
	pass := 0
	for _, tc := range c.Cases {
		ok := true
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("%s %q: "+format, append([]any{tc.ID, tc.Text}, args...)...)
			ok = false
		}
		got := tok.Encode(tc.Text)
		if !slices.Equal(got, tc.IDs) {
			fail("Encode = %v, want %v\ntokens %q\nwant   %q", got, tc.IDs, tok.Tokens(tc.Text), tc.Tokens)
		}
		if tc.IDsAddSpecial != nil && !slices.Equal(got, tc.IDsAddSpecial) {
			fail("Encode = %v, want ids_add_special_tokens %v", got, tc.IDsAddSpecial)
		}
		if tc.IDsWithBOS != nil {
			if g := tok.EncodeWithSpecialTokens(tc.Text); !slices.Equal(g, tc.IDsWithBOS) {
				fail("EncodeWithSpecialTokens = %v, want %v", g, tc.IDsWithBOS)
			}
		}
		if g := tok.Tokens(tc.Text); !slices.Equal(g, tc.Tokens) {
			fail("Tokens = %q, want %q", g, tc.Tokens)
		}
		if tc.Decoded != nil {
			if g := tok.Decode(tc.IDs, false); g != *tc.Decoded {
				fail("Decode = %q, want %q", g, *tc.Decoded)
			}
		}
		if tc.DecodedSkipSpecial != nil {
			if g := tok.Decode(tc.IDs, true); g != *tc.DecodedSkipSpecial {
				fail("Decode(skip special) = %q, want %q", g, *tc.DecodedSkipSpecial)
			}
		}
		if tc.Roundtrip && tok.Decode(got, false) != tc.Text {
			fail("Decode(Encode) = %q", tok.Decode(got, false))
		}
		if ok {
			pass++
		}
	}
	decodePass := 0
	for _, dc := range c.DecodeCases {
		if g := tok.Decode(dc.IDs, dc.SkipSpecial); g != dc.Text {
			t.Errorf("%s: Decode(%v, %v) = %q, want %q", dc.ID, dc.IDs, dc.SkipSpecial, g, dc.Text)
		} else {
			decodePass++
		}
	}
	t.Logf("%d of %d cases and %d of %d decode_cases pass", pass, len(c.Cases), decodePass, len(c.DecodeCases))
}
