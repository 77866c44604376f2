package alltoall

import (
	"fmt"
	"math/bits"
)

// Layout places the routed experts on the ranks of an expert-parallel
// job: rank r holds the contiguous block of experts
// [r·E/R, (r+1)·E/R), and the ranks are grouped into nodes of
// RanksPerNode consecutive ranks (rank r is local rank r mod RanksPerNode
// of node r / RanksPerNode). With DeepSeek-V3's router the experts of one
// routing group should sit on one node (n_group = Nodes()), which is what
// makes group-limited routing node-limited.
type Layout struct {
	// Experts is n_routed_experts, E.
	Experts int
	// Ranks is the number of expert-parallel ranks, R (the communicator's
	// size).
	Ranks int
	// RanksPerNode is how many consecutive ranks share a node (and its fast
	// intra-node links).
	RanksPerNode int
}

// Validate returns an error naming the first inconsistent field.
func (l Layout) Validate() error {
	switch {
	case l.Experts <= 0:
		return fmt.Errorf("alltoall: layout with %d experts, want > 0", l.Experts)
	case l.Ranks <= 0:
		return fmt.Errorf("alltoall: layout with %d ranks, want > 0", l.Ranks)
	case l.Experts%l.Ranks != 0:
		return fmt.Errorf("alltoall: layout of %d experts over %d ranks: the ranks must divide the experts", l.Experts, l.Ranks)
	case l.RanksPerNode <= 0 || l.Ranks%l.RanksPerNode != 0:
		return fmt.Errorf("alltoall: layout with %d ranks per node over %d ranks: want a positive divisor", l.RanksPerNode, l.Ranks)
	}
	return nil
}

// Nodes returns the number of nodes, Ranks / RanksPerNode.
func (l Layout) Nodes() int { return l.Ranks / l.RanksPerNode }

// ExpertsPerRank returns E / R.
func (l Layout) ExpertsPerRank() int { return l.Experts / l.Ranks }

// Owner returns the rank that holds expert e.
func (l Layout) Owner(e int) int { return e / l.ExpertsPerRank() }

// Node returns the node of rank r.
func (l Layout) Node(r int) int { return r / l.RanksPerNode }

// Local returns the index of rank r within its node.
func (l Layout) Local(r int) int { return r % l.RanksPerNode }

// ExpertRange returns the experts [lo, hi) held by rank r.
func (l Layout) ExpertRange(r int) (lo, hi int) {
	n := l.ExpertsPerRank()
	return r * n, (r + 1) * n
}

// Holds reports whether rank r holds expert e: the predicate for
// moe.Options.LocalExperts on rank r.
func (l Layout) Holds(r, e int) bool { return l.Owner(e) == r }

// Membership is a batch of routed tokens seen through a Layout: how many
// (token, slot) pairs go to each expert, how many tokens to each rank and
// each node (a token counts once per rank and once per node however many
// of its experts are there), and the token × rank membership table.
type Membership struct {
	// Tokens is T and K the experts per token.
	Tokens, K int
	// PerExpert counts the pairs routed to each expert.
	PerExpert []int
	// PerRank counts the tokens with at least one expert on each rank: the
	// rows a flat dispatch sends there.
	PerRank []int
	// PerNode counts the tokens with at least one expert on each node: the
	// rows a two-hop dispatch sends across to that node.
	PerNode []int

	words int      // 64-bit words per token in bits
	bits  []uint64 // token t's ranks: bits[t*words : (t+1)*words]
}

// Route computes the membership of T = len(experts)/k tokens whose chosen
// experts are experts[t*k : (t+1)*k]. Ids outside [0, Experts) are errors.
func (l Layout) Route(experts []int32, k int) (*Membership, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if k <= 0 || len(experts)%k != 0 {
		return nil, fmt.Errorf("alltoall: %d expert ids are not a whole number of tokens of k = %d", len(experts), k)
	}
	T := len(experts) / k
	words := (l.Ranks + 63) / 64
	m := &Membership{Tokens: T, K: k, PerExpert: make([]int, l.Experts), PerRank: make([]int, l.Ranks),
		PerNode: make([]int, l.Nodes()), words: words, bits: make([]uint64, T*words)}
	epr := l.ExpertsPerRank()
	for p, e := range experts {
		if e < 0 || int(e) >= l.Experts {
			return nil, fmt.Errorf("alltoall: pair %d (token %d, slot %d) routed to expert %d, outside [0, %d)", p, p/k, p%k, e, l.Experts)
		}
		m.PerExpert[e]++
		r := int(e) / epr
		m.bits[(p/k)*words+r/64] |= 1 << (r % 64)
	}
	lastNode := make([]int, l.Nodes())
	for i := range lastNode {
		lastNode[i] = -1
	}
	for t := range T {
		for w, b := range m.bits[t*words : (t+1)*words] {
			for b != 0 {
				r := w*64 + bits.TrailingZeros64(b)
				b &= b - 1
				m.PerRank[r]++
				if n := r / l.RanksPerNode; lastNode[n] != t {
					lastNode[n] = t
					m.PerNode[n]++
				}
			}
		}
	}
	return m, nil
}

// Has reports whether token t has an expert on rank r.
func (m *Membership) Has(t, r int) bool {
	return m.bits[t*m.words+r/64]&(1<<(r%64)) != 0
}

// Ranks appends to dst the ranks token t goes to, in increasing order.
func (m *Membership) Ranks(t int, dst []int) []int {
	for w, b := range m.bits[t*m.words : (t+1)*m.words] {
		for b != 0 {
			dst = append(dst, w*64+bits.TrailingZeros64(b))
			b &= b - 1
		}
	}
	return dst
}

// Count returns the number of ranks token t goes to.
func (m *Membership) Count(t int) int {
	n := 0
	for _, b := range m.bits[t*m.words : (t+1)*m.words] {
		n += bits.OnesCount64(b)
	}
	return n
}
