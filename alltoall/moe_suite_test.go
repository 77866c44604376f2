package alltoall_test

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/alltoall"
	"github.com/dsv3go/dsv3/moe"
	"github.com/dsv3go/dsv3/router"
)

// moeCfg is a small DeepSeekMoE layer: 16 routed experts in 4 groups (2
// kept), top-4, one shared expert; on a 2 nodes × 2 ranks layout each node
// holds two groups.
var moeCfg = moe.Config{Hidden: 32, Intermediate: 16, SharedExperts: 1, Router: router.Config{
	Hidden: 32, Experts: 16, TopK: 4, Groups: 4, TopKGroups: 2,
	TopKMethod: router.NoAuxTC, ScoringFunc: router.Sigmoid, NormTopKProb: true, RoutedScalingFactor: 2.5}}

// randomWeights fills every parameter of m from seed (the same on every
// rank): N(0, 1/in) weights, a small random bias, and a router that
// favours some experts so that the loads are uneven.
func randomWeights(m *moe.MoE, seed uint64) {
	for _, p := range m.Params() {
		rng := rand.New(rand.NewPCG(seed, hashName(p.Name)))
		if p.Name == "gate.e_score_correction_bias" {
			for e := range p.Value.Data {
				p.Value.Data[e] = float32(rng.NormFloat64() * 0.05)
			}
			continue
		}
		sd := 1 / math.Sqrt(float64(p.Value.Cols))
		for i := range p.Value.Data {
			p.Value.Data[i] = float32(rng.NormFloat64() * sd)
		}
		if p.Name == "gate.weight" {
			for e := 0; e < p.Value.Rows; e += 5 {
				p.Value.Set(e, 0, 1.5)
			}
		}
	}
}

func hashName(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(s) {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

func randMatrix(rng *rand.Rand, rows, cols int) dsv3.Matrix {
	m := dsv3.NewMatrix(rows, cols)
	for i := range m.Data {
		m.Data[i] = float32(rng.NormFloat64())
	}
	return m
}

// moeTokens returns rank r's tokens and output gradient.
func moeTokens(seed uint64, r int) (x, dy dsv3.Matrix) {
	rng := rand.New(rand.NewPCG(seed, 1000+uint64(r)))
	T := 17 + 9*r
	if r == 2 {
		T = 0 // a rank with no tokens still serves its experts
	}
	return randMatrix(rng, T, moeCfg.Hidden), randMatrix(rng, T, moeCfg.Hidden)
}

// relErr is max |a-b| / max |b|.
func relErr(a, b dsv3.Matrix) float64 {
	var num, den float64
	for i := range b.Rows {
		ra, rb := a.Row(i), b.Row(i)
		for j := range rb {
			num = math.Max(num, math.Abs(float64(ra[j])-float64(rb[j])))
			den = math.Max(den, math.Abs(float64(rb[j])))
		}
	}
	if den == 0 {
		return num
	}
	return num / den
}

type moeResult struct {
	y, dx dsv3.Matrix
	grads map[string]dsv3.Matrix
}

// moeCase runs the layer expert-parallel on the ranks of c (layout l),
// with each route, for two training steps, and checks on every rank: the
// outputs and input gradients of its tokens, and the gradients of the
// experts it holds, equal the single-process layer's over all ranks'
// tokens within 1e-6; the replicated router and shared-expert gradients,
// summed over the ranks, equal the single-process ones within 1e-6; and
// two-hop equals flat bit for bit.
func moeCase(c alltoall.Comm, l alltoall.Layout, seed uint64) error {
	me, R := c.Rank(), c.Size()
	full, err := moe.New(moeCfg, moe.Options{Mode: moe.Training})
	if err != nil {
		return err
	}
	randomWeights(full, seed)
	xs, dys := make([]dsv3.Matrix, R), make([]dsv3.Matrix, R)
	total := 0
	for r := range R {
		xs[r], dys[r] = moeTokens(seed, r)
		total += xs[r].Rows
	}
	x, dy := dsv3.NewMatrix(total, moeCfg.Hidden), dsv3.NewMatrix(total, moeCfg.Hidden)
	off, myOff := 0, 0
	for r := range R {
		if r == me {
			myOff = off
		}
		x.Slice(off, off+xs[r].Rows).CopyFrom(xs[r])
		dy.Slice(off, off+xs[r].Rows).CopyFrom(dys[r])
		off += xs[r].Rows
	}
	var want moeResult
	for range 2 {
		y, rec, err := full.Apply(x, true)
		if err != nil {
			return err
		}
		dx, err := full.ApplyBackward(rec, dy)
		if err != nil {
			return err
		}
		want.y, want.dx = y.Slice(myOff, myOff+xs[me].Rows), dx.Slice(myOff, myOff+xs[me].Rows)
	}
	want.grads = map[string]dsv3.Matrix{}
	for _, p := range full.Params() {
		if !p.Grad.Empty() {
			want.grads[p.Name] = p.Grad
		}
	}

	var got []moeResult
	for _, route := range []alltoall.Route{alltoall.Flat, alltoall.TwoHop} {
		where := fmt.Sprintf("rank %d %v", me, route)
		m, err := moe.New(moeCfg, moe.Options{Mode: moe.Training, LocalExperts: func(e int) bool { return l.Holds(me, e) }})
		if err != nil {
			return err
		}
		for _, p := range m.Params() {
			var src dsv3.Matrix
			for _, q := range full.Params() {
				if q.Name == p.Name {
					src = q.Value
				}
			}
			p.Value.CopyFrom(src)
		}
		d, err := alltoall.NewDispatcher(c, l, alltoall.Options{Route: route})
		if err != nil {
			return err
		}
		m.Dispatcher = d
		var res moeResult
		for range 2 {
			y, rec, err := m.Apply(xs[me], true)
			if err != nil {
				return err
			}
			dx, err := m.ApplyBackward(rec, dys[me])
			if err != nil {
				return err
			}
			res.y, res.dx = y, dx
		}
		if err := d.Close(); err != nil {
			return err
		}
		if e := relErr(res.y, want.y); e > 1e-6 {
			return fmt.Errorf("%s: output rel err %g", where, e)
		}
		if e := relErr(res.dx, want.dx); e > 1e-6 {
			return fmt.Errorf("%s: input gradient rel err %g", where, e)
		}
		res.grads = map[string]dsv3.Matrix{}
		held := 0
		for _, p := range m.Params() {
			if p.Grad.Empty() {
				continue
			}
			g := p.Grad.Clone()
			res.grads[p.Name] = g
			if len(p.Name) > 8 && p.Name[:8] == "experts." {
				held++
			} else if err := alltoall.AllReduceFloat32(c, g.Data, alltoall.Sum); err != nil {
				return err // replicated: sum over the ranks
			}
			if e := relErr(g, want.grads[p.Name]); e > 1e-6 {
				return fmt.Errorf("%s: gradient of %s rel err %g", where, p.Name, e)
			}
		}
		if held != 3*l.ExpertsPerRank() {
			return fmt.Errorf("%s: %d expert weight gradients held, want %d", where, held, 3*l.ExpertsPerRank())
		}
		got = append(got, res)
	}
	f, h := got[0], got[1]
	if !sameBits(f.y, h.y) || !sameBits(f.dx, h.dx) {
		return fmt.Errorf("rank %d: two-hop and flat outputs or input gradients differ", me)
	}
	for name, g := range f.grads {
		if !sameBits(g, h.grads[name]) {
			return fmt.Errorf("rank %d: two-hop and flat gradients of %s differ", me, name)
		}
	}
	return nil
}
