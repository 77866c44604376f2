// Command train trains a small DeepSeek-V3 from scratch in pure Go, with the
// report's recipe (arXiv 2412.19437): multi-head latent attention,
// DeepSeekMoE with auxiliary-loss-free balancing (§2.1.2), a multi-token
// prediction module (§2.2), AdamW with warm-up and cosine decay and
// gradient clipping (§4.2), and optionally FP8 mixed precision (§3.3).
//
// By default it trains on the Go standard library's source (found with
// `go env GOROOT`), byte-level, and finishes in a few minutes on two cores:
//
//	go run ./examples/train
//
// It prints the training and validation loss, tokens/s, achieved GFLOP/s
// and each MoE layer's MaxVio as it goes, writes every metric to
// OUT/log.jsonl, a loss and MaxVio plot to OUT/loss.png, checkpoints in the
// Hugging Face layout to OUT/step-N (OUT/latest names the newest; load one
// with examples/generate -model OUT/step-N), and a generated sample at the
// end. -resume OUT continues a run bit-exactly; Ctrl-C saves and exits.
// Every size is a flag; see -help.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/dsv3go/dsv3/examples/deepseekv3"
	"github.com/dsv3go/dsv3/examples/deepseekv3/tokenizer"
)

type options struct {
	// model
	hidden, layers, dense, heads, qLora, kvLora, nope, rope, vHead int
	inter, moeInter, experts, shared, topK, groups, topKGroups     int
	mtpDepth                                                       int
	// recipe
	steps, warmup, batch, seq, accum int
	lr, minLR                        float64
	lambda, gamma, alpha             float64
	seed                             uint64
	precision                        string
	// data and output
	data, tok, out, resume string
	maxBytes               int
	evalEvery, evalWindows int
	saveEvery, sampleLen   int
	quiet                  bool
	compare                string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.hidden, "hidden", 256, "hidden_size")
	fs.IntVar(&o.layers, "layers", 4, "num_hidden_layers")
	fs.IntVar(&o.dense, "dense", 1, "first_k_dense_replace: leading layers with a dense MLP")
	fs.IntVar(&o.heads, "heads", 4, "num_attention_heads")
	fs.IntVar(&o.qLora, "q-lora", 128, "q_lora_rank (0: direct q_proj)")
	fs.IntVar(&o.kvLora, "kv-lora", 128, "kv_lora_rank")
	fs.IntVar(&o.nope, "qk-nope", 32, "qk_nope_head_dim")
	fs.IntVar(&o.rope, "qk-rope", 16, "qk_rope_head_dim")
	fs.IntVar(&o.vHead, "v-head", 32, "v_head_dim")
	fs.IntVar(&o.inter, "inter", 512, "intermediate_size of the dense MLP")
	fs.IntVar(&o.moeInter, "moe-inter", 128, "moe_intermediate_size of each expert")
	fs.IntVar(&o.experts, "experts", 16, "n_routed_experts")
	fs.IntVar(&o.shared, "shared", 1, "n_shared_experts")
	fs.IntVar(&o.topK, "topk", 4, "num_experts_per_tok")
	fs.IntVar(&o.groups, "groups", 4, "n_group")
	fs.IntVar(&o.topKGroups, "topk-groups", 2, "topk_group")
	fs.IntVar(&o.mtpDepth, "mtp", 1, "num_nextn_predict_layers (MTP depth D)")
	fs.IntVar(&o.steps, "steps", 300, "optimizer steps")
	fs.IntVar(&o.warmup, "warmup", 30, "warm-up steps")
	fs.IntVar(&o.batch, "batch", 8, "sequences per micro-batch")
	fs.IntVar(&o.seq, "seq", 128, "tokens per sequence")
	fs.IntVar(&o.accum, "accum", 1, "micro-batches per optimizer step (gradient accumulation)")
	fs.Float64Var(&o.lr, "lr", 3e-3, "peak learning rate")
	fs.Float64Var(&o.minLR, "min-lr", 3e-4, "final learning rate of the cosine decay")
	fs.Float64Var(&o.lambda, "lambda", 0.3, "MTP loss weight λ (0: off)")
	fs.Float64Var(&o.gamma, "gamma", 0.01, "bias update speed γ of auxiliary-loss-free balancing (0: off; the report uses 0.001 over far longer training)")
	fs.Float64Var(&o.alpha, "alpha", 0, "sequence-wise balance loss factor α (0: off; the report uses 0.0001)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the initial weights and the batch order")
	fs.StringVar(&o.precision, "precision", "f32", "f32, or fp8 (FP8 Fprop/Dgrad/Wgrad, BF16 optimizer moments)")
	fs.StringVar(&o.data, "data", "", "a text file or directory to train on (default: the Go standard library's source)")
	fs.StringVar(&o.tok, "tokenizer", "", "a Hugging Face tokenizer.json (default: byte-level tokens)")
	fs.IntVar(&o.maxBytes, "max-bytes", 0, "read at most this many bytes of text (0: all)")
	fs.StringVar(&o.out, "out", "train-out", "output directory: log.jsonl, loss.png, checkpoints")
	fs.StringVar(&o.resume, "resume", "", "continue the run saved in this directory (or checkpoint)")
	fs.IntVar(&o.evalEvery, "eval-every", 25, "validate and report every this many steps")
	fs.IntVar(&o.evalWindows, "eval-windows", 16, "validation windows per evaluation")
	fs.IntVar(&o.saveEvery, "save-every", 100, "checkpoint every this many steps (0: only at the end)")
	fs.IntVar(&o.sampleLen, "sample", 96, "tokens to generate at the end (after a 32-token validation prompt)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar (it is shown only when standard error is a terminal)")
	fs.StringVar(&o.compare, "compare", "", "instead of training, compare finished runs: comma-separated output directories; the plot goes to -out/compare.png")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	return o, nil
}

