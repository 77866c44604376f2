package mtp

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestVerifyGreedy(t *testing.T) {
	logits := []float32{0.1, 2, -1, 2}
	if ok, tok := VerifyGreedy(1, logits); !ok || tok != 1 {
		t.Errorf("argmax draft: got (%v, %d), want (true, 1)", ok, tok)
	}
	if ok, tok := VerifyGreedy(3, logits); ok || tok != 1 {
		t.Errorf("tied later draft: got (%v, %d), want (false, 1): ties go to the first index", ok, tok)
	}
}

// TestVerifySamplePreservesTarget draws drafts from q, verifies them
// against p, and checks the emitted tokens follow p, not q.
func TestVerifySamplePreservesTarget(t *testing.T) {
	p := []float32{0.5, 0.2, 0.2, 0.1, 0}
	q := []float32{0.1, 0.6, 0.1, 0.1, 0.1}
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 200000
	hist := make([]float64, len(p))
	var acc Acceptance
	for i := 0; i < n; i++ {
		draft := sample(q, rng)
		ok, tok, err := VerifySample(draft, p, q, rng)
		if err != nil {
			t.Fatal(err)
		}
		acc.Add(ok)
		hist[tok]++
	}
	for i := range p {
		got := hist[i] / n
		if math.Abs(got-float64(p[i])) > 0.005 {
			t.Errorf("token %d: frequency %.4f, target probability %.2f", i, got, p[i])
		}
	}
	// The acceptance rate of speculative sampling is Σ min(p, q).
	var want float64
	for i := range p {
		want += math.Min(float64(p[i]), float64(q[i]))
	}
	if math.Abs(acc.Rate()-want) > 0.005 {
		t.Errorf("acceptance rate %.4f, want Σmin(p,q) = %.4f", acc.Rate(), want)
	}
	t.Logf("acceptance rate %.4f over %d drafts", acc.Rate(), n)
}

func TestVerifySampleErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	if _, _, err := VerifySample(0, []float32{1}, []float32{0.5, 0.5}, rng); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, _, err := VerifySample(5, []float32{1, 0}, []float32{0.5, 0.5}, rng); err == nil {
		t.Error("draft outside the vocabulary accepted")
	}
}
