package tokenizer

import (
	"os"
	"testing"
	"time"

	"github.com/dsv3go/dsv3/internal/testutil"
)

// benchEncode encodes text b.N times, reporting MB/s (b.SetBytes, wall
// clock), tokens/s, and MB per CPU second of the whole process (the same
// throughput undistorted by other processes loading the machine; run with
// -cpu 1 so that it is one core's). With cold, every iteration starts from
// an empty word cache.
func benchEncode(b *testing.B, tok *Tokenizer, text string, cold bool) {
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	var ids []int
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		if cold {
			b.StopTimer()
			tok.model.cache = newWordCache(defaultCacheEntries)
			b.StartTimer()
		}
		c0, ok0 := cpuTime()
		ids = tok.AppendEncode(ids[:0], text)
		c1, ok1 := cpuTime()
		cpu += c1 - c0
		if !ok0 || !ok1 {
			cpu = -1 << 62
		}
	}
	b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	if cpu > 0 {
		b.ReportMetric(float64(len(text))*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	}
}

// copyTokenizer returns a tokenizer sharing t's tables with its own cache.
func copyTokenizer(b *testing.B, t *Tokenizer) *Tokenizer {
	c, err := t.WithConfig(t.Config())
	if err != nil {
		b.Fatal(err)
	}
	m := *t.model
	m.cache = newWordCache(defaultCacheEntries)
	c.model = &m
	return c
}

// BenchmarkEncodeGoSource encodes 1 MB of Go source from GOROOT/src on one
// goroutine: warm (the word cache filled by earlier iterations, the steady
// state) and cold (an empty cache each time).
func BenchmarkEncodeGoSource(b *testing.B) {
	src := goSource(b, 1<<20)
	tok := deepSeek(b)
	b.Run("warm", func(b *testing.B) { benchEncode(b, copyTokenizer(b, tok), src, false) })
	b.Run("cold", func(b *testing.B) { benchEncode(b, copyTokenizer(b, tok), src, true) })
}

// BenchmarkEncodeGoSourceRegexp2 is the same with every split pattern run
// by regexp2 instead of the hand-written scanners (on 256 KB).
func BenchmarkEncodeGoSourceRegexp2(b *testing.B) {
	src := goSource(b, 1<<18)
	data, err := os.ReadFile(testutil.Fixture(b, "tokenizer", "tokenizer.json"))
	if err != nil {
		b.Fatal(err)
	}
	tok, err := fromJSON(data, false)
	if err != nil {
		b.Fatal(err)
	}
	benchEncode(b, tok, src, false)
}

// BenchmarkDecode decodes the ids of 1 MB of Go source.
func BenchmarkDecode(b *testing.B) {
	src := goSource(b, 1<<20)
	tok := deepSeek(b)
	ids := tok.Encode(src)
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for range b.N {
		if tok.Decode(ids, false) != src {
			b.Fatal("round trip failed")
		}
	}
	b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkLoad parses the 7.8 MB DeepSeek-V3 tokenizer.json.
func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile(testutil.Fixture(b, "tokenizer", "tokenizer.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for range b.N {
		if _, err := FromJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}
