package deepseekv3

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dsv3go/dsv3"
)

// smallConfig is a very small DeepSeek-V3 for trainer tests: byte vocabulary,
// one dense and one MoE layer, one MTP module.
func smallConfig() *Config {
	q := 16
	return &Config{
		VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, MoeIntermediateSize: 16,
		NumHiddenLayers: 2, NumNextnPredictLayers: 1, NumAttentionHeads: 2, NumKeyValueHeads: 2,
		NSharedExperts: 1, NRoutedExperts: 8, RoutedScalingFactor: 2.5, KVLoraRank: 16, QLoraRank: &q,
		QKRopeHeadDim: 8, VHeadDim: 8, QKNopeHeadDim: 8, TopkMethod: "noaux_tc", NGroup: 4, TopkGroup: 2,
		NumExpertsPerTok: 2, MoeLayerFreq: 1, FirstKDenseReplace: 1, NormTopkProb: true, ScoringFunc: "sigmoid",
		HiddenAct: "silu", MaxPositionEmbeddings: 64, InitializerRange: 0.02, RMSNormEps: 1e-6, RopeTheta: 10000,
		ModelType: "deepseek_v3",
	}
}

func smallRecipe(prec Precision) TrainConfig {
	return TrainConfig{Seed: 7, Steps: 8, Warmup: 2, LR: 3e-3, MinLR: 3e-4, Batch: 2, SeqLen: 12, Accum: 2,
		Lambda: 0.3, Gamma: 0.001, Alpha: 0.0001, ClipNorm: 1, WeightDecay: 0.1, Precision: prec}
}

func syntheticData(n int) []int32 {
	d := make([]int32, n)
	for i := range d {
		d[i] = int32((i*7 + i/5) % 64)
	}
	return d
}

func paramsEqual(t *testing.T, a, b []dsv3.Param) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d vs %d parameters", len(a), len(b))
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			t.Fatalf("parameter %d: %s vs %s", i, a[i].Name, b[i].Name)
		}
		for r := 0; r < a[i].Value.Rows; r++ {
			x, y := a[i].Value.Row(r), b[i].Value.Row(r)
			for j := range x {
				if math.Float32bits(x[j]) != math.Float32bits(y[j]) {
					t.Fatalf("%s[%d,%d]: %v vs %v", a[i].Name, r, j, x[j], y[j])
				}
			}
		}
	}
}

// TestResumeIsBitExact trains 2N steps straight, and N steps + save +
// resume + N steps, and requires identical weights, biases and losses.
func TestResumeIsBitExact(t *testing.T) {
	for _, prec := range []Precision{F32, FP8} {
		t.Run(string(prec), func(t *testing.T) {
			data := syntheticData(4000)
			const n = 3
			straight, err := NewTrainer(smallConfig(), smallRecipe(prec))
			if err != nil {
				t.Fatal(err)
			}
			var want []float64
			for i := 0; i < 2*n; i++ {
				r, err := straight.TrainStep(data)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, r.Loss.Total())
			}
			first, err := NewTrainer(smallConfig(), smallRecipe(prec))
			if err != nil {
				t.Fatal(err)
			}
			var got []float64
			for i := 0; i < n; i++ {
				r, err := first.TrainStep(data)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, r.Loss.Total())
			}
			out := t.TempDir()
			if _, err := first.SaveCheckpoint(out); err != nil {
				t.Fatal(err)
			}
			resumed, err := ResumeTrainer(out)
			if err != nil {
				t.Fatal(err)
			}
			if resumed.Step != n {
				t.Fatalf("resumed at step %d, want %d", resumed.Step, n)
			}
			for i := 0; i < n; i++ {
				r, err := resumed.TrainStep(data)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, r.Loss.Total())
			}
			for i := range want {
				if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
					t.Fatalf("step %d: loss %v after resume, %v straight", i+1, got[i], want[i])
				}
			}
			paramsEqual(t, resumed.Model.Params(), straight.Model.Params())
		})
	}
}

