// Command generate runs a DeepSeek-V3-architecture checkpoint (config.json
// and safetensors, FP8 or not) on prompts: greedy or sampled generation with
// a KV cache, optionally with MTP speculative decoding, and logit dumps for
// checking against other implementations.
//
// Usage:
//
//	generate -model DIR -prompt TEXT [-n 64] [-temperature 0] [-top-p 1] [-seed 0] [-precision f32|bf16|fp8] [-mtp]
//	generate -model DIR -tokens 1,2,3 [flags as above]
//	generate -model DIR -tokens 1,2,3 -n 0 -dump-logits FILE [-dump-mtp-logits FILE]
//	generate -tokenizer FILE -tokenize < strings.jsonl
//
// -prompt text is tokenized with DIR/tokenizer.json (and its
// tokenizer_config.json: the BOS token is prepended) or with -tokenizer
// FILE; the continuation is printed as text. -tokens gives the prompt as
// token ids; the continuation is printed as a JSON array of ids. Both flags
// may be repeated to generate for several prompts at once (one batch); each
// result is then printed on its own line, prefixed with [i]. Generation
// stops after -n tokens or at the end-of-sequence token (the tokenizer's, or
// config.json's eos_token_id). -temperature 0 decodes greedily;
// -mtp drafts with the checkpoint's first MTP module and verifies the drafts
// (report §2.2), which leaves greedy output unchanged and sampled output
// distributed as without it. Prefill and decode tokens per second (and the
// MTP acceptance rate) go to standard error.
//
// -dump-logits FILE writes the logits of every prompt position as JSON
// {"shape":[T,V],"data":[...]} (row-major float32 values) from a single
// cache-free prefill of the one prompt; -dump-mtp-logits FILE writes the MTP
// module's logits for positions 0..T-2 (row p predicts token p+2) in the
// same form. With -n 0 nothing is generated.
//
// -tokenize reads one JSON-encoded string per line from standard input and
// prints each one's token ids (no special tokens added) as a JSON array on
// its own line; it needs -tokenizer FILE or -model DIR holding a
// tokenizer.json.
//
// While a checkpoint loads, a progress bar is drawn on standard error when
// it is a terminal or the checkpoint is larger than 1 GiB.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/examples/deepseekv3"
	"github.com/dsv3go/dsv3/examples/deepseekv3/tokenizer"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

// listFlag collects the values of a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " | ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// largeCheckpoint is the size above which loading shows a progress bar
// even when standard error is not a terminal.
const largeCheckpoint = 1 << 30

type options struct {
	model, tokPath, precision string
	prompts, tokens           listFlag
	n                         int
	temperature, topP         float64
	seed                      uint64
	mtp, tokenize             bool
	dumpLogits, dumpMTP       string
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.model, "model", "", "checkpoint directory (config.json, safetensors, optionally tokenizer.json)")
	fs.Var(&o.prompts, "prompt", "prompt text, tokenized with the model's tokenizer.json or -tokenizer (repeat for a batch)")
	fs.Var(&o.tokens, "tokens", "prompt as comma-separated token ids, e.g. 1,2,3 (repeat for a batch)")
	fs.IntVar(&o.n, "n", 64, "most tokens to generate per prompt (0: none)")
	fs.Float64Var(&o.temperature, "temperature", 0, "sampling temperature (0: greedy)")
	fs.Float64Var(&o.topP, "top-p", 1, "nucleus sampling: keep the most probable tokens up to this probability mass")
	fs.Uint64Var(&o.seed, "seed", 0, "sampler seed")
	fs.StringVar(&o.precision, "precision", "f32", "f32, bf16 or fp8")
	fs.BoolVar(&o.mtp, "mtp", false, "speculative decoding with the checkpoint's MTP module")
	fs.StringVar(&o.dumpLogits, "dump-logits", "", "write the logits of every prompt position to this JSON file")
	fs.StringVar(&o.dumpMTP, "dump-mtp-logits", "", "write the MTP module's logits of prompt positions 0..T-2 to this JSON file")
	fs.StringVar(&o.tokPath, "tokenizer", "", "tokenizer.json file (default: the model directory's)")
	fs.BoolVar(&o.tokenize, "tokenize", false, "read JSON strings, one a line, from standard input and print their token ids")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.tokenize {
		tok, err := loadTokenizer(o, true)
		if err != nil {
			return err
		}
		return tokenizeLines(tok, stdin, stdout)
	}
	return generate(o, stdout, stderr)
}

