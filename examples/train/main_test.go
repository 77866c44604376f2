package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3/examples/deepseekv3"
)

// tinyArgs is a run small enough for a unit test.
func tinyArgs(data, out string, extra ...string) []string {
	return append([]string{"-data", data, "-out", out, "-quiet", "-hidden", "32", "-layers", "2", "-heads", "2",
		"-q-lora", "16", "-kv-lora", "16", "-qk-nope", "8", "-qk-rope", "8", "-v-head", "8", "-inter", "48",
		"-moe-inter", "16", "-experts", "8", "-topk", "2", "-groups", "4", "-topk-groups", "2", "-seq", "16",
		"-batch", "2", "-steps", "6", "-warmup", "2", "-eval-every", "3", "-eval-windows", "2", "-save-every", "3",
		"-sample", "8"}, extra...)
}

func writeCorpus(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "corpus.txt")
	var b strings.Builder
	for i := 0; i < 400; i++ {
		b.WriteString("func main() { fmt.Println(\"hello, world\") }\n")
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrainProgramEndToEnd(t *testing.T) {
	data := writeCorpus(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), tinyArgs(data, out), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, want := range []string{"step    6", "plot:", "sample", "drafts accepted"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	f, err := os.Open(filepath.Join(out, "log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Step != lines+1 || len(r.MaxVio) != 2 {
			t.Fatalf("log line %d: %+v", lines, r)
		}
	}
	if lines != 6 {
		t.Fatalf("%d log lines, want 6", lines)
	}
	if st, err := os.Stat(filepath.Join(out, "loss.png")); err != nil || st.Size() < 1000 {
		t.Fatalf("plot missing or empty: %v", err)
	}
	// The final checkpoint loads for inference.
	dir, err := deepseekv3.CheckpointDir(out)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := deepseekv3.Load(dir, deepseekv3.LoadOptions{MTP: true})
	if err != nil {
		t.Fatal(err)
	}
	ck.Close()
}

func TestTrainProgramResumeMatches(t *testing.T) {
	data := writeCorpus(t)
	straight, split := t.TempDir(), t.TempDir()
	var sink bytes.Buffer
	if err := run(context.Background(), tinyArgs(data, straight), &sink, &sink); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), tinyArgs(data, split, "-steps", "6"), &sink, &sink); err != nil {
		t.Fatal(err)
	}
	// Resume from the step-3 checkpoint of the split run and finish.
	resumeDir := filepath.Join(split, "step-3")
	out2 := t.TempDir()
	if err := run(context.Background(), []string{"-data", data, "-out", out2, "-quiet", "-resume", resumeDir, "-sample", "0", "-eval-every", "3", "-eval-windows", "2"}, &sink, &sink); err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(filepath.Join(straight, "step-6", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out2, "step-6", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("resumed run's final weights differ from the straight run's")
	}
}

func TestTrainProgramBadFlags(t *testing.T) {
	var sink bytes.Buffer
	for _, args := range [][]string{
		{"-precision", "fp4"},
		{"-groups", "3"},
		{"-data", "/nonexistent/corpus"},
		{"extra"},
	} {
		if err := run(context.Background(), append(args, "-quiet", "-out", t.TempDir()), &sink, &sink); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestCompareRuns(t *testing.T) {
	data := writeCorpus(t)
	a, b := t.TempDir(), t.TempDir()
	var sink bytes.Buffer
	if err := run(context.Background(), tinyArgs(data, a, "-sample", "0"), &sink, &sink); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), tinyArgs(data, b, "-sample", "0", "-gamma", "0"), &sink, &sink); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"-compare", a + "," + b, "-out", out}, &stdout, &sink); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "validation loss") || !strings.Contains(stdout.String(), "MaxVio of the last 20%") {
		t.Errorf("comparison output:\n%s", stdout.String())
	}
	if st, err := os.Stat(filepath.Join(out, "compare.png")); err != nil || st.Size() < 1000 {
		t.Fatalf("comparison plot missing: %v", err)
	}
	if err := run(context.Background(), []string{"-compare", filepath.Join(out, "nothing"), "-out", out}, &stdout, &sink); err == nil {
		t.Error("missing run accepted")
	}
}
