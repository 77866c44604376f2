package router

import (
	"math"
	"math/rand/v2"
	"sort"

	"github.com/dsv3go/dsv3"
)

// The test oracle: the reference Gate.forward written as directly as
// possible (sorting whole lists instead of partial selection), one token at
// a time, in float64.

// oracleScores returns the unbiased affinities of token x in float64.
func oracleScores(c Config, w dsv3.Matrix, x []float32) []float64 {
	s := make([]float64, c.Experts)
	for i := range s {
		var d float64
		for j, v := range x {
			d += float64(v) * float64(w.At(i, j))
		}
		s[i] = d
	}
	if c.ScoringFunc == Softmax {
		m := math.Inf(-1)
		for _, v := range s {
			m = math.Max(m, v)
		}
		var z float64
		for i, v := range s {
			s[i] = math.Exp(v - m)
			z += s[i]
		}
		for i := range s {
			s[i] /= z
		}
		return s
	}
	for i, v := range s {
		s[i] = 1 / (1 + math.Exp(-v))
	}
	return s
}

// oracleChoice returns the chosen experts (descending biased score, ties
// to the lower index), the kept groups, and the smallest gap between two
// biased or group scores that decided the choice (the margin).
func oracleChoice(c Config, s []float64, bias []float32) (ids []int, kept map[int]bool, margin float64) {
	E, G, gs := c.Experts, c.Groups, c.GroupSize()
	b := make([]float64, E)
	for i, v := range s {
		b[i] = v
		if c.UsesBias() {
			b[i] += float64(bias[i])
		}
	}
	margin = math.Inf(1)
	kept = map[int]bool{}
	masked := append([]float64(nil), b...)
	if G > 1 {
		gscore := make([]float64, G)
		for g := range G {
			v := append([]float64(nil), b[g*gs:(g+1)*gs]...)
			sort.Sort(sort.Reverse(sort.Float64Slice(v)))
			if c.UsesBias() {
				gscore[g] = v[0] + v[1]
			} else {
				gscore[g] = v[0]
			}
		}
		order := make([]int, G)
		for g := range order {
			order[g] = g
		}
		sort.SliceStable(order, func(i, j int) bool { return gscore[order[i]] > gscore[order[j]] })
		for _, g := range order[:c.TopKGroups] {
			kept[g] = true
		}
		if c.TopKGroups < G {
			margin = gscore[order[c.TopKGroups-1]] - gscore[order[c.TopKGroups]]
		}
		for i := range masked {
			if !kept[i/gs] {
				masked[i] = math.Inf(-1)
			}
		}
	} else {
		kept[0] = true
	}
	order := make([]int, E)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return masked[order[i]] > masked[order[j]] })
	ids = order[:c.TopK]
	for j := 0; j+1 < len(order) && j < c.TopK; j++ {
		if d := masked[order[j]] - masked[order[j+1]]; !math.IsNaN(d) {
			margin = math.Min(margin, d)
		}
	}
	return ids, kept, margin
}

// oracleWeights returns the gate weights of experts ids.
func oracleWeights(c Config, s []float64, ids []int) []float64 {
	w := make([]float64, len(ids))
	var tot float64
	for j, e := range ids {
		w[j] = s[e]
		tot += s[e]
	}
	for j := range w {
		if c.NormTopKProb {
			w[j] /= tot
		}
		w[j] *= float64(c.RoutedScalingFactor)
	}
	return w
}

// randMatrix fills an r×c matrix with N(0, sd²) values.
func randMatrix(rng *rand.Rand, r, c int, sd float64) dsv3.Matrix {
	m := dsv3.NewMatrix(r, c)
	for i := range m.Data {
		m.Data[i] = float32(rng.NormFloat64() * sd)
	}
	return m
}

// randRouter returns a router with random weight and bias.
func randRouter(rng *rand.Rand, c Config, train bool, biasSD float64) *Router {
	r, err := New(c, train)
	if err != nil {
		panic(err)
	}
	r.W = randMatrix(rng, c.Experts, c.Hidden, 1/math.Sqrt(float64(c.Hidden)))
	if c.UsesBias() {
		for i := range r.Bias.Data {
			r.Bias.Data[i] = float32(rng.NormFloat64() * biasSD)
		}
	}
	return r
}