// loadTokenizer returns the -tokenizer file's tokenizer, else the model
// directory's when it has a tokenizer.json; nil when neither exists and
// the tokenizer is not required.
func loadTokenizer(o options, required bool) (*tokenizer.Tokenizer, error) {
	if o.tokPath != "" {
		return tokenizer.Load(o.tokPath)
	}
	if o.model != "" {
		p := filepath.Join(o.model, "tokenizer.json")
		if _, err := os.Stat(p); err == nil {
			return tokenizer.Load(o.model)
		}
	}
	if required {
		return nil, errors.New("no tokenizer: give -tokenizer FILE, or -model DIR holding a tokenizer.json")
	}
	return nil, nil
}

// tokenizeLines prints the ids of each JSON string read from r.
func tokenizeLines(tok *tokenizer.Tokenizer, r io.Reader, w io.Writer) error {
	br := bufio.NewReader(r)
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var s string
			if jerr := json.Unmarshal(b, &s); jerr != nil {
				return fmt.Errorf("standard input line %d: not a JSON string: %v", line, jerr)
			}
			ids := tok.Encode(s)
			bw.WriteString(idsJSON(ids))
			bw.WriteByte('\n')
		}
		if err == io.EOF {
			return bw.Flush()
		}
		if err != nil {
			return err
		}
	}
}

func idsJSON[T int | int32](ids []T) string {
	b := make([]byte, 0, 8*len(ids)+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	return string(append(b, ']'))
}

// parseTokens reads "1,2,3".
func parseTokens(s string) ([]int32, error) {
	var ids []int32
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("-tokens %q: item %d (%q) is not a token id", s, i, f)
		}
		ids = append(ids, int32(v))
	}
	return ids, nil
}

func generate(o options, stdout, stderr io.Writer) error {
	if o.model == "" {
		return errors.New("-model DIR is required")
	}
	if len(o.prompts) > 0 && len(o.tokens) > 0 {
		return errors.New("give the prompts with -prompt or with -tokens, not both")
	}
	if len(o.prompts) == 0 && len(o.tokens) == 0 {
		return errors.New("no prompt: give -prompt TEXT or -tokens 1,2,3")
	}
	prec, err := deepseekv3.ParsePrecision(o.precision)
	if err != nil {
		return err
	}
	dump := o.dumpLogits != "" || o.dumpMTP != ""
	if dump && len(o.prompts)+len(o.tokens) != 1 {
		return errors.New("-dump-logits and -dump-mtp-logits take exactly one prompt")
	}
	if o.n < 0 {
		return fmt.Errorf("-n %d must be >= 0", o.n)
	}
	tok, err := loadTokenizer(o, len(o.prompts) > 0)
	if err != nil {
		return err
	}
	var prompts [][]int32
	for _, s := range o.tokens {
		ids, err := parseTokens(s)
		if err != nil {
			return err
		}
		prompts = append(prompts, ids)
	}
	for _, p := range o.prompts {
		var ids []int32
		for _, id := range tok.EncodeWithSpecialTokens(p) {
			ids = append(ids, int32(id))
		}
		prompts = append(prompts, ids)
	}

	show := showProgress(isTerminal(stderr), checkpointBytes(o.model))
	ck, err := load(o.model, prec, o.mtp || o.dumpMTP != "", stderr, show)
	if err != nil {
		return err
	}
	defer ck.Close()
	if dump {
		if err := dumpLogits(ck, prompts[0], o, stderr); err != nil {
			return err
		}
	}
	if o.n == 0 {
		return nil
	}

	gopt := deepseekv3.GenerateOptions{MaxNewTokens: o.n, Temperature: o.temperature, TopP: o.topP, Seed: o.seed, MTP: o.mtp}
	if tok != nil {
		if eos, ok := tok.EOS(); ok {
			gopt.StopTokens = append(gopt.StopTokens, int32(eos))
		}
	}
	if len(gopt.StopTokens) == 0 && ck.Cfg.EOSTokenID != nil {
		gopt.StopTokens = append(gopt.StopTokens, int32(*ck.Cfg.EOSTokenID))
	}
	text := len(o.prompts) > 0
	var st *streamer
	if text && len(prompts) == 1 {
		st = &streamer{tok: tok, w: stdout}
		gopt.OnToken = func(_ int, id int32) { st.add(id) }
	}
	g, err := ck.Generate(context.Background(), prompts, gopt)
	if err != nil {
		return err
	}
	for i, out := range g.Tokens {
		switch {
		case st != nil:
			st.finish()
		case text:
			fmt.Fprintf(stdout, "[%d] %s\n", i, decode(tok, out))
		case len(prompts) == 1:
			fmt.Fprintln(stdout, idsJSON(out))
		default:
			fmt.Fprintf(stdout, "[%d] %s\n", i, idsJSON(out))
		}
	}
	s := g.Stats
	fmt.Fprintf(stderr, "prefill: %d tokens in %v (%.1f tokens/s); decode: %d tokens in %d steps, %v (%.1f tokens/s)\n",
		s.PrefillTokens, s.PrefillTime.Round(time.Microsecond), s.PrefillRate(), s.DecodeTokens, s.DecodeSteps, s.DecodeTime.Round(time.Microsecond), s.DecodeRate())
	if o.mtp {
		fmt.Fprintf(stderr, "MTP: %d of %d drafts accepted (%.1f%%)\n", s.Accepted, s.Drafted, 100*s.AcceptanceRate())
	}
	return nil
}

