package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3/examples/deepseekv3"
	"github.com/dsv3go/dsv3/examples/deepseekv3/tokenizer"
	"github.com/dsv3go/dsv3/internal/testutil"
)

func tinyTokens(t *testing.T, name string) []int32 {
	t.Helper()
	var m map[string][]int32
	testutil.ReadJSON(t, testutil.Fixture(t, "tiny", "tokens.json"), &m)
	if m[name] == nil {
		t.Fatalf("tokens.json has no %s", name)
	}
	return m[name]
}

func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

type dumped struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
}

// checkDump compares a dump file with a reference array: the shape, the
// strict relative error max |err| / max |want| <= 1e-4, and the argmax of
// every row.
func checkDump(t *testing.T, path, ref string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dumped
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	want, shape := testutil.Expected(t, ref)
	if !slices.Equal(d.Shape, shape) || len(d.Data) != len(want) {
		t.Fatalf("%s: shape %v with %d values, want %v (%s)", path, d.Shape, len(d.Data), shape, ref)
	}
	if e := testutil.RelErr(d.Data, want); e > 1e-4 {
		t.Errorf("%s: max rel err %.3g against %s, want <= 1e-4", path, e, ref)
	}
	cols := shape[1]
	for r := 0; r < shape[0]; r++ {
		g, w := d.Data[r*cols:(r+1)*cols], want[r*cols:(r+1)*cols]
		ga, wa := 0, 0
		for j := range g {
			if g[j] > g[ga] {
				ga = j
			}
			if w[j] > w[wa] {
				wa = j
			}
		}
		if ga != wa {
			t.Errorf("%s row %d: argmax %d, reference %d", path, r, ga, wa)
		}
	}
}

