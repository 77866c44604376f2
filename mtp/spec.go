package mtp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
)

// Argmax returns the index of the largest value (the first on ties).
func Argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

// VerifyGreedy checks a drafted token against the main model's logits at
// the position that predicts it. The draft is accepted when it is the
// argmax; token is the main model's own choice either way, so greedy
// decoding with drafts produces exactly the tokens of plain greedy decoding.
func VerifyGreedy(draft int32, target []float32) (accepted bool, token int32) {
	t := Argmax(target)
	return t == draft, t
}

// VerifySample applies the speculative-sampling acceptance rule (Leviathan
// et al. 2023; Chen et al. 2023): a draft x drawn from q is accepted with
// probability min(1, p(x)/q(x)); otherwise a replacement is drawn from
// normalise(max(0, p-q)). p is the main model's distribution at that
// position and q the module's (both already shaped by temperature and
// top-p). The returned token is then distributed exactly as p.
func VerifySample(draft int32, p, q []float32, rng *rand.Rand) (accepted bool, token int32, err error) {
	if len(p) != len(q) {
		return false, 0, fmt.Errorf("mtp: target distribution has %d entries, draft %d", len(p), len(q))
	}
	if draft < 0 || int(draft) >= len(p) {
		return false, 0, fmt.Errorf("mtp: draft token %d outside %d classes", draft, len(p))
	}
	px, qx := float64(p[draft]), float64(q[draft])
	if qx > 0 && rng.Float64()*qx < px {
		return true, draft, nil
	}
	var z float64
	for i := range p {
		z += math.Max(0, float64(p[i])-float64(q[i]))
	}
	if z <= 0 { // p == q: any rejection is a zero-probability event; sample p
		return false, sample(p, rng), nil
	}
	u := rng.Float64() * z
	for i := range p {
		u -= math.Max(0, float64(p[i])-float64(q[i]))
		if u < 0 {
			return false, int32(i), nil
		}
	}
	return false, int32(len(p) - 1), nil
}

// sample draws an index from the distribution p.
func sample(p []float32, rng *rand.Rand) int32 {
	var z float64
	for _, v := range p {
		z += float64(v)
	}
	u := rng.Float64() * z
	for i, v := range p {
		u -= float64(v)
		if u < 0 {
			return int32(i)
		}
	}
	return int32(len(p) - 1)
}

// Acceptance counts drafted and accepted tokens; safe for concurrent use.
type Acceptance struct {
	drafted, accepted atomic.Int64
}

// Add records one verified draft.
func (a *Acceptance) Add(accepted bool) {
	a.drafted.Add(1)
	if accepted {
		a.accepted.Add(1)
	}
}

// Counts returns the number of drafts and of accepted drafts.
func (a *Acceptance) Counts() (drafted, accepted int64) {
	return a.drafted.Load(), a.accepted.Load()
}

// Rate returns accepted/drafted, or 0 before any draft.
func (a *Acceptance) Rate() float64 {
	d, ac := a.Counts()
	if d == 0 {
		return 0
	}
	return float64(ac) / float64(d)
}
