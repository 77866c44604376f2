package moe

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/router"
)

var testConfigs = []Config{
	{Hidden: 24, Intermediate: 12, SharedExperts: 1, Router: router.Config{Hidden: 24, Experts: 16, TopK: 4, Groups: 4, TopKGroups: 2,
		TopKMethod: router.NoAuxTC, ScoringFunc: router.Sigmoid, NormTopKProb: true, RoutedScalingFactor: 2.5}},
	{Hidden: 16, Intermediate: 8, SharedExperts: 2, Router: router.Config{Hidden: 16, Experts: 10, TopK: 3, Groups: 1, TopKGroups: 1,
		TopKMethod: router.NoAuxTC, ScoringFunc: router.Sigmoid, NormTopKProb: true, RoutedScalingFactor: 1}},
	{Hidden: 20, Intermediate: 6, SharedExperts: 0, Router: router.Config{Hidden: 20, Experts: 12, TopK: 2, Groups: 3, TopKGroups: 2,
		TopKMethod: "group_limited_greedy", ScoringFunc: router.Softmax, NormTopKProb: false, RoutedScalingFactor: 16}},
}

func relErr(got dsv3.Matrix, want []float64) float64 {
	g := toF64(got)
	var num, den float64
	for i, w := range want {
		num = math.Max(num, math.Abs(g[i]-w))
		den = math.Max(den, math.Abs(w))
	}
	if den == 0 { // an expert without tokens: its gradient must be exactly 0
		return num
	}
	return num / den
}

// TestAgainstPerTokenFloat64: the layer equals the per-token float64 loop
// within 1e-5 on random inputs with uneven loads and empty experts, for
// several worker counts (which change the dispatcher's schedule).
func TestAgainstPerTokenFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for ci, cfg := range testConfigs {
		for _, workers := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("cfg%d_w%d", ci, workers), func(t *testing.T) {
				m := randomMoE(rng, cfg, Float32)
				m.Workers, m.Gate.Workers = workers, workers
				T := 50 + rng.IntN(150)
				x := randInput(rng, T, cfg.Hidden)
				y, rec, err := m.Apply(x, true)
				if err != nil {
					t.Fatal(err)
				}
				rt := Routing(rec)
				empty, most := 0, int32(0)
				for _, n := range rt.Load {
					if n == 0 {
						empty++
					}
					most = max(most, n)
				}
				if empty == 0 || int(most) < 3*T*cfg.Router.TopK/cfg.Router.Experts/2 {
					t.Fatalf("loads %v are not uneven with empty experts", rt.Load)
				}
				want := moeOf(m).forward(toF64(x), rt.Experts)
				if e := relErr(y, want); e > 1e-5 {
					t.Fatalf("max rel err %g vs the float64 per-token loop (loads %v)", e, rt.Load)
				}
				// Inference gives the same output.
				yi, _, err := m.Apply(x, false)
				if err != nil {
					t.Fatal(err)
				}
				if e := relErr(yi, toF64(y)); e != 0 {
					t.Fatalf("inference output differs from training output by %g", e)
				}
			})
		}
	}
}

// fdCheck compares an analytic gradient with central differences of f
// over the values v.
func fdCheck(t *testing.T, what string, got dsv3.Matrix, v []float64, f func() float64) {
	t.Helper()
	want := make([]float64, len(v))
	for i := range v {
		h := 1e-6 * math.Max(1, math.Abs(v[i]))
		old := v[i]
		v[i] = old + h
		lp := f()
		v[i] = old - h
		lm := f()
		v[i] = old
		want[i] = (lp - lm) / (2 * h)
	}
	e := relErr(got, want)
	if e > 1e-4 || math.IsNaN(e) {
		t.Errorf("%s: max rel err %.3g vs finite differences", what, e)
	}
}