// TestKilledSaveResumesFromLastCheckpoint saves at step N, then kills a
// child process in the middle of the next save at each stage, and checks
// that resuming finds a complete checkpoint equal to a straight run's.
func TestKilledSaveResumesFromLastCheckpoint(t *testing.T) {
	if stage := os.Getenv("DSV3_KILL_SAVE_AT"); stage != "" {
		tr, err := ResumeTrainer(os.Getenv("DSV3_OUT"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.TrainStep(syntheticData(4000)); err != nil {
			t.Fatal(err)
		}
		saveHook = func(s string) {
			if s == stage {
				os.Exit(3)
			}
		}
		tr.SaveCheckpoint(os.Getenv("DSV3_OUT"))
		t.Fatal("save finished although the process should have been killed")
	}
	data := syntheticData(4000)
	for _, stage := range []string{"config", "model", "state", "renamed"} {
		t.Run(stage, func(t *testing.T) {
			out := t.TempDir()
			tr, err := NewTrainer(smallConfig(), smallRecipe(F32))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.TrainStep(data); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.SaveCheckpoint(out); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestKilledSaveResumesFromLastCheckpoint$")
			cmd.Env = append(os.Environ(), "DSV3_KILL_SAVE_AT="+stage, "DSV3_OUT="+out)
			err = cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
				t.Fatalf("child did not die at stage %s: %v", stage, err)
			}
			resumed, err := ResumeTrainer(out)
			if err != nil {
				t.Fatalf("resume after a kill at %s: %v", stage, err)
			}
			if resumed.Step != 1 {
				t.Fatalf("resumed at step %d, want the last complete checkpoint's 1", resumed.Step)
			}
			paramsEqual(t, resumed.Model.Params(), tr.Model.Params())
			if stage == "renamed" {
				// The new checkpoint is complete but latest still names the
				// old one; loading it directly works too.
				if _, err := ResumeTrainer(filepath.Join(out, "step-2")); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestTrainerCheckpointLoadsForInference loads a trainer checkpoint with
// Load and compares its logits with the in-memory model's.
func TestTrainerCheckpointLoadsForInference(t *testing.T) {
	tr, err := NewTrainer(smallConfig(), smallRecipe(F32))
	if err != nil {
		t.Fatal(err)
	}
	data := syntheticData(4000)
	for i := 0; i < 2; i++ {
		if _, err := tr.TrainStep(data); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := tr.SaveCheckpoint(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ck, err := Load(dir, LoadOptions{MTP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	toks := data[:20]
	s := dsv3.Seq{Count: 1, Len: len(toks)}
	want, err := tr.Model.Forward(toks, s, false, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ck.Forward(toks, s, false, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Logits.Data {
		if got.Logits.Data[i] != want.Logits.Data[i] {
			t.Fatalf("logit %d: loaded %v, in memory %v", i, got.Logits.Data[i], want.Logits.Data[i])
		}
	}
	if len(ck.Unused) != 0 {
		t.Errorf("unused tensors in a trainer checkpoint: %v", ck.Unused)
	}
}

func TestTrainingLossFalls(t *testing.T) {
	for _, prec := range []Precision{F32, FP8} {
		rc := smallRecipe(prec)
		rc.Steps = 30
		tr, err := NewTrainer(smallConfig(), rc)
		if err != nil {
			t.Fatal(err)
		}
		data := syntheticData(4000)
		var first, last float64
		for i := 0; i < rc.Steps; i++ {
			r, err := tr.TrainStep(data)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = r.Loss.Main
			}
			last = r.Loss.Main
		}
		t.Logf("%s: loss %.3f -> %.3f", prec, first, last)
		if !(last < 0.8*first) {
			t.Errorf("%s: loss %.3f -> %.3f did not fall by 20%%", prec, first, last)
		}
	}
}

// TestDataParallelShardsMatchOneModel checks that splitting each
// micro-batch over replicas gives the gradient of the whole batch.
func TestDataParallelShardsMatchOneModel(t *testing.T) {
	rc := smallRecipe(F32)
	rc.Batch = 4
	par, err := NewTrainer(smallConfig(), rc)
	if err != nil {
		t.Fatal(err)
	}
	for len(par.replicas) < 2 { // three shards, whatever GOMAXPROCS is
		r, err := New(smallConfig(), Options{Train: true, Seed: rc.Seed, MTP: true})
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range layersOf(r) {
			if l.MoE != nil {
				l.MoE.Balance = layersOf(par.Model)[i].MoE.Balance
			}
		}
		par.replicas = append(par.replicas, r)
	}
	one, err := NewTrainer(smallConfig(), rc)
	if err != nil {
		t.Fatal(err)
	}
	one.replicas = nil
	data := syntheticData(4000)
	rp, err := par.TrainStep(data)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := one.TrainStep(data)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(rp.Loss.Total()-ro.Loss.Total()) > 1e-5*ro.Loss.Total() {
		t.Errorf("loss %v over shards, %v in one model", rp.Loss.Total(), ro.Loss.Total())
	}
	a, b := par.Model.Params(), one.Model.Params()
	for i := range a {
		if a[i].Grad.Empty() {
			continue
		}
		if d := maxRel(a[i].Grad, b[i].Grad); d > 1e-4 {
			t.Errorf("%s: gradient over shards differs by %.3g", a[i].Name, d)
		}
	}
}
