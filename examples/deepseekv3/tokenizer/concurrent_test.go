package tokenizer

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// TestConcurrentEncode encodes from several goroutines sharing one
// tokenizer (and so its word cache and scratch pool) and checks each result
// against the same text encoded alone by a tokenizer with its own cache. Run
// under -race it also checks the sharing is race-free.
func TestConcurrentEncode(t *testing.T) {
	shared := deepSeek(t)
	alone := *shared.model
	alone.cache = newWordCache(defaultCacheEntries)
	solo := &Tokenizer{
		vocab: shared.vocab, modelTok: shared.modelTok, modelHas: shared.modelHas,
		model: &alone, added: shared.added, addedIdx: shared.addedIdx,
		stages: shared.stages, prefixSpace: shared.prefixSpace, byteLevelSplit: shared.byteLevelSplit,
		idTok: shared.idTok, idHas: shared.idHas, idBytes: shared.idBytes, idSpecial: shared.idSpecial,
	}
	src := goSource(t, 64_000)
	const workers = 4
	var texts []string
	for i := range 32 {
		texts = append(texts, src[i*2000:i*2000+2000]+fmt.Sprintf(" <｜User｜>%d 世界", i))
	}
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i] = solo.Encode(s)
	}
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range texts {
				i := (k + w*7) % len(texts)
				if got := shared.Encode(texts[i]); !slices.Equal(got, want[i]) {
					errs <- fmt.Sprintf("worker %d, text %d: %d ids, want %d", w, i, len(got), len(want[i]))
					return
				}
				if shared.Decode(want[i], false) != texts[i] {
					errs <- fmt.Sprintf("worker %d, text %d: decode differs", w, i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