// modelConfig maps the flags onto a DeepSeek-V3 config.json.
func (o *options) modelConfig(vocab int) *deepseekv3.Config {
	q := o.qLora
	eos := 0
	return &deepseekv3.Config{
		Architectures: []string{"DeepseekV3ForCausalLM"}, ModelType: "deepseek_v3",
		VocabSize: vocab, HiddenSize: o.hidden, IntermediateSize: o.inter, MoeIntermediateSize: o.moeInter,
		NumHiddenLayers: o.layers, NumNextnPredictLayers: o.mtpDepth, NumAttentionHeads: o.heads, NumKeyValueHeads: o.heads,
		NSharedExperts: o.shared, NRoutedExperts: o.experts, RoutedScalingFactor: 2.5, KVLoraRank: o.kvLora, QLoraRank: &q,
		QKRopeHeadDim: o.rope, VHeadDim: o.vHead, QKNopeHeadDim: o.nope, TopkMethod: "noaux_tc", NGroup: o.groups,
		TopkGroup: o.topKGroups, NumExpertsPerTok: o.topK, MoeLayerFreq: 1, FirstKDenseReplace: o.dense, NormTopkProb: true,
		ScoringFunc: "sigmoid", AuxLossAlpha: o.alpha, SeqAux: true, HiddenAct: "silu", MaxPositionEmbeddings: max(o.seq+1, 64),
		InitializerRange: 0.02, RMSNormEps: 1e-6, RopeTheta: 10000, TorchDType: "float32", EOSTokenID: &eos,
	}
}

func (o *options) recipe() (deepseekv3.TrainConfig, error) {
	p, err := deepseekv3.ParsePrecision(o.precision)
	if err != nil {
		return deepseekv3.TrainConfig{}, err
	}
	return deepseekv3.TrainConfig{Seed: o.seed, Steps: o.steps, Warmup: o.warmup, LR: o.lr, MinLR: o.minLR,
		Batch: o.batch, SeqLen: o.seq, Accum: o.accum, Lambda: float32(o.lambda), Gamma: float32(o.gamma),
		Alpha: float32(o.alpha), ClipNorm: 1, WeightDecay: 0.1, Precision: p}, nil
}