// TestGradientsFiniteDifference checks every gradient of Backward (all
// routed experts, the shared experts, the router weight through the gate
// weights, the input) against central finite differences of the float64
// model with the expert choice fixed.
func TestGradientsFiniteDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for ci, cfg := range testConfigs {
		if raceEnabled && ci > 0 {
			break // the float64 finite differences are slow under the race detector; one configuration runs raced
		}
		t.Run(fmt.Sprint("cfg", ci), func(t *testing.T) {
			cfg.Hidden, cfg.Router.Hidden, cfg.Intermediate = 8, 8, 4
			m := randomMoE(rng, cfg, Training)
			const T = 24
			x := randInput(rng, T, cfg.Hidden)
			R := randMatrix(rng, T, cfg.Hidden, 1)
			_, rec, err := m.Apply(x, true)
			if err != nil {
				t.Fatal(err)
			}
			ids := Routing(rec).Experts
			dx, err := m.ApplyBackward(rec, R)
			if err != nil {
				t.Fatal(err)
			}
			o := moeOf(m)
			x64, r64 := toF64(x), toF64(R)
			loss := func() float64 {
				var l float64
				for i, v := range o.forward(x64, ids) {
					l += v * r64[i]
				}
				return l
			}
			fdCheck(t, "input", dx, x64, loss)
			fdCheck(t, "gate.weight", m.Gate.Grad, o.gate, loss)
			for e, f := range m.Experts {
				fdCheck(t, fmt.Sprintf("experts.%d.gate_proj", e), f.Gate.Grad, o.experts[e].g, loss)
				fdCheck(t, fmt.Sprintf("experts.%d.up_proj", e), f.Up.Grad, o.experts[e].u, loss)
				fdCheck(t, fmt.Sprintf("experts.%d.down_proj", e), f.Down.Grad, o.experts[e].d, loss)
			}
			if m.Shared != nil {
				fdCheck(t, "shared_experts.gate_proj", m.Shared.Gate.Grad, o.shared.g, loss)
				fdCheck(t, "shared_experts.up_proj", m.Shared.Up.Grad, o.shared.u, loss)
				fdCheck(t, "shared_experts.down_proj", m.Shared.Down.Grad, o.shared.d, loss)
			}
		})
	}
}

// TestSwiGLUGradients: the dense MLP alone (dsv3.Layer Backward) against
// finite differences.
func TestSwiGLUGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	f, err := NewSwiGLU(6, 5, Training)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Params() {
		copy(p.Value.Data, randMatrix(rng, p.Value.Rows, p.Value.Cols, 0.7).Data)
	}
	var _ dsv3.Layer = f
	x := randMatrix(rng, 7, 6, 1)
	R := randMatrix(rng, 7, 6, 1)
	_, rec := f.Forward(x, true)
	dx := f.Backward(rec, R)
	o, x64, r64 := ffnOf(f), toF64(x), toF64(R)
	loss := func() float64 {
		var l float64
		for t := range 7 {
			y := make([]float64, 6)
			o.apply(y, x64[t*6:(t+1)*6], 1)
			for j, v := range y {
				l += v * r64[t*6+j]
			}
		}
		return l
	}
	fdCheck(t, "input", dx, x64, loss)
	fdCheck(t, "gate_proj", f.Gate.Grad, o.g, loss)
	fdCheck(t, "up_proj", f.Up.Grad, o.u, loss)
	fdCheck(t, "down_proj", f.Down.Grad, o.d, loss)
}

func TestParamNames(t *testing.T) {
	m, err := New(testConfigs[0], Options{Mode: Inference})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range m.Params() {
		names = append(names, p.Name)
		if p.Name != "gate.e_score_correction_bias" && (p.Slot == nil || !p.Value.Empty()) {
			t.Errorf("%s: inference mode should offer only a slot", p.Name)
		}
	}
	s := strings.Join(names, " ")
	for _, want := range []string{"gate.weight", "gate.e_score_correction_bias", "experts.0.gate_proj.weight", "experts.15.down_proj.weight",
		"shared_experts.up_proj.weight"} {
		if !strings.Contains(" "+s+" ", " "+want+" ") {
			t.Errorf("no parameter %s in %s", want, s)
		}
	}
	if len(names) != 2+16*3+3 {
		t.Errorf("%d parameters", len(names))
	}
	local, err := New(testConfigs[0], Options{Mode: Training, LocalExperts: func(e int) bool { return e < 4 }})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(local.Params()); n != 2+4*3+3 {
		t.Errorf("%d parameters with 4 local experts", n)
	}
}

func TestErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	cfg := testConfigs[0]
	check := func(name string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, want)
		}
	}
	bad := cfg
	bad.Router.Hidden = 7
	_, err := New(bad, Options{})
	check("router width", err, "router hidden_size 7, layer hidden_size 24")
	bad = cfg
	bad.Intermediate = 0
	_, err = New(bad, Options{})
	check("intermediate", err, "moe_intermediate_size 0")
	bad = cfg
	bad.Router.Groups = 3
	_, err = New(bad, Options{})
	check("groups", err, "n_group 3 does not divide n_routed_experts 16")
	_, err = New(cfg, Options{Mode: 7})
	check("mode", err, "Mode(7)")
	_, err = NewSwiGLU(0, 3, Training)
	check("swiglu", err, "hidden size 0")

	m, _ := New(cfg, Options{Mode: Inference})
	x := randMatrix(rng, 5, cfg.Hidden, 1)
	_, _, err = m.Apply(x, false)
	check("missing weight", err, "is not set")
	m = randomMoE(rng, cfg, Training)
	_, _, err = m.Apply(randMatrix(rng, 5, 3, 1), false)
	check("width", err, "moe: input: shape 5x3, want 5x24")
	xn := x.Clone()
	xn.Set(2, 1, float32(math.NaN()))
	_, _, err = m.Apply(xn, true)
	check("NaN", err, "at (2, 1)")
	saved := m.Experts[3].Down.W
	m.Experts[3].Down.W = dsv3.NewMatrix(cfg.Hidden, cfg.Intermediate+1)
	_, _, err = m.Apply(x, false)
	check("expert shape", err, "experts.3.down_proj.weight is [24, 13], want [24, 12]")
	m.Experts[3].Down.W = saved
	m.Experts[0] = nil // held "elsewhere", but the local dispatcher needs it
	_, _, err = m.Apply(randMatrix(rng, 64, cfg.Hidden, 1), false)
	check("missing expert", err, "experts.0 is not held by this process")
	m = randomMoE(rng, cfg, Training)
	_, rec, err := m.Apply(x, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.ApplyBackward(rec, randMatrix(rng, 4, cfg.Hidden, 1))
	check("dy shape", err, "output gradient: shape 4x24, want 5x24")
	_, err = m.ApplyBackward(nil, x)
	check("record", err, "record of a training Forward")
	if err := m.UpdateBias(); err == nil {
		t.Error("UpdateBias without an updater")
	}
	// Local dispatcher input checks.
	var l Local
	_, _, err = l.Dispatch(x, []int32{1, 2}, 4, 16, nil, 3, nil)
	check("pairs", err, "dispatch of 2 pairs for 5 tokens")
	_, _, err = l.Dispatch(x, make([]int32, 20), 4, 16, make([]float32, 3), 3, nil)
	check("scale", err, "scale has 3 values")
	ids := make([]int32, 20)
	ids[7] = 16
	_, _, err = l.Dispatch(x, ids, 4, 16, nil, 3, nil)
	check("expert id", err, "pair 7 (token 1) routed to expert 16")
	_, _, err = l.Dispatch(x, make([]int32, 20), 4, 16, nil, 3, func(e int, in, out dsv3.Matrix, w int) error { return fmt.Errorf("boom") })
	check("expert error", err, "expert 0: boom")
}