func decode(tok *tokenizer.Tokenizer, ids []int32) string {
	v := make([]int, len(ids))
	for i, id := range ids {
		v[i] = int(id)
	}
	return tok.Decode(v, true)
}

// streamer prints generated text as soon as it is complete UTF-8, and at
// the end exactly what the tokenizer's Decode gives for all the ids.
type streamer struct {
	tok     *tokenizer.Tokenizer
	w       io.Writer
	ids     []int32
	pending []byte
	printed strings.Builder
}

func (s *streamer) add(id int32) {
	s.ids = append(s.ids, id)
	if s.tok.IsSpecial(int(id)) {
		return
	}
	b, _ := s.tok.TokenBytes(int(id))
	s.pending = append(s.pending, b...)
	if utf8.Valid(s.pending) {
		s.w.Write(s.pending)
		s.printed.Write(s.pending)
		s.pending = s.pending[:0]
	}
}

func (s *streamer) finish() {
	full := decode(s.tok, s.ids)
	rest := full
	if p := s.printed.String(); strings.HasPrefix(full, p) {
		rest = full[len(p):]
	} else {
		io.WriteString(s.w, "\n")
	}
	io.WriteString(s.w, rest+"\n")
}

// load reads the checkpoint, drawing a progress bar on stderr when show
// is set.
func load(dir string, prec deepseekv3.Precision, withMTP bool, stderr io.Writer, show bool) (*deepseekv3.Checkpoint, error) {
	opt := deepseekv3.LoadOptions{Precision: prec, MTP: withMTP}
	var bar *progressbar.ProgressBar
	if show {
		opt.Progress = func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetDescription("loading "+filepath.Base(dir)),
					progressbar.OptionSetWriter(stderr),
					progressbar.OptionShowBytes(true),
					progressbar.OptionShowTotalBytes(true),
					progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }))
			}
			bar.Set64(done)
		}
	}
	t0 := time.Now()
	ck, err := deepseekv3.Load(dir, opt)
	if err != nil {
		return nil, err
	}
	if bar != nil {
		bar.Finish()
	}
	fmt.Fprintf(stderr, "loaded %s (%d layers, %s precision, MTP %v) in %v\n", dir, len(ck.Layers), prec, withMTP, time.Since(t0).Round(time.Millisecond))
	return ck, nil
}

// showProgress decides whether loading draws a progress bar.
func showProgress(terminal bool, size int64) bool { return terminal || size > largeCheckpoint }

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// checkpointBytes is the total size of the directory's safetensors files.
func checkpointBytes(dir string) int64 {
	files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// dumpLogits runs one cache-free prefill over tokens and writes the logits
// (and the MTP logits) that o asks for.
func dumpLogits(ck *deepseekv3.Checkpoint, tokens []int32, o options, stderr io.Writer) error {
	s := dsv3.Seq{Count: 1, Len: len(tokens)}
	t0 := time.Now()
	out, err := ck.Forward(tokens, s, false, false)
	if err != nil {
		return err
	}
	el := time.Since(t0)
	fmt.Fprintf(stderr, "prefill (cache-free): %d tokens in %v (%.1f tokens/s)\n", len(tokens), el.Round(time.Microsecond), float64(len(tokens))/el.Seconds())
	if o.dumpLogits != "" {
		if err := writeMatrix(o.dumpLogits, out.Logits); err != nil {
			return err
		}
	}
	if o.dumpMTP != "" {
		lg, err := ck.MTPLogits(out.Hidden, tokens, s)
		if err != nil {
			return fmt.Errorf("-dump-mtp-logits: %w", err)
		}
		if err := writeMatrix(o.dumpMTP, lg); err != nil {
			return err
		}
	}
	return nil
}

// writeMatrix writes m as {"shape":[rows,cols],"data":[...]} with float32
// values in their shortest round-tripping form.
func writeMatrix(path string, m dsv3.Matrix) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 0, 32)
	fmt.Fprintf(w, `{"shape":[%d,%d],"data":[`, m.Rows, m.Cols)
	for i := 0; i < m.Rows; i++ {
		for j, v := range m.Row(i) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				f.Close()
				return fmt.Errorf("%s: logit (%d, %d) is %v, which JSON cannot hold", path, i, j, v)
			}
			if i > 0 || j > 0 {
				w.WriteByte(',')
			}
			w.Write(strconv.AppendFloat(buf[:0], float64(v), 'g', -1, 32))
		}
	}
	w.WriteString("]}\n")
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
