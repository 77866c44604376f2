package alltoall_test

// Rank functions shared by the in-process tests and the MPI tests
// (mpi_test.go, build tag mpi): each runs on one rank, computes what every
// rank must see from data every rank can generate, and returns an error
// describing the first mismatch.

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/alltoall"
	"github.com/dsv3go/dsv3/fp8"
)

// commSuite checks AlltoallV, Exchange, AllReduce and Split against values
// computed from the ranks' indices. big is the size of one large message
// (to cross the MPI shim's chunking).
func commSuite(c alltoall.Comm, big int) error {
	n, me := c.Size(), c.Rank()
	segLen := func(from, to int) int { return (from*7+to*3)%11 + 1 - boolInt(from == to && from%2 == 0) }
	val := func(from, to, j int) byte { return byte(from*31 + to*17 + j) }

	// AlltoallV: segments sent in rank order, received in reverse order
	// with a gap between them.
	var send []byte
	sc, sd := make([]int, n), make([]int, n)
	for i := range n {
		sd[i], sc[i] = len(send), segLen(me, i)
		for j := range sc[i] {
			send = append(send, val(me, i, j))
		}
	}
	rc, rd := make([]int, n), make([]int, n)
	off := 0
	for i := n - 1; i >= 0; i-- {
		rd[i], rc[i] = off, segLen(i, me)
		off += rc[i] + 2
	}
	recv := bytes.Repeat([]byte{0xEE}, off)
	if err := c.AlltoallV(send, sc, sd, recv, rc, rd); err != nil {
		return err
	}
	for i := range n {
		for j := range rc[i] {
			if got, want := recv[rd[i]+j], val(i, me, j); got != want {
				return fmt.Errorf("rank %d: AlltoallV byte %d from rank %d is %d, want %d", me, j, i, got, want)
			}
		}
		if g := recv[rd[i]+rc[i]]; g != 0xEE {
			return fmt.Errorf("rank %d: AlltoallV wrote past the segment from rank %d", me, i)
		}
	}

	// Exchange: a ring with two ordered messages of one tag, a message to
	// self, a large message, and one message to every rank with a tag of
	// its own, received in reverse order.
	next, prev := (me+1)%n, (me+n-1)%n
	msg := func(from, to, tag, size int) []byte {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(from*13 + to*5 + tag*3 + j*7)
		}
		return b
	}
	sends := []alltoall.Message{
		{Peer: next, Tag: 5, Data: msg(me, next, 5, 10)},
		{Peer: next, Tag: 5, Data: msg(me, next, 6, 20)},
		{Peer: me, Tag: 7, Data: msg(me, me, 7, 3)},
		{Peer: next, Tag: 9, Data: msg(me, next, 9, big)},
	}
	recvs := []alltoall.Message{
		{Peer: prev, Tag: 5, Data: make([]byte, 10)},
		{Peer: prev, Tag: 5, Data: make([]byte, 20)},
		{Peer: me, Tag: 7, Data: make([]byte, 3)},
		{Peer: prev, Tag: 9, Data: make([]byte, big)},
	}
	want := [][]byte{msg(prev, me, 5, 10), msg(prev, me, 6, 20), msg(me, me, 7, 3), msg(prev, me, 9, big)}
	for i := range n {
		sends = append(sends, alltoall.Message{Peer: i, Tag: 100 + me, Data: msg(me, i, 100+me, 4+i)})
	}
	for i := n - 1; i >= 0; i-- {
		recvs = append(recvs, alltoall.Message{Peer: i, Tag: 100 + i, Data: make([]byte, 4+me)})
		want = append(want, msg(i, me, 100+i, 4+me))
	}
	if err := c.Exchange(sends, recvs); err != nil {
		return err
	}
	for i, r := range recvs {
		if !bytes.Equal(r.Data, want[i]) {
			return fmt.Errorf("rank %d: Exchange receive %d (peer %d, tag %d) has the wrong bytes", me, i, r.Peer, r.Tag)
		}
	}
	// Send and Recv around the ring (a blocking Send to oneself would wait
	// for its receive forever).
	switch {
	case n == 1:
	case me%2 == 0:
		if err := alltoall.Send(c, next, 1, []byte{byte(me)}); err != nil {
			return err
		}
		b := []byte{0}
		if err := alltoall.Recv(c, prev, 1, b); err != nil {
			return err
		}
		if int(b[0]) != prev {
			return fmt.Errorf("rank %d: Recv got %d from rank %d", me, b[0], prev)
		}
	default:
		b := []byte{0}
		if err := alltoall.Recv(c, prev, 1, b); err != nil {
			return err
		}
		if int(b[0]) != prev {
			return fmt.Errorf("rank %d: Recv got %d from rank %d", me, b[0], prev)
		}
		if err := alltoall.Send(c, next, 1, []byte{byte(me)}); err != nil {
			return err
		}
	}

	// AllReduce over exact integers (any summation order gives them).
	for _, op := range []alltoall.Op{alltoall.Sum, alltoall.Max, alltoall.Min} {
		data := make([]float64, 5)
		for j := range data {
			data[j] = float64((me*7+j*3)%5) - float64(j)
		}
		if err := c.AllReduce(data, op); err != nil {
			return err
		}
		for j := range data {
			var w float64
			for r := range n {
				v := float64((r*7+j*3)%5) - float64(j)
				switch {
				case r == 0:
					w = v
				case op == alltoall.Sum:
					w += v
				case op == alltoall.Max:
					w = math.Max(w, v)
				default:
					w = math.Min(w, v)
				}
			}
			if data[j] != w {
				return fmt.Errorf("rank %d: AllReduce %v element %d = %g, want %g", me, op, j, data[j], w)
			}
		}
	}
	long := make([]float64, 300) // several chunks under a lowered MPI limit
	for j := range long {
		long[j] = float64(me*j + 1)
	}
	if err := c.AllReduce(long, alltoall.Sum); err != nil {
		return err
	}
	for j, v := range long {
		if w := float64(j*n*(n-1)/2 + n); v != w {
			return fmt.Errorf("rank %d: AllReduce of 300 values: element %d = %g, want %g", me, j, v, w)
		}
	}
	f32 := []float32{float32(me), 1.5}
	if err := alltoall.AllReduceFloat32(c, f32, alltoall.Sum); err != nil {
		return err
	}
	if w := float32(n * (n - 1) / 2); f32[0] != w || f32[1] != 1.5*float32(n) {
		return fmt.Errorf("rank %d: AllReduceFloat32 gave %v, want [%g %g]", me, f32, w, 1.5*float32(n))
	}

	// Split by parity, ordered by decreasing rank.
	sub, err := c.Split(me%2, -me)
	if err != nil {
		return err
	}
	var members []int
	for r := n - 1; r >= 0; r-- {
		if r%2 == me%2 {
			members = append(members, r)
		}
	}
	if sub.Size() != len(members) || members[sub.Rank()] != me {
		return fmt.Errorf("rank %d: Split gave rank %d of %d, want %d of %d", me, sub.Rank(), sub.Size(), indexOf(members, me), len(members))
	}
	sum := []float64{float64(me)}
	if err := sub.AllReduce(sum, alltoall.Sum); err != nil {
		return err
	}
	w := 0
	for _, r := range members {
		w += r
	}
	if sum[0] != float64(w) {
		return fmt.Errorf("rank %d: AllReduce over the split communicator gave %g, want %d", me, sum[0], w)
	}
	// A message on the sub-communicator does not match one on the parent
	// with the same tag (and peers are numbered in the sub-communicator).
	to := (sub.Rank() + 1) % sub.Size()
	from := (sub.Rank() + sub.Size() - 1) % sub.Size()
	got := make([]byte, 1)
	if err := sub.Exchange([]alltoall.Message{{Peer: to, Tag: 1, Data: []byte{byte(me)}}}, []alltoall.Message{{Peer: from, Tag: 1, Data: got}}); err != nil {
		return err
	}
	if int(got[0]) != members[from] {
		return fmt.Errorf("rank %d: split Exchange got %d, want %d", me, got[0], members[from])
	}
	return sub.Close()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func indexOf(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// rankData is one rank's tokens for a dispatch test, generated from the
// seed and the rank alone, so that every rank can generate every rank's.
type rankData struct {
	x       dsv3.Matrix
	experts []int32
	weights []float32
}

func genRank(seed uint64, rank, experts, k, width int) rankData {
	rng := rand.New(rand.NewPCG(seed, uint64(rank)))
	T := 5 + rng.IntN(40)
	if rank == 1 {
		T = 0 // an empty rank still takes part
	}
	x := dsv3.NewMatrix(T, width)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	ids := make([]int32, T*k)
	w := make([]float32, T*k)
	for t := range T {
		perm := rng.Perm(experts)
		for j := range k {
			ids[t*k+j] = int32(perm[j])
			w[t*k+j] = float32(rng.Float64())
		}
	}
	return rankData{x, ids, w}
}

// dispatchCase dispatches every rank's generated tokens with each route,
// checks what each rank receives, its per-expert counts, Combine with
// identity experts (x times the number of destination ranks) and the
// traffic counters against loops over all ranks' data, and checks that
// the two routes give bit-identical batches and combined rows.
func dispatchCase(c alltoall.Comm, l alltoall.Layout, payload alltoall.Payload, seed uint64) error {
	const k, width = 3, 198 // a partial last FP8 tile, rows not a multiple of 4 bytes in FP8
	me := c.Rank()
	all := make([]rankData, l.Ranks)
	for r := range all {
		all[r] = genRank(seed, r, l.Experts, k, width)
	}
	mine := all[me]
	deq := func(x dsv3.Matrix) dsv3.Matrix { // what the receiver should see
		if payload == alltoall.Float32 || x.Rows == 0 {
			return x
		}
		q, err := fp8.QuantizeTiles(x, fp8.ScaleF32)
		if err != nil {
			panic(err)
		}
		return q.Dequantize()
	}
	type result struct {
		b   *alltoall.Batch
		out dsv3.Matrix
		tr  alltoall.Traffic
	}
	var res []result
	for _, route := range []alltoall.Route{alltoall.Flat, alltoall.TwoHop} {
		d, err := alltoall.NewDispatcher(c, l, alltoall.Options{Route: route, Payload: payload, Workers: 2})
		if err != nil {
			return err
		}
		b, err := d.DispatchRows(mine.x, mine.experts, k, mine.weights)
		if err != nil {
			return err
		}
		out, err := d.Combine(b, b.X)
		if err != nil {
			return err
		}
		res = append(res, result{b, out, d.Traffic()})
		if err := d.Close(); err != nil {
			return err
		}
		where := fmt.Sprintf("rank %d, %v %v", me, route, payload)

		// Received rows: from each source in rank order, its tokens with
		// an expert here, in token order.
		lo, hi := l.ExpertRange(me)
		row := 0
		counts := make([]int, hi-lo)
		for s, src := range all {
			if b.From[s] != row {
				return fmt.Errorf("%s: rows from rank %d start at %d, want %d", where, s, b.From[s], row)
			}
			xs := deq(src.x)
			for t := range src.x.Rows {
				here := false
				for _, e := range src.experts[t*k : (t+1)*k] {
					here = here || (int(e) >= lo && int(e) < hi)
				}
				if !here {
					continue
				}
				if row >= b.X.Rows {
					return fmt.Errorf("%s: only %d rows received", where, b.X.Rows)
				}
				for j, v := range xs.Row(t) {
					if got := b.X.At(row, j); math.Float32bits(got) != math.Float32bits(v) {
						return fmt.Errorf("%s: row %d (rank %d token %d) value %d is %g, want %g", where, row, s, t, j, got, v)
					}
				}
				for j := range k {
					e := src.experts[t*k+j]
					want := int32(-1)
					if int(e) >= lo && int(e) < hi {
						want = e
						counts[int(e)-lo]++
					}
					if b.Experts[row*k+j] != want || b.Weights[row*k+j] != src.weights[t*k+j] {
						return fmt.Errorf("%s: row %d slot %d has expert %d weight %g, want %d and %g",
							where, row, j, b.Experts[row*k+j], b.Weights[row*k+j], want, src.weights[t*k+j])
					}
				}
				row++
			}
		}
		if b.X.Rows != row || b.From[l.Ranks] != row {
			return fmt.Errorf("%s: received %d rows, want %d", where, b.X.Rows, row)
		}
		for e, n := range counts {
			if b.ExpertCounts[e] != n {
				return fmt.Errorf("%s: expert %d has %d pairs, want %d", where, lo+e, b.ExpertCounts[e], n)
			}
		}

		// Identity experts: each token comes back times its destination ranks.
		xq := deq(mine.x)
		for t := range mine.x.Rows {
			ranks := map[int]bool{}
			for _, e := range mine.experts[t*k : (t+1)*k] {
				ranks[l.Owner(int(e))] = true
			}
			for j, v := range xq.Row(t) {
				want := float64(len(ranks)) * float64(v)
				if got := float64(out.At(t, j)); math.Abs(got-want) > 1e-6*math.Abs(want) {
					return fmt.Errorf("%s: combined token %d value %d is %g, want %d × %g", where, t, j, got, len(ranks), v)
				}
			}
		}
		if want := expectTraffic(all, l, route, me, k, width, payload); d.Traffic() != want {
			return fmt.Errorf("%s: traffic %+v, want %+v", where, d.Traffic(), want)
		}
	}
	f, h := res[0], res[1]
	if !sameBits(f.b.X, h.b.X) || !sameBits(f.out, h.out) {
		return fmt.Errorf("rank %d %v: two-hop and flat differ", me, payload)
	}
	for i := range f.b.Experts {
		if f.b.Experts[i] != h.b.Experts[i] || f.b.Weights[i] != h.b.Weights[i] {
			return fmt.Errorf("rank %d %v: two-hop and flat metadata differ", me, payload)
		}
	}
	return nil
}

// expectTraffic counts the bytes rank me sends, from every rank's tokens.
func expectTraffic(all []rankData, l alltoall.Layout, route alltoall.Route, me, k, width int, payload alltoall.Payload) alltoall.Traffic {
	rb := 4 * width
	if payload == alltoall.FP8 {
		rb = width + 4*((width+127)/128)
	}
	row, back := int64(rb+8*k), int64(4*width)
	var tr alltoall.Traffic
	add := func(peer int, rows int64, dispatch bool) {
		if peer == me {
			return
		}
		inter := l.Node(peer) != l.Node(me)
		switch {
		case dispatch && inter:
			tr.DispatchInter += rows * row
			tr.DispatchInterRows += rows
		case dispatch:
			tr.DispatchIntra += rows * row
			tr.DispatchIntraRows += rows
		case inter:
			tr.CombineInter += rows * back
		default:
			tr.CombineIntra += rows * back
		}
	}
	ranksOf := func(src rankData, t int) map[int]bool {
		m := map[int]bool{}
		for _, e := range src.experts[t*k : (t+1)*k] {
			m[l.Owner(int(e))] = true
		}
		return m
	}
	L := l.RanksPerNode
	for s, src := range all {
		for t := range src.x.Rows {
			rs := ranksOf(src, t)
			nodes := map[int]bool{}
			for r := range rs {
				nodes[l.Node(r)] = true
			}
			switch {
			case route == alltoall.Flat && s == me:
				for r := range rs {
					add(r, 1, true)
				}
			case route == alltoall.Flat && rs[me]:
				add(s, 1, false) // the identity result goes back
			case route == alltoall.TwoHop:
				fwdHere := l.Local(s) == l.Local(me) && nodes[l.Node(me)] // me forwards t
				if s == me {
					for n := range nodes {
						add(n*L+l.Local(me), 1, true)
					}
				}
				if fwdHere {
					for r := range rs {
						if l.Node(r) == l.Node(me) {
							add(r, 1, true)
						}
					}
					add(s, 1, false) // one partial sum back to the source
				}
				if rs[me] {
					add(l.Node(me)*L+l.Local(s), 1, false) // to the forwarder
				}
			}
		}
	}
	return tr
}

func sameBits(a, b dsv3.Matrix) bool {
	if a.Rows != b.Rows || a.Cols != b.Cols {
		return false
	}
	for i := range a.Rows {
		ra, rb := a.Row(i), b.Row(i)
		for j := range ra {
			if math.Float32bits(ra[j]) != math.Float32bits(rb[j]) {
				return false
			}
		}
	}
	return true
}
