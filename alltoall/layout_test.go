package alltoall_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3/alltoall"
)

func TestLayoutValidate(t *testing.T) {
	for _, tc := range []struct {
		l   alltoall.Layout
		msg string
	}{
		{alltoall.Layout{Experts: 0, Ranks: 1, RanksPerNode: 1}, "0 experts"},
		{alltoall.Layout{Experts: 8, Ranks: 0, RanksPerNode: 1}, "0 ranks"},
		{alltoall.Layout{Experts: 8, Ranks: 3, RanksPerNode: 1}, "the ranks must divide the experts"},
		{alltoall.Layout{Experts: 8, Ranks: 4, RanksPerNode: 3}, "3 ranks per node over 4 ranks"},
		{alltoall.Layout{Experts: 8, Ranks: 4, RanksPerNode: 0}, "0 ranks per node"},
	} {
		if err := tc.l.Validate(); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: error %v, want one saying %q", tc.l, err, tc.msg)
		}
	}
	l := alltoall.Layout{Experts: 24, Ranks: 6, RanksPerNode: 3}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	if l.Nodes() != 2 || l.ExpertsPerRank() != 4 || l.Owner(13) != 3 || l.Node(3) != 1 || l.Local(4) != 1 || !l.Holds(3, 12) || l.Holds(3, 16) {
		t.Errorf("layout arithmetic is off: %+v", l)
	}
	if lo, hi := l.ExpertRange(5); lo != 20 || hi != 24 {
		t.Errorf("rank 5 holds [%d, %d), want [20, 24)", lo, hi)
	}
	if _, err := l.Route([]int32{1, 2, 24}, 3); err == nil || !strings.Contains(err.Error(), "expert 24") {
		t.Errorf("id 24 of 24 experts: %v", err)
	}
	if _, err := l.Route([]int32{1, 2, 3}, 2); err == nil {
		t.Errorf("3 ids with k = 2 accepted")
	}
}

// TestMembership checks Route against per-token loops, with more than 64
// ranks (several words of the membership table per token).
func TestMembership(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, l := range []alltoall.Layout{{Experts: 16, Ranks: 4, RanksPerNode: 2}, {Experts: 260, Ranks: 130, RanksPerNode: 10}} {
		const T, k = 300, 6
		ids := make([]int32, T*k)
		for i := range ids {
			ids[i] = int32(rng.IntN(l.Experts))
		}
		m, err := l.Route(ids, k)
		if err != nil {
			t.Fatal(err)
		}
		perExpert, perRank, perNode := make([]int, l.Experts), make([]int, l.Ranks), make([]int, l.Nodes())
		for tok := range T {
			ranks, nodes := map[int]bool{}, map[int]bool{}
			for _, e := range ids[tok*k : (tok+1)*k] {
				perExpert[e]++
				ranks[l.Owner(int(e))] = true
				nodes[l.Node(l.Owner(int(e)))] = true
			}
			for r := range l.Ranks {
				if m.Has(tok, r) != ranks[r] {
					t.Fatalf("token %d rank %d: Has %v", tok, r, m.Has(tok, r))
				}
				if ranks[r] {
					perRank[r]++
				}
			}
			for n := range nodes {
				perNode[n]++
			}
			got := m.Ranks(tok, nil)
			if len(got) != len(ranks) || m.Count(tok) != len(ranks) {
				t.Fatalf("token %d: Ranks %v, Count %d, want %d ranks", tok, got, m.Count(tok), len(ranks))
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("token %d: Ranks %v not increasing", tok, got)
				}
			}
		}
		for e := range perExpert {
			if m.PerExpert[e] != perExpert[e] {
				t.Fatalf("expert %d: %d pairs, want %d", e, m.PerExpert[e], perExpert[e])
			}
		}
		for r := range perRank {
			if m.PerRank[r] != perRank[r] {
				t.Fatalf("rank %d: %d tokens, want %d", r, m.PerRank[r], perRank[r])
			}
		}
		for n := range perNode {
			if m.PerNode[n] != perNode[n] {
				t.Fatalf("node %d: %d tokens, want %d", n, m.PerNode[n], perNode[n])
			}
		}
	}
}

// TestNewDispatcherDisagreement: ranks with different layouts or options
// all get an error.
func TestNewDispatcherDisagreement(t *testing.T) {
	runWorld(t, 4, func(c alltoall.Comm) error {
		l := alltoall.Layout{Experts: 16, Ranks: 4, RanksPerNode: 2}
		opt := alltoall.Options{}
		if c.Rank() == 2 {
			opt.Payload = alltoall.FP8
		}
		if _, err := alltoall.NewDispatcher(c, l, opt); err == nil || !strings.Contains(err.Error(), "disagree on the payload") {
			t.Errorf("rank %d: %v", c.Rank(), err)
		}
		if c.Rank() == 1 {
			l.RanksPerNode = 3
		}
		if _, err := alltoall.NewDispatcher(c, l, alltoall.Options{}); err == nil {
			t.Errorf("rank %d: a bad layout on rank 1 was accepted", c.Rank())
		}
		return nil
	})
}
