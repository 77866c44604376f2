package deepseekv3

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/testutil"
	"github.com/dsv3go/dsv3/mtp"
)

// slowBuild reports whether the test binary was built with -race or with
// the purego tag; the heaviest loops shrink then (the model runs several
// times slower).
func slowBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if (s.Key == "-race" && s.Value == "true") || (s.Key == "-tags" && slices.Contains(strings.Split(s.Value, ","), "purego")) {
			return true
		}
	}
	return false
}

// refGreedy decodes n tokens greedily with the cache-free Forward over the
// whole growing sequence at every step: an implementation independent of
// the cache, the spans and the speculation.
func refGreedy(t *testing.T, m *Model, prompt []int32, n int) []int32 {
	t.Helper()
	seq := slices.Clone(prompt)
	var out []int32
	for range n {
		o, err := m.Forward(seq, dsv3.Seq{Count: 1, Len: len(seq)}, false, false)
		if err != nil {
			t.Fatal(err)
		}
		tok := mtp.Argmax(o.Logits.Row(len(seq) - 1))
		out = append(out, tok)
		seq = append(seq, tok)
	}
	return out
}

// maskedHead is an output head that leaves only a few tokens possible: it
// sets every other logit to -1e4, whose probability is exactly 0 in
// float64. Because the MTP module shares the head, its drafts come from the
// same few tokens, so drafts are often right: this exercises the accept
// path (both fed tokens kept, the bonus token, two-row MTP spans) that the
// fixture's random weights never reach under greedy decoding.
type maskedHead struct {
	w    dsv3.Weight
	keep []bool
}

func (h maskedHead) Dims() (int, int) { return h.w.Dims() }

func (h maskedHead) MulT(y, x dsv3.Matrix, acc bool) {
	h.w.MulT(y, x, acc)
	for i := 0; i < y.Rows; i++ {
		row := y.Row(i)
		for j := range row {
			if !h.keep[j] {
				row[j] = -1e4
			}
		}
	}
}

var maskedTokens = []int{147, 368, 164, 419, 483, 144}

func loadMasked(t *testing.T) *Checkpoint {
	ck := loadTiny(t, F32)
	vocab, _ := ck.Head.W.Dims()
	keep := make([]bool, vocab)
	for _, k := range maskedTokens {
		keep[k] = true
	}
	ck.Head.W = maskedHead{w: ck.Head.W, keep: keep}
	return ck
}