// record is one line of log.jsonl.
type record struct {
	Step      int       `json:"step"`
	LR        float64   `json:"lr"`
	Loss      float64   `json:"loss"`
	MTPLoss   float64   `json:"mtp_loss,omitempty"`
	Balance   float64   `json:"balance_loss,omitempty"`
	GradNorm  float64   `json:"grad_norm"`
	MaxVio    []float64 `json:"maxvio,omitempty"`
	ValLoss   *float64  `json:"val_loss,omitempty"`
	ValMTP    *float64  `json:"val_mtp_loss,omitempty"`
	TokensSec float64   `json:"tokens_per_s"`
	GFLOPs    float64   `json:"gflop_per_s"`
	Elapsed   float64   `json:"elapsed_s"`
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.compare != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
		return compareRuns(o.compare, filepath.Join(o.out, "compare.png"), stdout)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()

	encode, decode, vocab, err := o.tokenizer()
	if err != nil {
		return err
	}
	corp, err := loadCorpus(o.data, o.maxBytes, encode)
	if err != nil {
		return err
	}
	var tr *deepseekv3.Trainer
	if o.resume != "" {
		if tr, err = deepseekv3.ResumeTrainer(o.resume); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "resumed %s at step %d\n", o.resume, tr.Step)
	} else {
		rc, err := o.recipe()
		if err != nil {
			return err
		}
		if tr, err = deepseekv3.NewTrainer(o.modelConfig(vocab), rc); err != nil {
			return err
		}
	}
	rc, mc := tr.Cfg, tr.Model.Cfg
	if len(corp.train) < 2*(rc.SeqLen+1) || len(corp.val) < rc.SeqLen+1 {
		return fmt.Errorf("the corpus (%d training, %d validation tokens) is too small for sequences of %d", len(corp.train), len(corp.val), rc.SeqLen)
	}
	if mc.VocabSize < vocab {
		return fmt.Errorf("the model's vocabulary (%d) is smaller than the tokenizer's (%d)", mc.VocabSize, vocab)
	}
	flopsPerToken := trainFLOPsPerToken(tr.Model, rc.SeqLen)
	fmt.Fprintf(stdout, "data: %s, %d files, %d bytes -> %d training / %d validation tokens\n", corp.source, corp.files, corp.bytes, len(corp.train), len(corp.val))
	fmt.Fprintf(stdout, "model: hidden %d, %d layers (%d dense), %d heads, MLA q_lora %d kv_lora %d, %d experts top-%d in %d groups keep %d, %d shared, MTP depth %d; %.2fM parameters\n",
		mc.HiddenSize, mc.NumHiddenLayers, mc.FirstKDenseReplace, mc.NumAttentionHeads, mc.QRank(), mc.KVLoraRank, mc.NRoutedExperts,
		mc.NumExpertsPerTok, mc.NGroup, mc.TopkGroup, mc.NSharedExperts, mc.NumNextnPredictLayers, float64(countParams(tr.Model))/1e6)
	fmt.Fprintf(stdout, "recipe: %d steps of %d x %d tokens x %d, lr %g -> %g (warm-up %d), λ %g, γ %g, α %g, %s precision\n",
		rc.Steps, rc.Batch, rc.SeqLen, rc.Accum, rc.LR, rc.MinLR, rc.Warmup, rc.Lambda, rc.Gamma, rc.Alpha, rc.Precision)

	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(o.out, "log.jsonl")
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if o.resume != "" {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logf, err := os.OpenFile(logPath, flags, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	enc := json.NewEncoder(logf)

	var bar *progressbar.ProgressBar
	if !o.quiet && isTerminal(stderr) {
		bar = progressbar.NewOptions(rc.Steps, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("training"),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish())
		bar.Set(tr.Step)
	}
	var history []record
	start := time.Now()
	winStart, winTokens := time.Now(), 0
	interrupted := false
	for tr.Step < rc.Steps {
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		res, err := tr.TrainStep(corp.train)
		if err != nil {
			return err
		}
		winTokens += res.Tokens
		rec := record{Step: res.Step, LR: res.LR, Loss: res.Loss.Main, MTPLoss: res.Loss.MTP, Balance: res.Loss.Balance,
			GradNorm: res.GradNorm, MaxVio: res.MaxVio, Elapsed: time.Since(start).Seconds()}
		if bar != nil {
			bar.Add(1)
		}
		if res.Step%o.evalEvery == 0 || res.Step == rc.Steps || res.Step == 1 {
			secs := time.Since(winStart).Seconds()
			rec.TokensSec = float64(winTokens) / secs
			rec.GFLOPs = rec.TokensSec * flopsPerToken / 1e9
			vl, vm, err := tr.Eval(corp.val, o.evalWindows)
			if err != nil {
				return err
			}
			rec.ValLoss = &vl
			if len(tr.Model.MTP) > 0 && rc.Lambda > 0 {
				rec.ValMTP = &vm
			}
			if bar != nil {
				bar.Clear()
			}
			fmt.Fprintf(stdout, "step %4d  loss %.4f  mtp %.4f  val %.4f  lr %.2e  |g| %.2f  %6.0f tok/s  %5.1f GFLOP/s  MaxVio %s\n",
				res.Step, res.Loss.Main, res.Loss.MTP, vl, res.LR, res.GradNorm, rec.TokensSec, rec.GFLOPs, fmtList(res.MaxVio))
			winStart, winTokens = time.Now(), 0
		}
		history = append(history, rec)
		if err := enc.Encode(rec); err != nil {
			return err
		}
		if o.saveEvery > 0 && res.Step%o.saveEvery == 0 && res.Step != rc.Steps {
			if _, err := tr.SaveCheckpoint(o.out); err != nil {
				return err
			}
		}
	}
	if bar != nil {
		bar.Finish()
	}
	dir, err := tr.SaveCheckpoint(o.out)
	if err != nil {
		return err
	}
	if interrupted {
		fmt.Fprintf(stdout, "interrupted at step %d: saved %s; continue with -resume %s\n", tr.Step, dir, o.out)
		return nil
	}
	fmt.Fprintf(stdout, "done in %.0fs: checkpoint %s, log %s\n", time.Since(start).Seconds(), dir, logPath)
	if len(history) > 0 {
		fmt.Fprintln(stdout, summarize(history))
	}
	if len(history) > 0 && o.resume == "" {
		png := filepath.Join(o.out, "loss.png")
		if err := plotHistory(png, history, tr.MoENames()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "plot: %s\n", png)
	}
	if o.sampleLen > 0 {
		text, sampled, greedy, err := sample(tr.Model, corp.val[:min(32, len(corp.val), rc.SeqLen/2)], o.sampleLen, rc.Seed, decode)
		if err != nil {
			return err
		}
		if len(tr.Model.MTP) > 0 {
			fmt.Fprintf(stdout, "MTP speculative decoding: %.1f%% of drafts accepted when sampling (T 0.8, top-p 0.95), %.1f%% when greedy\n", 100*sampled, 100*greedy)
		}
		fmt.Fprintf(stdout, "sample (after a validation prompt):\n%s\n", text)
	}
	return nil
}

func fmtList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// tokenizer returns the encoder, the decoder and the vocabulary size:
// bytes by default, or a Hugging Face tokenizer.json.
func (o *options) tokenizer() (func([]byte) []int32, func([]int32) string, int, error) {
	if o.tok == "" {
		return byteTokens, func(ids []int32) string {
			b := make([]byte, len(ids))
			for i, id := range ids {
				b[i] = byte(id)
			}
			return string(b)
		}, 256, nil
	}
	tk, err := tokenizer.Load(o.tok)
	if err != nil {
		return nil, nil, 0, err
	}
	enc := func(b []byte) []int32 {
		ids := tk.Encode(string(b))
		out := make([]int32, len(ids))
		for i, id := range ids {
			out[i] = int32(id)
		}
		return out
	}
	dec := func(ids []int32) string {
		v := make([]int, len(ids))
		for i, id := range ids {
			v[i] = int(id)
		}
		return tk.Decode(v, false)
	}
	return enc, dec, tk.VocabSize(), nil
}

func countParams(m *deepseekv3.Model) int {
	n := 0
	for _, p := range m.Params() {
		n += p.Value.Rows * p.Value.Cols
	}
	return n
}

// trainFLOPsPerToken estimates the training FLOPs per token: 6 per weight
// that a token multiplies with (forward 2, backward 4; routed experts count
// top-k of n), plus attention's score and value products.
func trainFLOPsPerToken(m *deepseekv3.Model, seq int) float64 {
	c := m.Cfg
	var active float64
	for _, p := range m.Params() {
		n := float64(p.Value.Rows * p.Value.Cols)
		switch {
		case p.Value.Rows <= 1 || strings.HasPrefix(p.Name, "model.embed_tokens"):
			continue
		case strings.Contains(p.Name, ".mlp.experts."):
			active += n * float64(c.NumExpertsPerTok) / float64(c.NRoutedExperts)
		default:
			active += n
		}
	}
	layers := float64(c.NumHiddenLayers + c.NumNextnPredictLayers)
	attn := layers * float64(c.NumAttentionHeads) * float64(c.QKNopeHeadDim+c.QKRopeHeadDim+c.VHeadDim) * 2 * float64(seq) / 2
	return 6*active + 3*attn
}

// sample continues a validation prompt with the trained model, using the
// MTP module for speculative decoding (when there is one): a sampled
// continuation (temperature 0.8, top-p 0.95) shown as text, with its
// acceptance rate, and the acceptance rate of greedy decoding.
func sample(m *deepseekv3.Model, prompt []int32, n int, seed uint64, decode func([]int32) string) (string, float64, float64, error) {
	n = min(n, m.Cfg.MaxPositionEmbeddings-len(prompt))
	if n <= 0 {
		return "", 0, 0, nil
	}
	useMTP := len(m.MTP) > 0
	g, err := m.Generate(context.Background(), [][]int32{prompt}, deepseekv3.GenerateOptions{
		MaxNewTokens: n, Temperature: 0.8, TopP: 0.95, Seed: seed, MTP: useMTP})
	if err != nil {
		return "", 0, 0, err
	}
	greedy, err := m.Generate(context.Background(), [][]int32{prompt}, deepseekv3.GenerateOptions{MaxNewTokens: n, MTP: useMTP})
	if err != nil {
		return "", 0, 0, err
	}
	return decode(g.Tokens[0]), g.Stats.AcceptanceRate(), greedy.Stats.AcceptanceRate(), nil
}

// summarize reports the run's comparable figures: the first and final
// smoothed training loss (mean over the first and last 10% of steps), the
// last validation loss, the MTP loss, and the mean MaxVio of every MoE
// layer over the last 20% of steps.
func summarize(h []record) string {
	n := len(h)
	k := max(1, n/10)
	mean := func(rs []record, f func(record) float64) float64 {
		var s float64
		for _, r := range rs {
			s += f(r)
		}
		return s / float64(len(rs))
	}
	first := mean(h[:k], func(r record) float64 { return r.Loss })
	last := mean(h[n-k:], func(r record) float64 { return r.Loss })
	mtpFirst := mean(h[:k], func(r record) float64 { return r.MTPLoss })
	mtpLast := mean(h[n-k:], func(r record) float64 { return r.MTPLoss })
	tail := h[n-max(1, n/5):]
	vio := mean(tail, func(r record) float64 {
		var s float64
		for _, v := range r.MaxVio {
			s += v
		}
		return s / float64(max(1, len(r.MaxVio)))
	})
	val := math.NaN()
	for i := n - 1; i >= 0; i-- {
		if h[i].ValLoss != nil {
			val = *h[i].ValLoss
			break
		}
	}
	var tps float64
	var cnt int
	for _, r := range h {
		if r.TokensSec > 0 && r.Step > 1 {
			tps += r.TokensSec
			cnt++
		}
	}
	if cnt > 0 {
		tps /= float64(cnt)
	}
	return fmt.Sprintf("summary: smoothed train loss %.4f -> %.4f, final validation loss %.4f, MTP loss %.4f -> %.4f, mean MaxVio over the last 20%% of steps %.3f, %.0f tokens/s",
		first, last, val, mtpFirst, mtpLast, vio, tps)
}

// isTerminal reports whether w is a terminal (a character device), where a
// progress bar belongs; logs and pipes get none.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