// TestDumpLogits runs the README's command: -dump-logits (and
// -dump-mtp-logits) with -n 0 on the tiny fixture checkpoint writes the
// reference's logits.
func TestDumpLogits(t *testing.T) {
	dir := t.TempDir()
	lg, mlg := filepath.Join(dir, "out.json"), filepath.Join(dir, "mtp.json")
	var stdout, stderr bytes.Buffer
	args := []string{"-model", testutil.Fixture(t, "tiny"), "-tokens", joinIDs(tinyTokens(t, "seq40")), "-n", "0",
		"-dump-logits", lg, "-dump-mtp-logits", mlg}
	if err := run(args, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != 0 {
		t.Errorf("-n 0 printed %q", stdout.String())
	}
	checkDump(t, lg, "logits_f32_seq40")
	checkDump(t, mlg, "mtp_logits_f32_seq40")
	t.Log(strings.TrimSpace(stderr.String()))
}

// TestGenerateIDs: the printed ids are Generate's, with and without -mtp,
// for one prompt and for a batch.
func TestGenerateIDs(t *testing.T) {
	tiny := testutil.Fixture(t, "tiny")
	ck, err := deepseekv3.Load(tiny, deepseekv3.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	p0, p1 := tinyTokens(t, "seq40")[:20], tinyTokens(t, "seq200")[7:16]
	for _, tc := range []struct {
		name    string
		args    []string
		prompts [][]int32
		opt     deepseekv3.GenerateOptions
	}{
		{"greedy", []string{"-tokens", joinIDs(p0), "-n", "12"}, [][]int32{p0}, deepseekv3.GenerateOptions{MaxNewTokens: 12}},
		{"greedy mtp", []string{"-tokens", joinIDs(p0), "-n", "12", "-mtp"}, [][]int32{p0}, deepseekv3.GenerateOptions{MaxNewTokens: 12}},
		{"sampled batch", []string{"-tokens", joinIDs(p0), "-tokens", joinIDs(p1), "-n", "6", "-temperature", "0.7", "-top-p", "0.9", "-seed", "11"},
			[][]int32{p0, p1}, deepseekv3.GenerateOptions{MaxNewTokens: 6, Temperature: 0.7, TopP: 0.9, Seed: 11}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(append([]string{"-model", tiny}, tc.args...), nil, &stdout, &stderr); err != nil {
				t.Fatal(err)
			}
			tc.opt.StopTokens = []int32{int32(*ck.Cfg.EOSTokenID)}
			g, err := ck.Generate(context.Background(), tc.prompts, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			var want strings.Builder
			for i, out := range g.Tokens {
				if len(tc.prompts) > 1 {
					fmt.Fprintf(&want, "[%d] ", i)
				}
				want.WriteString(strings.ReplaceAll(fmt.Sprint(out), " ", ",") + "\n")
			}
			if stdout.String() != want.String() {
				t.Errorf("printed %q, want %q", stdout.String(), want.String())
			}
			for _, w := range []string{"prefill: ", "tokens/s", "decode: "} {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("standard error lacks %q: %s", w, stderr.String())
				}
			}
			if slices.Contains(tc.args, "-mtp") && !strings.Contains(stderr.String(), "drafts accepted") {
				t.Errorf("-mtp does not report the acceptance: %s", stderr.String())
			}
		})
	}
}

// TestPromptText: -prompt is tokenized with the model directory's
// tokenizer.json (BOS prepended) and the continuation printed as its text.
// The model is the tiny checkpoint with the tokenizer package's small
// example tokenizer (its 479 ids fit the model's 512).
func TestPromptText(t *testing.T) {
	tiny := testutil.Fixture(t, "tiny")
	dir := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors", "model.safetensors.index.json"} {
		if err := os.Symlink(filepath.Join(tiny, f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	ex := filepath.Join("..", "deepseekv3", "tokenizer", "testdata", "example")
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(ex, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := deepseekv3.Load(dir, deepseekv3.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	eos, _ := tok.EOS()
	prompts := []string{"The cat ate 12345 fish.", "Hello"}
	var ids [][]int32
	for _, p := range prompts {
		var v []int32
		for _, id := range tok.EncodeWithSpecialTokens(p) {
			v = append(v, int32(id))
		}
		ids = append(ids, v)
	}
	g, err := ck.Generate(context.Background(), ids, deepseekv3.GenerateOptions{MaxNewTokens: 10, StopTokens: []int32{int32(eos)}})
	if err != nil {
		t.Fatal(err)
	}
	text := func(out []int32) string {
		v := make([]int, len(out))
		for i, id := range out {
			v[i] = int(id)
		}
		return tok.Decode(v, true)
	}
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-model", dir, "-prompt", prompts[0], "-n", "10"}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if want := text(g.Tokens[0]) + "\n"; stdout.String() != want {
		t.Errorf("single prompt printed %q, want %q", stdout.String(), want)
	}
	stdout.Reset()
	if err := run([]string{"-model", dir, "-prompt", prompts[0], "-prompt", prompts[1], "-n", "10", "-mtp"}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[0] %s\n[1] %s\n", text(g.Tokens[0]), text(g.Tokens[1]))
	if stdout.String() != want {
		t.Errorf("batch printed %q, want %q", stdout.String(), want)
	}
}

// TestTokenize: -tokenize prints the ids Hugging Face's tokenizer gives for
// every case of the real DeepSeek-V3 tokenizer's cases.json.
func TestTokenize(t *testing.T) {
	var cases struct {
		Cases []struct {
			ID   string `json:"id"`
			Text string `json:"text"`
			IDs  []int  `json:"ids"`
		} `json:"cases"`
	}
	testutil.ReadJSON(t, testutil.Fixture(t, "tokenizer", "cases.json"), &cases)
	if len(cases.Cases) == 0 {
		t.Fatal("cases.json has no cases")
	}
	var in, want bytes.Buffer
	for _, c := range cases.Cases {
		b, _ := json.Marshal(c.Text)
		in.Write(b)
		in.WriteByte('\n')
		want.WriteString(idsJSON(c.IDs) + "\n")
	}
	var stdout, stderr bytes.Buffer
	args := []string{"-tokenizer", testutil.Fixture(t, "tokenizer", "tokenizer.json"), "-tokenize"}
	if err := run(args, &in, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(stdout.String(), "\n")
	exp := strings.Split(want.String(), "\n")
	if len(got) != len(exp) {
		t.Fatalf("%d output lines for %d cases", len(got)-1, len(exp)-1)
	}
	for i := range exp {
		if got[i] != exp[i] {
			t.Errorf("case %s: printed %s, want %s", cases.Cases[i].ID, got[i], exp[i])
		}
	}
	// A bad line is an error naming it.
	err := run(args, strings.NewReader("\"ok\"\nnot json\n"), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("malformed input: error %v, want one naming line 2", err)
	}
}

func TestBadArguments(t *testing.T) {
	tiny := testutil.Fixture(t, "tiny")
	out := filepath.Join(t.TempDir(), "x.json")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tokens", "1,2"}, "-model DIR is required"},
		{[]string{"-model", tiny}, "no prompt"},
		{[]string{"-model", tiny, "-tokens", "1,2", "-prompt", "hi"}, "not both"},
		{[]string{"-model", tiny, "-tokens", "1,x,3"}, `item 1 ("x") is not a token id`},
		{[]string{"-model", tiny, "-tokens", "1,2", "-precision", "fp16"}, `precision "fp16"`},
		{[]string{"-model", tiny, "-tokens", "1,2", "-tokens", "3", "-dump-logits", out}, "exactly one prompt"},
		{[]string{"-model", tiny, "-prompt", "hi"}, "no tokenizer"},
		{[]string{"-tokenize"}, "no tokenizer"},
		{[]string{"-model", tiny, "-tokens", "1,2", "-n", "-2"}, "-n -2"},
		{[]string{"-model", tiny, "-tokens", "1,600"}, "token 600 at position 1 is outside the vocabulary"},
		{[]string{"-model", tiny, "-tokens", "1,2", "-temperature", "-1"}, "Temperature = -1"},
		{[]string{"-model", tiny, "-tokens", "7", "-n", "0", "-dump-mtp-logits", out}, "at least 2 tokens"},
		{[]string{"-model", filepath.Join(tiny, "nope"), "-tokens", "1"}, "config.json"},
		{[]string{"-model", tiny, "-tokens", "1", "extra"}, "unexpected arguments"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(tc.args, nil, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestShowProgress(t *testing.T) {
	if showProgress(false, 10<<20) || !showProgress(true, 10<<20) || !showProgress(false, 2<<30) {
		t.Error("the bar shows on a terminal or for checkpoints over 1 GiB, and only then")
	}
	if n := checkpointBytes(testutil.Fixture(t, "tiny")); n <= 0 {
		t.Errorf("checkpointBytes of the tiny fixture = %d", n)
	}
	var buf bytes.Buffer
	if isTerminal(&buf) {
		t.Error("a buffer is not a terminal")
	}
	var stderr bytes.Buffer
	ck, err := load(testutil.Fixture(t, "tiny"), deepseekv3.FP8, true, &stderr, true)
	if err != nil {
		t.Fatal(err)
	}
	ck.Close()
	if s := stderr.String(); !strings.Contains(s, "loading tiny") || !strings.Contains(s, "100%") {
		t.Errorf("no progress bar drawn: %q", s)
	}
}