func generate(t *testing.T, m *Model, prompts [][]int32, opt GenerateOptions) *Generation {
	t.Helper()
	g, err := m.Generate(context.Background(), prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestGenerateGreedyMTPMatchesPlain: speculative greedy decoding gives the
// tokens of plain greedy decoding, which gives the tokens of a cache-free
// reference loop.
func TestGenerateGreedyMTPMatchesPlain(t *testing.T) {
	prompt := tinyTokens(t, "seq40")
	const n = 64
	t.Run("fixture", func(t *testing.T) {
		ck := loadTiny(t, F32)
		nref := n
		if slowBuild() {
			nref = 12
		}
		ref := refGreedy(t, ck.Model, prompt, nref)
		plain := generate(t, ck.Model, [][]int32{prompt}, GenerateOptions{MaxNewTokens: n})
		spec := generate(t, ck.Model, [][]int32{prompt}, GenerateOptions{MaxNewTokens: n, MTP: true})
		if !slices.Equal(plain.Tokens[0][:nref], ref) {
			t.Errorf("plain greedy %v\nreference    %v", plain.Tokens[0], ref)
		}
		if !slices.Equal(spec.Tokens[0], plain.Tokens[0]) {
			t.Errorf("MTP greedy   %v\nplain greedy %v", spec.Tokens[0], plain.Tokens[0])
		}
		s := spec.Stats
		t.Logf("fixture model, MTP greedy: %d of %d drafts accepted (rate %.3f), %d decode steps for %d tokens; prefill %.0f tok/s, decode %.0f tok/s (plain: %d steps, decode %.0f tok/s)",
			s.Accepted, s.Drafted, s.AcceptanceRate(), s.DecodeSteps, s.DecodeTokens, s.PrefillRate(), s.DecodeRate(), plain.Stats.DecodeSteps, plain.Stats.DecodeRate())
		if s.Drafted != int64(s.DecodeSteps) && s.Drafted != int64(s.DecodeSteps-1) {
			t.Errorf("%d drafts verified in %d steps", s.Drafted, s.DecodeSteps)
		}
	})
	for _, prec := range []Precision{FP8, BF16} {
		t.Run(string(prec), func(t *testing.T) {
			ck := loadTiny(t, prec)
			plain := generate(t, ck.Model, [][]int32{prompt}, GenerateOptions{MaxNewTokens: 16})
			spec := generate(t, ck.Model, [][]int32{prompt}, GenerateOptions{MaxNewTokens: 16, MTP: true})
			if !slices.Equal(spec.Tokens[0], plain.Tokens[0]) {
				t.Errorf("%s: MTP greedy %v\nplain greedy   %v", prec, spec.Tokens[0], plain.Tokens[0])
			}
		})
	}
	t.Run("masked head", func(t *testing.T) {
		ck := loadMasked(t)
		plain := generate(t, ck.Model, [][]int32{prompt}, GenerateOptions{MaxNewTokens: n})
		spec := generate(t, ck.Model, [][]int32{prompt}, GenerateOptions{MaxNewTokens: n, MTP: true})
		if !slices.Equal(spec.Tokens[0], plain.Tokens[0]) {
			t.Errorf("MTP greedy %v\nplain      %v", spec.Tokens[0], plain.Tokens[0])
		}
		s := spec.Stats
		t.Logf("masked head, MTP greedy: %d of %d drafts accepted (rate %.3f), %d decode steps for %d tokens", s.Accepted, s.Drafted, s.AcceptanceRate(), s.DecodeSteps, s.DecodeTokens)
		if s.Accepted == 0 || s.Accepted == s.Drafted {
			t.Fatalf("the masked model should both accept and reject drafts: %d of %d", s.Accepted, s.Drafted)
		}
		// Each accepted draft yields two tokens in one step.
		if got := int64(s.DecodeSteps) + s.Accepted; got != int64(s.DecodeTokens) {
			t.Errorf("%d steps + %d accepted drafts != %d decoded tokens", s.DecodeSteps, s.Accepted, s.DecodeTokens)
		}
		// Shorter limits (the bonus token must not overrun them) and stop
		// tokens end the same way with and without MTP.
		for _, k := range []int{1, 2, 3, 5, 8} {
			sp := generate(t, ck.Model, [][]int32{prompt}, GenerateOptions{MaxNewTokens: k, MTP: true})
			if !slices.Equal(sp.Tokens[0], plain.Tokens[0][:k]) || sp.Stopped[0] {
				t.Errorf("MaxNewTokens %d: MTP gives %v (stopped %v), want %v", k, sp.Tokens[0], sp.Stopped[0], plain.Tokens[0][:k])
			}
		}
		for _, at := range []int{0, 1, 6, 9} {
			stop := plain.Tokens[0][at]
			want := plain.Tokens[0][:slices.Index(plain.Tokens[0], stop)+1]
			for _, useMTP := range []bool{false, true} {
				var streamed []int32
				g := generate(t, ck.Model, [][]int32{prompt}, GenerateOptions{MaxNewTokens: n, MTP: useMTP, StopTokens: []int32{stop},
					OnToken: func(seq int, tok int32) {
						if seq != 0 {
							t.Errorf("OnToken for sequence %d", seq)
						}
						streamed = append(streamed, tok)
					}})
				if !slices.Equal(g.Tokens[0], want) || !g.Stopped[0] {
					t.Errorf("stop token %d (MTP %v): got %v (stopped %v), want %v", stop, useMTP, g.Tokens[0], g.Stopped[0], want)
				}
				if !slices.Equal(streamed, g.Tokens[0]) {
					t.Errorf("OnToken saw %v, result %v", streamed, g.Tokens[0])
				}
			}
		}
	})
}

// TestGenerateBatchedEqualsAlone: prompts of different lengths generated
// together give what each gives alone (the sampler of prompt i is seeded
// with (Seed, i), so with sampling the first prompt is comparable).
func TestGenerateBatchedEqualsAlone(t *testing.T) {
	s40, s200 := tinyTokens(t, "seq40"), tinyTokens(t, "seq200")
	prompts := [][]int32{s40[:13], s200[50:90], s200[:1], s40[20:27]}
	for _, tc := range []struct {
		name   string
		masked bool
		opt    GenerateOptions
		cmp    int // prompts compared
	}{
		{"greedy", false, GenerateOptions{MaxNewTokens: 12}, 4},
		{"greedy MTP masked", true, GenerateOptions{MaxNewTokens: 12, MTP: true}, 4},
		{"sampled MTP masked", true, GenerateOptions{MaxNewTokens: 12, MTP: true, Temperature: 0.8, TopP: 0.95, Seed: 3}, 1},
		{"sampled", false, GenerateOptions{MaxNewTokens: 12, Temperature: 1, Seed: 5}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ck *Checkpoint
			if tc.masked {
				ck = loadMasked(t)
			} else {
				ck = loadTiny(t, F32)
			}
			batch := generate(t, ck.Model, prompts, tc.opt)
			for i := range tc.cmp {
				alone := generate(t, ck.Model, prompts[i:i+1], tc.opt)
				if !slices.Equal(batch.Tokens[i], alone.Tokens[0]) {
					t.Errorf("prompt %d: batched %v, alone %v", i, batch.Tokens[i], alone.Tokens[0])
				}
			}
			if tc.opt.MTP {
				t.Logf("batched acceptance %d of %d", batch.Stats.Accepted, batch.Stats.Drafted)
			}
		})
	}
}

// chiSquare returns Pearson's statistic of observed counts against expected
// probabilities, cells with an expected count under 5 pooled, and the
// statistic's 1-alpha quantile under the null.
func chiSquare(obs map[string]int, prob map[string]float64, n int, alpha float64) (stat, crit float64, df int) {
	keys := make([]string, 0, len(prob))
	for k := range prob {
		keys = append(keys, k)
	}
	for k := range obs {
		if _, ok := prob[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var poolO, poolE float64
	cells := 0
	for _, k := range keys {
		e := prob[k] * float64(n)
		o := float64(obs[k])
		if e < 5 {
			poolO += o
			poolE += e
			continue
		}
		stat += (o - e) * (o - e) / e
		cells++
	}
	if poolE > 0 || poolO > 0 {
		if poolE < 1e-9 {
			return math.Inf(1), 0, cells
		}
		stat += (poolO - poolE) * (poolO - poolE) / poolE
		cells++
	}
	df = cells - 1
	crit = distuv.ChiSquared{K: float64(df)}.Quantile(1 - alpha)
	return stat, crit, df
}

func key(toks ...int32) string {
	var b strings.Builder
	for _, t := range toks {
		b.WriteString(string(rune('A' + t%64)))
		b.WriteString(string(rune('A' + t/64)))
	}
	return b.String()
}

// TestGenerateSampledMTPDistribution: speculative sampling leaves the
// distribution of the generated tokens unchanged. With the head masked to
// six tokens, the exact distribution of the first three generated tokens
// is computed from the cache-free Forward over every continuation; the
// tokens of 2048 MTP-sampled runs (256 under -race or purego) must fit it (Pearson's χ² at α = 1e-3 on
// the second and third tokens, which speculation produces, and on their
// pair). As a check that the test can fail, the same samples must not fit
// the distribution that accepting every draft would give.
func TestGenerateSampledMTPDistribution(t *testing.T) {
	ck := loadMasked(t)
	prompt := tinyTokens(t, "seq40")[:5]
	const temp, topP = 1.0, 0.97
	T := len(prompt)
	K := maskedTokens
	// Exact probabilities from the cache-free model over every
	// continuation (x1, x2) of the prompt.
	var toks []int32
	for _, a := range K {
		for _, b := range K {
			toks = append(toks, prompt...)
			toks = append(toks, int32(a), int32(b))
		}
	}
	cnt := len(K) * len(K)
	out, err := ck.Forward(toks, dsv3.Seq{Count: cnt, Len: T + 2}, false, false)
	if err != nil {
		t.Fatal(err)
	}
	mlg, err := ck.MTPLogits(out.Hidden, toks, dsv3.Seq{Count: cnt, Len: T + 2})
	if err != nil {
		t.Fatal(err)
	}
	dist := func(m dsv3.Matrix, r int) []float32 { return Distribution(m.Row(r), temp, topP) }
	p1 := dist(out.Logits, T-1)
	p2 := map[string]float64{}  // marginal of the second token
	p3 := map[string]float64{}  // marginal of the third token
	p23 := map[string]float64{} // joint of the second and third
	q2 := map[string]float64{}  // second token if every draft were accepted
	for i, a := range K {
		for j, b := range K {
			s := i*len(K) + j
			pa := float64(p1[a])
			if j == 0 {
				// The row after x1 and the MTP row that drafts x2 do not
				// depend on x2: take them from the first continuation.
				pb := dist(out.Logits, s*(T+2)+T)
				qb := dist(mlg, s*(T+1)+T-1)
				for _, c := range K {
					p2[key(int32(c))] += pa * float64(pb[c])
					q2[key(int32(c))] += pa * float64(qb[c])
				}
			}
			pb := float64(dist(out.Logits, (i*len(K))*(T+2)+T)[b])
			pc := dist(out.Logits, s*(T+2)+T+1)
			for _, c := range K {
				w := pa * pb * float64(pc[c])
				p3[key(int32(c))] += w
				p23[key(int32(b), int32(c))] += w
			}
		}
	}
	runs, batch := 2048, 256
	if slowBuild() {
		runs, batch = 256, 128
	}
	obs2, obs3, obs23 := map[string]int{}, map[string]int{}, map[string]int{}
	var drafted, accepted int64
	prompts := make([][]int32, batch)
	for i := range prompts {
		prompts[i] = prompt
	}
	for r := 0; r < runs/batch; r++ {
		g := generate(t, ck.Model, prompts, GenerateOptions{MaxNewTokens: 3, MTP: true, Temperature: temp, TopP: topP, Seed: uint64(100 + r)})
		for _, o := range g.Tokens {
			obs2[key(o[1])]++
			obs3[key(o[2])]++
			obs23[key(o[1], o[2])]++
		}
		drafted += g.Stats.Drafted
		accepted += g.Stats.Accepted
	}
	t.Logf("speculative sampling: %d of %d drafts accepted (%.3f)", accepted, drafted, float64(accepted)/float64(drafted))
	for _, c := range []struct {
		name string
		obs  map[string]int
		prob map[string]float64
	}{{"second token", obs2, p2}, {"third token", obs3, p3}, {"second and third", obs23, p23}} {
		stat, crit, df := chiSquare(c.obs, c.prob, runs, 1e-3)
		t.Logf("%s: χ² = %.2f, df %d, critical %.2f", c.name, stat, df, crit)
		if stat > crit {
			t.Errorf("%s: MTP-sampled tokens do not follow the main model: χ² = %.2f > %.2f (df %d)", c.name, stat, crit, df)
		}
	}
	stat, crit, df := chiSquare(obs2, q2, runs, 1e-3)
	t.Logf("negative control (always accept): χ² = %.2f, df %d, critical %.2f", stat, df, crit)
	if stat <= crit {
		t.Errorf("the test has no power: the samples also fit the always-accept distribution (χ² = %.2f <= %.2f)", stat, crit)
	}
}

// TestDistribution checks temperature and top-p against a float64
// transcription of the rule: sort by probability, keep the shortest prefix
// whose mass reaches top_p, renormalise.
func TestDistribution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 300)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	logits[7] = logits[8] // a tie
	for _, temp := range []float64{0.3, 1, 2.5} {
		for _, topP := range []float64{0, 0.05, 0.5, 0.9, 0.999, 1} {
			got := Distribution(logits, temp, topP)
			want := make([]float64, len(logits))
			var z float64
			for i, l := range logits {
				want[i] = math.Exp(float64(l) / temp)
				z += want[i]
			}
			for i := range want {
				want[i] /= z
			}
			if topP > 0 && topP < 1 {
				idx := make([]int, len(want))
				for i := range idx {
					idx[i] = i
				}
				sort.SliceStable(idx, func(a, b int) bool { return want[idx[a]] > want[idx[b]] })
				var cum float64
				keep := map[int]bool{}
				for _, i := range idx {
					if cum >= topP-1e-12 {
						break
					}
					cum += want[i]
					keep[i] = true
				}
				for i := range want {
					if keep[i] {
						want[i] /= cum
					} else {
						want[i] = 0
					}
				}
			}
			var sum float64
			for i := range got {
				sum += float64(got[i])
				if math.Abs(float64(got[i])-want[i]) > 1e-6 || (want[i] == 0) != (got[i] == 0) {
					t.Fatalf("temperature %g, top-p %g: p[%d] = %g, want %g", temp, topP, i, got[i], want[i])
				}
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Errorf("temperature %g, top-p %g: probabilities sum to %g", temp, topP, sum)
			}
		}
	}
	if g := Distribution([]float32{1, 3, 3, -2}, 0, 0.5); !slices.Equal(g, []float32{0, 1, 0, 0}) {
		t.Errorf("temperature 0: %v, want the first argmax with probability 1", g)
	}
	if g := Distribution(nil, 1, 1); len(g) != 0 {
		t.Errorf("no logits: %v", g)
	}
	// sampleFrom follows the distribution.
	p := []float32{0, 0.5, 0.25, 0, 0.25}
	hist := make([]float64, len(p))
	const n = 40000
	for range n {
		hist[sampleFrom(p, rng)]++
	}
	for i := range p {
		if math.Abs(hist[i]/n-float64(p[i])) > 0.01 {
			t.Errorf("sampleFrom: token %d frequency %.4f, want %.2f", i, hist[i]/n, p[i])
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	ck := loadTiny(t, F32)
	noMTP, err := Load(testutil.Fixture(t, "tiny"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer noMTP.Close()
	ok := []int32{1, 2, 3}
	for _, tc := range []struct {
		name    string
		m       *Model
		prompts [][]int32
		opt     GenerateOptions
		want    string
	}{
		{"no prompts", ck.Model, nil, GenerateOptions{MaxNewTokens: 1}, "at least one prompt"},
		{"empty prompt", ck.Model, [][]int32{ok, {}}, GenerateOptions{MaxNewTokens: 1}, "prompt 1 is empty"},
		{"id too large", ck.Model, [][]int32{{1, 512}}, GenerateOptions{MaxNewTokens: 1}, "token 512 at position 1 is outside the vocabulary [0, 512)"},
		{"negative id", ck.Model, [][]int32{{-1}}, GenerateOptions{MaxNewTokens: 1}, "token -1 at position 0"},
		{"stop token", ck.Model, [][]int32{ok}, GenerateOptions{MaxNewTokens: 1, StopTokens: []int32{600}}, "stop token 600"},
		{"negative n", ck.Model, [][]int32{ok}, GenerateOptions{MaxNewTokens: -1}, "MaxNewTokens = -1"},
		{"temperature", ck.Model, [][]int32{ok}, GenerateOptions{MaxNewTokens: 1, Temperature: -0.5}, "Temperature = -0.5"},
		{"temperature NaN", ck.Model, [][]int32{ok}, GenerateOptions{MaxNewTokens: 1, Temperature: math.NaN()}, "Temperature = NaN"},
		{"top-p", ck.Model, [][]int32{ok}, GenerateOptions{MaxNewTokens: 1, Temperature: 1, TopP: 1.5}, "TopP = 1.5"},
		{"capacity", ck.Model, [][]int32{ok, {1, 2, 3, 4, 5}}, GenerateOptions{MaxNewTokens: 10, Capacity: 14}, "Capacity = 14 is too small: the longest prompt (5 tokens) plus MaxNewTokens (10) needs 15"},
		{"positions", ck.Model, [][]int32{ok}, GenerateOptions{MaxNewTokens: 510}, "exceeds max_position_embeddings = 512"},
		{"no MTP module", noMTP.Model, [][]int32{ok}, GenerateOptions{MaxNewTokens: 1, MTP: true}, "needs an MTP module"},
	} {
		_, err := tc.m.Generate(context.Background(), tc.prompts, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ck.Generate(ctx, [][]int32{ok}, GenerateOptions{MaxNewTokens: 3}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: error %v", err)
	}
	g := generate(t, ck.Model, [][]int32{ok}, GenerateOptions{})
	if len(g.Tokens) != 1 || len(g.Tokens[0]) != 0 || g.Stats.PrefillTokens != 0 {
		t.Errorf("MaxNewTokens 0: %+v", g)
	}
}

// Greedy generation for two prompts at once, with and without MTP
// speculative decoding, on a small randomly initialised model: speculation
// changes the number of decode steps, never the greedy tokens.
func ExampleModel_Generate() {
	cfg, err := ParseConfig([]byte(`{
		"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128,
		"moe_intermediate_size": 32, "num_hidden_layers": 2, "first_k_dense_replace": 1,
		"num_attention_heads": 2, "q_lora_rank": 32, "kv_lora_rank": 32,
		"qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
		"n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2,
		"n_group": 1, "topk_group": 1, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
		"num_nextn_predict_layers": 1, "rms_norm_eps": 1e-6, "rope_theta": 10000,
		"max_position_embeddings": 256}`))
	if err != nil {
		log.Fatal(err)
	}
	m, err := New(cfg, Options{Train: true, Seed: 1, MTP: true})
	if err != nil {
		log.Fatal(err)
	}
	prompts := [][]int32{{1, 2, 3, 4}, {5, 6}}
	opt := GenerateOptions{MaxNewTokens: 10, StopTokens: []int32{0}}
	plain, err := m.Generate(context.Background(), prompts, opt)
	if err != nil {
		log.Fatal(err)
	}
	opt.MTP = true
	spec, err := m.Generate(context.Background(), prompts, opt)
	if err != nil {
		log.Fatal(err)
	}
	for i := range prompts {
		fmt.Println(len(spec.Tokens[i]), slices.Equal(plain.Tokens[i], spec.Tokens[i]))
	}
	fmt.Println(spec.Stats.Drafted > 0, spec.Stats.DecodeSteps <= plain.Stats.DecodeSteps)
	// Output:
	// 10 true
	// 10 true
	// true true
}
