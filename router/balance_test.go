package router

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3"
)

// balanceRun trains the bias alone for steps steps on the tiny model's
// routing shape (16 experts in 4 groups, 2 kept, top-4): each step routes
// two fresh micro-batches of 4096 synthetic tokens, accumulates their load
// in the bias updater and applies it with speed gamma. It returns the MaxVio
// of each step's load. The inputs share a common direction that the
// centroids of four experts align with, so those experts are strongly
// favoured (chosen by almost every token at the start).
func balanceRun(t *testing.T, gamma float32, steps int) []float64 {

	t.Helper()
	c := Config{Hidden: 16, Experts: 16, TopK: 4, Groups: 4, TopKGroups: 2, TopKMethod: NoAuxTC, ScoringFunc: Sigmoid, NormTopKProb: true, RoutedScalingFactor: 2.5}
	rng := rand.New(rand.NewPCG(21, 22))
	r := randRouter(rng, c, false, 0)
	w := r.W.(dsv3.Matrix)
	for _, e := range []int{0, 1, 5, 9} { // favoured experts, in three groups
		w.Set(e, 0, 2)
	}
	u, err := NewBiasUpdater(c.Experts, gamma)
	if err != nil {
		t.Fatal(err)
	}
	const T, micro = 4096, 2
	x := dsv3.NewMatrix(T, c.Hidden)
	curve := make([]float64, steps)
	for step := range steps {
		load := make([]int32, c.Experts)
		for range micro { // the counts of all micro-batches make one step
			for i := range x.Data {
				x.Data[i] = float32(rng.NormFloat64())
			}
			for tk := 0; tk < T; tk++ {
				x.Set(tk, 0, 1+0.3*float32(rng.NormFloat64()))
			}
			rt, _, err := r.Forward(x, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := u.Add(rt); err != nil {
				t.Fatal(err)
			}
			for i, n := range rt.Load {
				load[i] += n
			}
		}
		curve[step] = MaxVio(load)
		if err := u.Step(r.Bias.Row(0)); err != nil {
			t.Fatal(err)
		}
	}
	return curve
}

func logCurve(t *testing.T, name string, curve []float64) {
	var b strings.Builder
	for i := 0; i < len(curve); i += 10 {
		fmt.Fprintf(&b, " %d:%.3f", i, curve[i])
	}
	fmt.Fprintf(&b, " %d:%.3f", len(curve)-1, curve[len(curve)-1])
	t.Logf("%s MaxVio per step:%s", name, b.String())
}

// TestBiasUpdateBalances: 300 steps of b_i += γ·sign(mean − load_i) bring
// the per-step MaxVio from above 1 to below 0.1; with γ = 0 it stays above 1.
// The speed is the report's γ = 0.001.
func TestBiasUpdateBalances(t *testing.T) {
	if raceEnabled {
		t.Skip("600 routed batches: too slow under the race detector (the same code runs raced in the other tests)")
	}
	const steps = 300
	on := balanceRun(t, 0.001, steps)
	logCurve(t, "γ=0.001", on)
	if on[0] <= 1 {
		t.Fatalf("initial MaxVio %.3f is not above 1: the synthetic load is not unbalanced", on[0])
	}
	var tail float64
	for _, v := range on[steps-10:] {
		tail = math.Max(tail, v)
	}
	if tail >= 0.1 {
		t.Fatalf("MaxVio over the last 10 steps reaches %.3f, want < 0.1", tail)
	}
	off := balanceRun(t, 0, steps)
	logCurve(t, "γ=0", off)
	for i, v := range off {
		if v <= 1 {
			t.Fatalf("γ=0: MaxVio %.3f at step %d, want it to stay above 1", v, i)
		}
	}
}

func TestBiasUpdaterStep(t *testing.T) {
	u, err := NewBiasUpdater(4, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.AddLoad([]int32{1, 2, 3, 6}); err != nil {
		t.Fatal(err)
	}
	if err := u.AddLoad([]int32{1, 1, 0, 2}); err != nil { // totals 2 3 3 8, mean 4
		t.Fatal(err)
	}
	bias := []float32{0, 0, 0, 1}
	if err := u.Step(bias); err != nil {
		t.Fatal(err)
	}
	if want := []float32{0.5, 0.5, 0.5, 0.5}; fmt.Sprint(bias) != fmt.Sprint(want) {
		t.Fatalf("bias %v, want %v", bias, want)
	}
	// Counts were reset; a load exactly at the mean is left alone.
	if l := u.Load(); fmt.Sprint(l) != "[0 0 0 0]" {
		t.Fatalf("load after Step %v", l)
	}
	u.AddLoad([]int32{2, 2, 2, 2})
	u.Step(bias)
	if want := []float32{0.5, 0.5, 0.5, 0.5}; fmt.Sprint(bias) != fmt.Sprint(want) {
		t.Fatalf("balanced load moved the bias: %v", bias)
	}
	if err := u.AddLoad([]int32{1}); err == nil || !strings.Contains(err.Error(), "1 experts, the bias updater 4") {
		t.Fatalf("short load: %v", err)
	}
	if err := u.Step(make([]float32, 3)); err == nil || !strings.Contains(err.Error(), "3 values") {
		t.Fatalf("short bias: %v", err)
	}
	if _, err := NewBiasUpdater(4, -1); err == nil {
		t.Fatal("negative gamma accepted")
	}
	if _, err := NewBiasUpdater(0, 1); err == nil {
		t.Fatal("zero experts accepted")
	}
}

func TestStats(t *testing.T) {
	c := Config{Hidden: 4, Experts: 8, TopK: 3, Groups: 4, TopKGroups: 2, TopKMethod: NoAuxTC, ScoringFunc: Sigmoid, NormTopKProb: true, RoutedScalingFactor: 1}
	st, err := NewStats(c)
	if err != nil {
		t.Fatal(err)
	}
	rt := &Routing{Tokens: 3, K: 3, Experts: []int32{0, 1, 2, 4, 5, 6, 0, 1, 3}, Load: make([]int32, 8)}
	for _, e := range rt.Experts {
		rt.Load[e]++
	}
	if err := st.Add(rt); err != nil {
		t.Fatal(err)
	}
	// Load 2 2 1 1 1 1 1 0: mean 9/8, max 2 => MaxVio = (2-1.125)/1.125.
	if want := (2 - 1.125) / 1.125; math.Abs(st.BatchMaxVio-want) > 1e-12 || math.Abs(st.MaxVio()-want) > 1e-12 {
		t.Fatalf("MaxVio %v / %v, want %v", st.BatchMaxVio, st.MaxVio(), want)
	}
	// Groups: token 0 -> {0,1}, token 1 -> {2,3}, token 2 -> {0,1}.
	if fmt.Sprint(st.GroupTokens) != "[2 2 1 1]" || fmt.Sprint(st.GroupsReached) != "[0 0 3 0]" {
		t.Fatalf("group tokens %v, groups reached %v", st.GroupTokens, st.GroupsReached)
	}
	if st.MeanGroupsReached() != 2 {
		t.Fatalf("mean groups reached %v", st.MeanGroupsReached())
	}
	rt2 := &Routing{Tokens: 1, K: 3, Experts: []int32{7, 6, 5}, Load: []int32{0, 0, 0, 0, 0, 1, 1, 1}}
	st.Add(rt2)
	if st.Tokens != 4 || st.Batches != 2 || fmt.Sprint(st.Load) != "[2 2 1 1 1 2 2 1]" || fmt.Sprint(st.GroupsReached) != "[0 0 4 0]" {
		t.Fatalf("accumulated %+v", st)
	}
	if MaxVio([]int64{0, 0}) != 0 || MaxVio([]int{3, 3}) != 0 {
		t.Fatal("MaxVio of empty or balanced load")
	}
	if err := st.Add(&Routing{Tokens: 1, K: 2, Experts: []int32{0, 1}, Load: make([]int32, 8)}); err == nil {
		t.Fatal("mismatched routing accepted")
	}
}
