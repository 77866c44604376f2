package tokenizer

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The hand-written matchers must find exactly the matches regexp2 finds for
// the same pattern.

// interesting are runes at the edges of every class the three patterns
// test, and a few invalid UTF-8 bytes.
var interesting = []string{
	"a", "Z", "q", "é", "ß", "Ω", "ж", "ا", "ה", "ü", "ñ", "ǅ", "ʰ", // letters (Lu, Ll, Lt, Lm)
	"\u0301", "\u0903", "\u20DD", // marks Mn, Mc, Me
	"0", "7", "9", "²", "½", "Ⅻ", "٣", "१", "〇", // numbers Nd, No, Nl
	"!", "\"", "#", "$", "%", "&", "'", "(", ")", "*", "+", ",", "-", ".", "/",
	":", ";", "<", "=", ">", "?", "@", "[", "\\", "]", "^", "_", "`", "{", "|", "}", "~",
	"¡", "¿", "«", "—", "…", "、", "。", "，", "！", "€", "©", "°", "→", "😀", "☕", "\uFFFD", // P and S
	" ", " ", "  ", "\t", "\n", "\r", "\r\n", "\v", "\f", "\u0085", "\u00A0", "\u1680", "\u2000",
	"\u2028", "\u2029", "\u202F", "\u205F", "\u3000", // white space
	"\u200B", "\u200D", "\u00AD", "\x00", "\x1b", "\u180E", "\uFEFF", // not white space
	"一", "世", "界", "\u9fa5", "\u9fa6", "ぁ", "\u3040", "\u309f", "\u30a0", "ア", "\u30ff", "\u3100", "ー", "한",
	"\x80", "\xff", "\xe4\xb8", "\xf0\x9f\x98", "\xc3", "\xed\xa0\x80", // invalid UTF-8
	"hello", "World", "123", "4567", "<|EOT|>", "<｜User｜>",
}

// randomText joins n random interesting pieces.
func randomText(r *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(interesting[r.IntN(len(interesting))])
	}
	return b.String()
}

var patterns = []struct {
	name, pattern string
}{
	{"digits", deepSeekDigits},
	{"cjk", deepSeekCJK},
	{"words", deepSeekWords},
}

// checkAgainstRegexp2 compares every hand-written matcher with regexp2 on s.
func checkAgainstRegexp2(t *testing.T, refs []*regexMatcher, s string) {
	t.Helper()
	sc := &scratch{}
	for k, p := range patterns {
		got := fastMatcher(p.pattern).matches(s, nil, sc)
		want := refs[k].matches(s, nil, sc)
		if !slices.Equal(got, want) {
			t.Fatalf("%s on %q:\n hand    %q\n regexp2 %q", p.name, s, pieces(s, got), pieces(s, want))
		}
	}
}

func pieces(s string, sp []span) []string {
	out := make([]string, len(sp))
	for i, p := range sp {
		out[i] = s[p.start:p.end]
	}
	return out
}

func referenceMatchers(t testing.TB) []*regexMatcher {
	buildClasses()
	refs := make([]*regexMatcher, len(patterns))
	for k, p := range patterns {
		rm, err := compileRegex(p.pattern)
		if err != nil {
			t.Fatal(err)
		}
		refs[k] = rm
	}
	return refs
}

func TestScannersMatchRegexp2Random(t *testing.T) {
	refs := referenceMatchers(t)
	r := rand.New(rand.NewPCG(1, 2))
	n := 4000
	if testing.Short() {
		n = 500
	}
	for range n {
		checkAgainstRegexp2(t, refs, randomText(r, 1+r.IntN(24)))
	}
	// Every single interesting piece and every pair.
	for _, a := range interesting {
		for _, b := range interesting {
			checkAgainstRegexp2(t, refs, a+b)
		}
	}
}

