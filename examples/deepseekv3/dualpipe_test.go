package deepseekv3

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/dualpipe"
)

// TestDecoderLayersOnDualPipe runs real DeepSeek-V3 decoder layers (MLA,
// MoE with the group-limited router) as pipeline stages on the DualPipe and
// DualPipeV executors, and requires the losses to be bit-identical to
// running the micro-batches one by one through the layers, and every
// gradient within 1e-6 of that run.
func TestDecoderLayersOnDualPipe(t *testing.T) {
	cfg := smallConfig()
	cfg.NumHiddenLayers = 4
	seq := dsv3.Seq{Count: 2, Len: 6}
	const N = 4
	rng := rand.New(rand.NewPCG(11, 12))
	var inputs, targets []dsv3.Matrix
	for range N {
		x, y := dsv3.NewMatrix(seq.Count*seq.Len, cfg.HiddenSize), dsv3.NewMatrix(seq.Count*seq.Len, cfg.HiddenSize)
		for i := range x.Data {
			x.Data[i] = float32(rng.NormFloat64())
			y.Data[i] = float32(rng.NormFloat64())
		}
		inputs, targets = append(inputs, x), append(targets, y)
	}
	loss := func(mb int, y dsv3.Matrix) (float64, dsv3.Matrix, error) {
		dy := dsv3.NewMatrix(y.Rows, y.Cols)
		var l float64
		for i := range y.Data {
			d := y.Data[i] - targets[mb].Data[i]
			l += float64(d) * float64(d)
			dy.Data[i] = 2 * d / float32(len(y.Data))
		}
		return l / float64(len(y.Data)), dy, nil
	}
	// newLayers builds the model's decoder layers; the same seed gives the
	// same weights, so each call makes an independent copy.
	newLayers := func() []*Layer {
		m, err := New(cfg, Options{Train: true, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		return m.Layers
	}
	for _, variant := range []dualpipe.Variant{dualpipe.DualPipe, dualpipe.DualPipeV} {
		t.Run(variant.String(), func(t *testing.T) {
			s, err := dualpipe.Generate(variant, 2, N)
			if err != nil {
				t.Fatal(err)
			}
			stages := s.Stages()
			per := cfg.NumHiddenLayers / stages
			stageOf := func(layers []*Layer, st int) *dualpipe.BlockStage {
				var bs []dsv3.Block
				for _, l := range layers[st*per : (st+1)*per] {
					bs = append(bs, l)
				}
				return dualpipe.Blocks(seq, st*per, bs...)
			}
			// The sequential reference.
			ref := newLayers()
			var refLosses []float64
			for mb, x := range inputs {
				recs := make([]dsv3.Record, len(ref))
				h := x
				for i, l := range ref {
					var err error
					if h, recs[i], err = l.Apply(h, seq, true); err != nil {
						t.Fatal(err)
					}
				}
				lv, dy, _ := loss(mb, h)
				refLosses = append(refLosses, lv)
				for i := len(ref) - 1; i >= 0; i-- {
					if dy, err = ref[i].ApplyBackward(recs[i], dy); err != nil {
						t.Fatal(err)
					}
				}
			}
			e := &dualpipe.Executor{Schedule: s, Loss: loss, Chunks: make([][]dualpipe.Stage, s.Ranks)}
			var copies [][]*Layer
			for r := range s.Ranks {
				for _, st := range s.Held(r) {
					ls := newLayers()
					copies = append(copies, ls)
					e.Chunks[r] = append(e.Chunks[r], stageOf(ls, st))
				}
			}
			losses, err := e.Step(context.Background(), inputs)
			if err != nil {
				t.Fatal(err)
			}
			for mb := range losses {
				if math.Float64bits(losses[mb]) != math.Float64bits(refLosses[mb]) {
					t.Errorf("micro-batch %d: pipeline loss %v, sequential %v", mb, losses[mb], refLosses[mb])
				}
			}
			checked := 0
			for ci, r := range chunkOwners(s) {
				st := s.Held(r.rank)[r.j]
				layers := copies[ci]
				for li := st * per; li < (st+1)*per; li++ {
					want := ref[li].Params()
					for pi, p := range layers[li].Params() {
						if p.Grad.Empty() {
							continue
						}
						if d := maxRel(p.Grad, want[pi].Grad); d > 1e-6 {
							t.Errorf("layer %d %s: gradient differs by %.3g", li, p.Name, d)
						}
						checked++
					}
				}
			}
			if checked == 0 {
				t.Fatal("no gradient compared")
			}
		})
	}
}

type owner struct{ rank, j int }

// chunkOwners lists (rank, chunk) in the order the test built the copies.
func chunkOwners(s *dualpipe.Schedule) []owner {
	var out []owner
	for r := range s.Ranks {
		for j := range s.Held(r) {
			out = append(out, owner{r, j})
		}
	}
	return out
}

func maxRel(a, b dsv3.Matrix) float64 {
	var num, den float64
	for i := range a.Data {
		num = math.Max(num, math.Abs(float64(a.Data[i]-b.Data[i])))
		den = math.Max(den, math.Abs(float64(b.Data[i])))
	}
	if den == 0 {
		return num
	}
	return num / den
}
