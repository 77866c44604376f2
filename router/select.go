package router

// scratch is one goroutine's working space for choosing experts, reused
// across the tokens it handles (no allocation per token).
type scratch struct {
	biased []float32 // s + b per expert (nil: use s)
	group  []float32 // group scores
	keep   []bool    // kept groups
	topV   []float32 // running top-k biased scores
}

func newScratch(c Config) *scratch {
	sc := &scratch{group: make([]float32, c.Groups), keep: make([]bool, c.Groups), topV: make([]float32, c.TopK)}
	if c.UsesBias() {
		sc.biased = make([]float32, c.Experts)
	}
	return sc
}

// choose writes into ids the TopK experts of one token with affinities s,
// in descending order of biased score; ties go to the lower expert id (and,
// for groups, to the lower group id).
//
// With more than one group, a group's score is the sum of its two highest
// biased scores (its highest score when there is no bias), the TopKGroups
// best groups are kept, and experts are chosen among theirs only.
func (sc *scratch) choose(c Config, s, bias []float32, ids []int32) {
	b := s
	if bias != nil {
		b = sc.biased
		for j, v := range s {
			b[j] = v + bias[j]
		}
	}
	gs := c.GroupSize()
	if c.Groups > 1 {
		for g := range sc.group {
			sc.group[g] = groupScore(b[g*gs:(g+1)*gs], bias != nil)
			sc.keep[g] = false
		}
		for range c.TopKGroups {
			best := -1
			for g, v := range sc.group {
				if !sc.keep[g] && (best < 0 || v > sc.group[best]) {
					best = g
				}
			}
			sc.keep[best] = true
		}
	}
	k := len(ids)
	n := 0
	top := sc.topV
	for g := 0; g < c.Groups; g++ {
		if c.Groups > 1 && !sc.keep[g] {
			continue
		}
		for e := g * gs; e < (g+1)*gs; e++ {
			v := b[e]
			if n == k && !(v > top[k-1]) {
				continue
			}
			// Insert after every entry >= v: an equal, earlier expert
			// stays ahead.
			p := min(n, k-1)
			for p > 0 && top[p-1] < v {
				p--
			}
			last := min(n, k-1)
			copy(top[p+1:last+1], top[p:last])
			copy(ids[p+1:last+1], ids[p:last])
			top[p], ids[p] = v, int32(e)
			if n < k {
				n++
			}
		}
	}
}

// groupScore is the sum of the two highest values of v (computed as
// first + second, as the reference's topk(2).sum()), or its maximum when
// top2 is false.
func groupScore(v []float32, top2 bool) float32 {
	a := v[0]
	if !top2 {
		for _, x := range v[1:] {
			a = max(a, x)
		}
		return a
	}
	b := v[1]
	if b > a {
		a, b = b, a
	}
	for _, x := range v[2:] {
		if x > a {
			a, b = x, a
		} else if x > b {
			b = x
		}
	}
	return a + b
}
