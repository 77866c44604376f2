package alltoall_test

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/alltoall"
	"github.com/dsv3go/dsv3/router"
)

// TestTrafficDeepSeekV3 measures the inter-node traffic of DeepSeek-V3's
// routing (256 experts in 8 groups, one group per node, top-8) on 64
// in-process ranks (8 nodes × 8, 4 experts a rank, as in the report's
// EP64 deployment), with random router weights and inputs: node-limited
// routing (topk_group 4) dispatched two-hop against unrestricted routing
// (all 8 groups) dispatched flat, and the two mixed cases. The rows are
// narrow here (the traffic is per row); the log also gives the bytes for
// rows of 7168 values.
func TestTrafficDeepSeekV3(t *testing.T) {
	const (
		nodes, perNode = 8, 8
		R              = nodes * perNode
		experts, topK  = 256, 8
		hidden, width  = 64, 128
		tokens         = 32 // per rank
	)
	l := alltoall.Layout{Experts: experts, Ranks: R, RanksPerNode: perNode}
	cfg := func(kept int) router.Config {
		return router.Config{Hidden: hidden, Experts: experts, TopK: topK, Groups: nodes, TopKGroups: kept,
			TopKMethod: router.NoAuxTC, ScoringFunc: router.Sigmoid, NormTopKProb: true, RoutedScalingFactor: 2.5}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	w := randMatrix(rng, experts, hidden)
	for i := range w.Data {
		w.Data[i] *= float32(1 / math.Sqrt(hidden))
	}
	xs := make([]dsv3.Matrix, R)
	for r := range xs {
		xs[r] = randMatrix(rng, tokens, hidden)
	}
	route := func(kept int) [][]int32 {
		rt, err := router.New(cfg(kept), false)
		if err != nil {
			t.Fatal(err)
		}
		rt.W = w
		ids := make([][]int32, R)
		for r := range R {
			out, _, err := rt.Forward(xs[r], false)
			if err != nil {
				t.Fatal(err)
			}
			ids[r] = out.Experts
		}
		return ids
	}
	limited, free := route(4), route(nodes)
	// Every limited token reaches at most 4 nodes.
	for r := range R {
		m, err := l.Route(limited[r], topK)
		if err != nil {
			t.Fatal(err)
		}
		for tok := range tokens {
			seen := map[int]bool{}
			for _, q := range m.Ranks(tok, nil) {
				seen[l.Node(q)] = true
			}
			if len(seen) > 4 {
				t.Fatalf("rank %d token %d reaches %d nodes with topk_group 4", r, tok, len(seen))
			}
		}
	}
	measure := func(ids [][]int32, rt alltoall.Route) alltoall.Traffic {
		world, err := alltoall.NewWorld(R, alltoall.WorldOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var sum alltoall.Traffic
		for r, err := range world.Run(func(c alltoall.Comm) error {
			d, err := alltoall.NewDispatcher(c, l, alltoall.Options{Route: rt, Workers: 1})
			if err != nil {
				return err
			}
			x := dsv3.NewMatrix(tokens, width)
			b, err := d.DispatchRows(x, ids[c.Rank()], topK, nil)
			if err != nil {
				return err
			}
			if _, err := d.Combine(b, b.X); err != nil {
				return err
			}
			mu.Lock()
			sum = sum.Add(d.Traffic())
			mu.Unlock()
			return nil
		}) {
			if err != nil {
				t.Fatalf("rank %d: %v", r, err)
			}
		}
		return sum
	}
	type result struct {
		name string
		tr   alltoall.Traffic
	}
	res := []result{
		{"unrestricted routing, flat", measure(free, alltoall.Flat)},
		{"unrestricted routing, two-hop", measure(free, alltoall.TwoHop)},
		{"node-limited (4 of 8), flat", measure(limited, alltoall.Flat)},
		{"node-limited (4 of 8), two-hop", measure(limited, alltoall.TwoHop)},
	}
	T := float64(R * tokens)
	const big = 4*7168 + 8*topK // a float32 row of 7168 values and its metadata
	for _, r := range res {
		rows := float64(r.tr.DispatchInterRows)
		t.Logf("%-31s inter-node rows per token %.3f (dispatch %d B + combine %d B at width %d; %.1f MB dispatch at width 7168), intra-node rows per token %.3f",
			r.name, rows/T, r.tr.DispatchInter, r.tr.CombineInter, width, rows*big/1e6, float64(r.tr.DispatchIntraRows)/T)
	}
	base, best := res[0].tr, res[3].tr
	ratio := float64(base.Inter()) / float64(best.Inter())
	t.Logf("node-limited two-hop sends %.2fx fewer inter-node bytes than unrestricted flat routing (dispatch and combine)", ratio)
	if ratio < 1.5 {
		t.Errorf("reduction %.2fx, want > 1.5x", ratio)
	}
	if best.DispatchInterRows > int64(4*T) { // at most 4 crossings a token
		t.Errorf("node-limited two-hop: %d inter-node rows for %g tokens", best.DispatchInterRows, T)
	}
	if res[1].tr.DispatchInterRows >= base.DispatchInterRows || res[3].tr.DispatchInterRows >= res[2].tr.DispatchInterRows {
		t.Errorf("two-hop does not reduce the inter-node rows of flat")
	}
}