// TestBalanceCounts: a training forward hands its load to the bias
// updater, and UpdateBias moves the bias against it.
func TestBalanceCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	m := randomMoE(rng, testConfigs[0], Training)
	u, err := router.NewBiasUpdater(16, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	m.Balance = u
	before := append([]float32(nil), m.Gate.Bias.Data...)
	var load [16]int64
	for range 2 {
		_, rec, err := m.Apply(randMatrix(rng, 30, 24, 1), true)
		if err != nil {
			t.Fatal(err)
		}
		for e, n := range Routing(rec).Load {
			load[e] += int64(n)
		}
	}
	if _, _, err := m.Apply(randMatrix(rng, 30, 24, 1), false); err != nil { // inference: not counted
		t.Fatal(err)
	}
	if got := u.Load(); fmt.Sprint(got) != fmt.Sprint(load[:]) {
		t.Fatalf("updater load %v, routed %v", got, load)
	}
	if err := m.UpdateBias(); err != nil {
		t.Fatal(err)
	}
	mean := float64(2*30*4) / 16
	for e, b := range m.Gate.Bias.Data {
		d := b - before[e]
		want := float32(0)
		if float64(load[e]) < mean {
			want = 0.01
		} else if float64(load[e]) > mean {
			want = -0.01
		}
		if math.Abs(float64(d-want)) > 1e-6 {
			t.Fatalf("expert %d (load %d, mean %g): bias moved by %g, want %g", e, load[e], mean, d, want)
		}
	}
}

// balance64 is α·L_Bal (report eqs. 17-20) of the float64 model for the
// fixed choice ids, averaged over sequences of seqLen tokens.
func (o *moe64) balance64(x []float64, ids []int32, seqLen int, alpha float64) float64 {
	c := o.rc
	H, E, K := c.Hidden, c.Experts, c.TopK
	T := len(x) / H
	var tot float64
	for q := 0; q < T/seqLen; q++ {
		f, p := make([]float64, E), make([]float64, E)
		for t := q * seqLen; t < (q+1)*seqLen; t++ {
			s := make([]float64, E)
			var z float64
			for e := range s {
				for j := range H {
					s[e] += o.gate[e*H+j] * x[t*H+j]
				}
				s[e] = 1 / (1 + math.Exp(-s[e]))
				z += s[e]
			}
			for e := range s {
				p[e] += s[e] / z / float64(seqLen)
			}
			for _, e := range ids[t*K : (t+1)*K] {
				f[e] += float64(E) / float64(K*seqLen)
			}
		}
		for e := range f {
			tot += f[e] * p[e]
		}
	}
	return alpha * tot / float64(T/seqLen)
}

// TestSeqBalanceLoss: the layer's sequence-wise balance loss equals the
// float64 model's, and ApplyBackward adds its gradient (finite differences
// of output·R + α·L_Bal for the router weight and the input).
func TestSeqBalanceLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	cfg := testConfigs[0]
	cfg.Hidden, cfg.Router.Hidden, cfg.Intermediate = 8, 8, 4
	m := randomMoE(rng, cfg, Training)
	const T, seqLen, alpha = 24, 8, 1.0
	x := randInput(rng, T, cfg.Hidden)
	R := randMatrix(rng, T, cfg.Hidden, 1)
	_, rec, err := m.Apply(x, true)
	if err != nil {
		t.Fatal(err)
	}
	ids := Routing(rec).Experts
	o := moeOf(m)
	x64, r64 := toF64(x), toF64(R)
	l, err := m.SeqBalanceLoss(rec, seqLen, alpha)
	if err != nil {
		t.Fatal(err)
	}
	if want := o.balance64(x64, ids, seqLen, alpha); math.Abs(l-want) > 1e-6*want {
		t.Fatalf("balance loss %v, float64 model %v", l, want)
	}
	dx, err := m.ApplyBackward(rec, R)
	if err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		l := o.balance64(x64, ids, seqLen, alpha)
		for i, v := range o.forward(x64, ids) {
			l += v * r64[i]
		}
		return l
	}
	fdCheck(t, "input", dx, x64, loss)
	fdCheck(t, "gate.weight", m.Gate.Grad, o.gate, loss)
	if _, err := m.SeqBalanceLoss(nil, seqLen, alpha); err == nil {
		t.Error("SeqBalanceLoss accepted a nil record")
	}
}