// TestScannersMatchRegexp2Classes checks every BMP rune, alone and between
// context that exercises the optional and lookahead parts of the patterns.
func TestScannersMatchRegexp2Classes(t *testing.T) {
	refs := referenceMatchers(t)
	step := 1
	if testing.Short() || raceEnabled {
		step = 7
	}
	for r := rune(0); r < 0x10000; r += rune(step) {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		c := string(r)
		checkAgainstRegexp2(t, refs, "a"+c+"b "+c+c+"1 "+c+"\n.!"+c+"x")
	}
	for _, r := range []rune{0x10000, 0x1F600, 0x1D7CE, 0x20000, 0xE0001, 0x10FFFF} {
		c := string(r)
		checkAgainstRegexp2(t, refs, "a"+c+"b "+c+c+"1 "+c+"\n.!"+c+"x")
	}
}

// TestScannersMatchRegexp2GoSource runs both on real Go source files.
func TestScannersMatchRegexp2GoSource(t *testing.T) {
	refs := referenceMatchers(t)
	src := goSource(t, 200_000)
	if testing.Short() {
		src = src[:20_000]
	}
	for len(src) > 0 {
		n := min(len(src), 4096)
		checkAgainstRegexp2(t, refs, src[:n])
		src = src[n:]
	}
}

// TestClassesMatchRegexp2 checks the class table against regexp2's own
// classes for every rune below U+30000.
func TestClassesMatchRegexp2(t *testing.T) {
	buildClasses()
	classes := []struct {
		pattern string
		bit     uint16
	}{
		{`^\p{L}$`, clL}, {`^\p{M}$`, clM}, {`^\p{N}$`, clN}, {`^\p{P}$`, clP},
		{`^\p{S}$`, clS}, {`^\s$`, clSpace},
	}
	step := rune(1)
	if testing.Short() || raceEnabled {
		step = 13
	}
	for _, c := range classes {
		rm, err := compileRegex(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		for r := rune(0); r < 0x30000; r += step {
			if !utf8.ValidRune(r) {
				continue
			}
			s := string(r)
			m, err := rm.re.MatchString(s)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := classAt(s, 0)
			if m != (got&c.bit != 0) {
				t.Fatalf("U+%04X: regexp2 %s = %v, class table %v", r, c.pattern, m, got&c.bit != 0)
			}
		}
	}
	// \s must be Unicode White_Space (Oniguruma's \s), not ASCII.
	for _, r := range []rune{'\u0085', '\u00A0', '\u2028', '\u3000'} {
		if c, _ := classAt(string(r), 0); c&clSpace == 0 || !unicode.Is(unicode.White_Space, r) {
			t.Errorf("U+%04X is White_Space but not in the \\s class", r)
		}
	}
}

// FuzzScanners checks the hand-written matchers against regexp2 on any
// input.
func FuzzScanners(f *testing.F) {
	for _, s := range interesting {
		f.Add(s + " x" + s + "12345\n")
	}
	f.Add("func main() {\n\tfmt.Println(\"Hello, 世界\")\n}\n")
	refs := referenceMatchers(f)
	f.Fuzz(func(t *testing.T, s string) {
		checkAgainstRegexp2(t, refs, s)
	})
}

var (
	gorootOnce sync.Once
	goroot     string
	gorootErr  error
)

// goSource returns about n bytes of Go source from GOROOT/src, in a fixed
// order.
func goSource(t testing.TB, n int) string {
	t.Helper()
	gorootOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		goroot, gorootErr = strings.TrimSpace(string(out)), err
	})
	if gorootErr != nil {
		t.Skipf("go env GOROOT: %v", gorootErr)
	}
	root := filepath.Join(goroot, "src")
	var b strings.Builder
	var files []string
	for _, dir := range []string{"fmt", "strings", "bytes", "strconv", "sort", "bufio", "unicode/utf8", "encoding/json", "net/http", "go/parser", "go/printer", "runtime"} {
		m, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
		files = append(files, m...)
	}
	for _, f := range files {
		if b.Len() >= n {
			break
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		b.Write(data)
	}
	if b.Len() < n {
		t.Skipf("only %d bytes of Go source under %s", b.Len(), root)
	}
	return b.String()[:n]
}
