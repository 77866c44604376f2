package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dsv3go/dsv3/internal/testutil"
)

// naiveBPE is an independent reference: it works on byte-level strings with
// the ranks read straight from the JSON merges, and merges the lowest-rank
// adjacent pair (leftmost on ties) one at a time until none is left.
type naiveBPE struct {
	vocab map[string]int
	rank  map[[2]string]int
}

var (
	naiveOnce sync.Once
	naive     *naiveBPE
)

func loadNaive(t testing.TB) *naiveBPE {
	t.Helper()
	path := testutil.Fixture(t, "tokenizer", "tokenizer.json")
	naiveOnce.Do(func() {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Model struct {
				Vocab  map[string]int `json:"vocab"`
				Merges []string       `json:"merges"`
			} `json:"model"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		n := &naiveBPE{vocab: f.Model.Vocab, rank: map[[2]string]int{}}
		for i, m := range f.Model.Merges {
			a, b, _ := strings.Cut(m, " ")
			n.rank[[2]string{a, b}] = i
		}
		naive = n
	})
	if naive == nil {
		t.Fatal("reference BPE failed to load")
	}
	return naive
}

// encode tokenizes one pre-tokenized piece of raw bytes.
func (n *naiveBPE) encode(piece string) []int {
	var syms []string
	for i := 0; i < len(piece); i++ {
		syms = append(syms, string(byteRune[piece[i]]))
	}
	for {
		best, at := -1, -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := n.rank[[2]string{syms[i], syms[i+1]}]; ok && (best < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		syms[at] += syms[at+1]
		syms = slices.Delete(syms, at+1, at+2)
	}
	ids := make([]int, len(syms))
	for i, s := range syms {
		ids[i] = n.vocab[s]
	}
	return ids
}

// bpePieces returns pre-tokenized pieces of Go source and of random text.
func bpePieces(t testing.TB, tok *Tokenizer) []string {
	src := goSource(t, 60_000)
	if testing.Short() || raceEnabled {
		src = src[:15_000]
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		src += randomText(r, 1+r.IntN(12))
	}
	// Long pieces: whitespace runs, repeated letters, CJK runs.
	src += strings.Repeat(" ", 300) + "x" + strings.Repeat("ab", 200) + " " + strings.Repeat("的", 120)
	src += " " + strings.Repeat("=", 97) + " " + strings.Repeat("\xff", 70)
	seen := map[string]bool{}
	var out []string
	var rec func(s string, k int)
	sc := tok.getScratch()
	rec = func(s string, k int) {
		if k == len(tok.stages) {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
			return
		}
		for _, p := range tok.stages[k].split(s, nil, sc) {
			rec(s[p.start:p.end], k+1)
		}
	}
	rec(src, 0)
	return out
}

func TestBPEMatchesNaive(t *testing.T) {
	tok := deepSeek(t)
	ref := loadNaive(t)
	sc := &scratch{}
	long := 0
	for _, p := range bpePieces(t, tok) {
		want := ref.encode(p)
		// Both merge strategies, without the cache.
		lin := tok.model.mergeLinear(tok.model.symbols(p, nil), sc)
		got := make([]int, len(lin))
		for i, id := range lin {
			got[i] = int(id)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("linear merge of %q = %v, want %v", p, got, want)
		}
		hp := tok.model.mergeHeap(nil, tok.model.symbols(p, nil), sc)
		got = got[:0]
		for _, id := range hp {
			got = append(got, int(id))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("heap merge of %q = %v, want %v", p, got, want)
		}
		if len(p) > tok.model.linear {
			long++
		}
	}
	if long == 0 {
		t.Fatal("no piece long enough for the heap path")
	}
}

// TestEncodeFastMatchesRegexp2 compares the whole pipeline with the
// hand-written scanners against the same tokenizer running every pattern on
// regexp2.
func TestEncodeFastMatchesRegexp2(t *testing.T) {
	fast := deepSeek(t)
	for i, st := range fast.stages {
		if _, ok := st.m.(*regexMatcher); ok {
			t.Fatalf("stage %d of the DeepSeek-V3 pre-tokenizer runs on regexp2, not a hand-written scanner", i)
		}
	}
	data, err := os.ReadFile(testutil.Fixture(t, "tokenizer", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	slow, err := fromJSON(data, false)
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{goSource(t, 100_000)}
	if testing.Short() || raceEnabled {
		texts[0] = texts[0][:20_000]
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		texts = append(texts, randomText(r, 1+r.IntN(40)))
	}
	for _, s := range texts {
		got, want := fast.Encode(s), slow.Encode(s)
		if !slices.Equal(got, want) {
			t.Fatalf("Encode(%.200q): hand-written scanners give %d ids, regexp2 %d; first difference at %d",
				s, len(got), len(want), firstDiff(got, want))
		}
	}
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
