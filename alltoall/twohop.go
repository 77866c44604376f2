package alltoall

import (
	"fmt"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// The two-hop route. Rank me = (node n0, local index l0). Hop 1 runs on the
// col communicator (the ranks with local index l0, one per node, ranked by
// node): the source sends each token once to every node that holds one of
// its experts, to that node's rank with local index l0 (to itself for its
// own node). Hop 2 runs on the node communicator (ranked by local index):
// each forwarder sends every row it received to the ranks of its node that
// hold one of the row's experts. The final receiver puts the rows in the
// order of their source rank s = m·L + l (m the source node, l its local
// index, which is also the forwarder's), then in the source's token order:
// the order a flat dispatch gives, so both routes feed the experts the same
// rows in the same order.

func (d *Dispatcher) dispatchTwoHop(b *Batch, mem *Membership, enc *encoder, weights []float32, width int) error {
	l, k := d.layout, b.K
	N, L := l.Nodes(), l.RanksPerNode
	me := d.comm.Rank()
	n0 := l.Node(me)
	T := b.tokens
	if 2*N > MaxTag {
		return fmt.Errorf("alltoall: two-hop dispatch over %d nodes: at most %d", N, MaxTag/2)
	}
	p := &twoPlan{sendCnt1: append([]int(nil), mem.PerNode...)}
	p.sendOff1 = prefix(p.sendCnt1)
	p.sendTok1 = make([]int32, p.sendOff1[N])
	next := append([]int(nil), p.sendOff1[:N]...)
	ranks := make([]int, 0, k)
	for t := range T {
		last := -1
		for _, r := range mem.Ranks(t, ranks[:0]) { // increasing: nodes in order
			if n := l.Node(r); n != last {
				last = n
				p.sendTok1[next[n]] = int32(t)
				next[n]++
			}
		}
	}

	// Hop 1: across nodes.
	hdr := make([]int64, N)
	for n := range N {
		hdr[n] = int64(p.sendCnt1[n])
	}
	rh, err := exchangeCounts(d.col, hdr, 1)
	if err != nil {
		return err
	}
	p.recvCnt1 = make([]int, N)
	for m := range N {
		p.recvCnt1[m] = int(rh[m])
	}
	p.from1 = prefix(p.recvCnt1)
	n1in, n1out := p.from1[N], p.sendOff1[N]
	meta := make([]uint32, n1out*2*k)
	parallel.For(N, 1, d.opt.Workers, func(n0, n1 int) {
		for n := n0; n < n1; n++ {
			keep := func(e int32) bool { return l.Node(l.Owner(int(e))) == n }
			for i := p.sendOff1[n]; i < p.sendOff1[n+1]; i++ {
				packMeta(meta[i*2*k:(i+1)*2*k], b.experts, weights, int(p.sendTok1[i]), k, keep)
			}
		}
	})
	rmeta := make([]uint32, n1in*2*k)
	if err := alltoallRows(d.col, bytesOfU32(meta), p.sendCnt1, bytesOfU32(rmeta), p.recvCnt1, 8*k); err != nil {
		return err
	}
	rb := enc.rb
	send := d.scratchBytes(sSend, n1out*rb)
	parallel.For(n1out, 32, d.opt.Workers, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			enc.put(send[i*rb:(i+1)*rb], int(p.sendTok1[i]))
		}
	})
	h1 := d.scratchBytes(sHop1, n1in*rb)
	if err := alltoallRows(d.col, send, p.sendCnt1, h1, p.recvCnt1, rb); err != nil {
		return err
	}
	for n := range N {
		if n != n0 {
			d.count(n, int64(p.sendCnt1[n]*(rb+8*k)), int64(p.sendCnt1[n]), true)
		}
	}
	var h1w []float32
	p.h1ids, h1w = unpackMeta(rmeta, n1in, k)

	// Hop 2: within the node.
	p.fwdCnt = make([][]int, L)
	for i := range p.fwdCnt {
		p.fwdCnt[i] = make([]int, N)
	}
	seen := make([]int, L)
	for i := range seen {
		seen[i] = -1
	}
	for m := range N {
		for i := p.from1[m]; i < p.from1[m+1]; i++ {
			for _, e := range p.h1ids[i*k : (i+1)*k] {
				if e >= 0 {
					if lt := l.Local(l.Owner(int(e))); seen[lt] != i {
						seen[lt] = i
						p.fwdCnt[lt][m]++
					}
				}
			}
		}
	}
	tot := make([]int, L)
	for lt := range L {
		for m := range N {
			tot[lt] += p.fwdCnt[lt][m]
		}
	}
	p.fwdOff = prefix(tot)
	p.fwdRows = make([]int32, p.fwdOff[L])
	next = append(next[:0], p.fwdOff[:L]...)
	for i := range seen {
		seen[i] = -1
	}
	for i := range n1in {
		for _, e := range p.h1ids[i*k : (i+1)*k] {
			if e >= 0 {
				if lt := l.Local(l.Owner(int(e))); seen[lt] != i {
					seen[lt] = i
					p.fwdRows[next[lt]] = int32(i)
					next[lt]++
				}
			}
		}
	}
	hdr = make([]int64, L*N)
	for lt := range L {
		for m := range N {
			hdr[lt*N+m] = int64(p.fwdCnt[lt][m])
		}
	}
	rh, err = exchangeCounts(d.node, hdr, N)
	if err != nil {
		return err
	}
	p.inCnt, p.base = make([][]int, L), make([][]int, L)
	for lf := range L {
		p.inCnt[lf], p.base[lf] = make([]int, N), make([]int, N)
		for m := range N {
			p.inCnt[lf][m] = int(rh[lf*N+m])
		}
	}
	R := d.comm.Size()
	b.From = make([]int, R+1)
	off := 0
	for m := range N {
		for lf := range L {
			p.base[lf][m] = off
			b.From[m*L+lf] = off
			off += p.inCnt[lf][m]
		}
	}
	b.From[R] = off
	nIn, nFwd := off, p.fwdOff[L]

	meta2 := make([]uint32, nFwd*2*k)
	fwd := d.scratchBytes(sFwd, nFwd*rb)
	parallel.For(L, 1, d.opt.Workers, func(a, z int) {
		for lt := a; lt < z; lt++ {
			target := n0*L + lt
			keep := func(e int32) bool { return l.Owner(int(e)) == target }
			for q := p.fwdOff[lt]; q < p.fwdOff[lt+1]; q++ {
				i := int(p.fwdRows[q])
				packMeta(meta2[q*2*k:(q+1)*2*k], p.h1ids, h1w, i, k, keep)
				copy(fwd[q*rb:(q+1)*rb], h1[i*rb:(i+1)*rb])
			}
		}
	})
	rmeta2 := make([]uint32, nIn*2*k)
	var final []byte
	if d.opt.Payload == FP8 { // decoded into a new matrix: the codes are transient
		final = d.scratchBytes(sStaging, nIn*rb)
	} else {
		final = alignedBytes(nIn * rb) // becomes Batch.X
	}
	mb := 8 * k
	meta2b, rmeta2b := bytesOfU32(meta2), bytesOfU32(rmeta2)
	var sends, recvs []Message
	for lt := range L {
		q := p.fwdOff[lt]
		for m := range N {
			if c := p.fwdCnt[lt][m]; c > 0 {
				sends = append(sends, Message{Peer: lt, Tag: m, Data: fwd[q*rb : (q+c)*rb]},
					Message{Peer: lt, Tag: N + m, Data: meta2b[q*mb : (q+c)*mb]})
				q += c
			}
		}
		if lt != l.Local(me) {
			d.count(n0, int64(tot[lt]*(rb+mb)), int64(tot[lt]), true)
		}
	}
	for lf := range L {
		for m := range N {
			if c, q := p.inCnt[lf][m], p.base[lf][m]; c > 0 {
				recvs = append(recvs, Message{Peer: lf, Tag: m, Data: final[q*rb : (q+c)*rb]},
					Message{Peer: lf, Tag: N + m, Data: rmeta2b[q*mb : (q+c)*mb]})
			}
		}
	}
	if err := d.node.Exchange(sends, recvs); err != nil {
		return err
	}
	b.Experts, b.Weights = unpackMeta(rmeta2, nIn, k)
	b.X = d.decode(final, nIn, width)
	b.two = p
	return nil
}

// returnHop2 sends rows back from the final receivers to the forwarders:
// ret holds, in X's row order, per[i] rows for received row i (its
// results); the forwarder receives, per local rank lt, the rows for its
// forwarded rows in fwdRows order, want[q] rows for forwarded row q. It
// returns the forwarder's rows, by lt, in fwdRows order.
func (d *Dispatcher) returnHop2(b *Batch, ret []float32, per []int, want []int, cols int) ([]float32, error) {
	p := b.two
	l := d.layout
	N, L := l.Nodes(), l.RanksPerNode
	// Rows of ret before received row i.
	start := make([]int, len(per)+1)
	for i, n := range per {
		start[i+1] = start[i] + n
	}
	wstart := make([]int, len(want)+1)
	for q, n := range want {
		wstart[q+1] = wstart[q] + n
	}
	staging := d.scratchF32(sStaging, wstart[len(want)]*cols)
	sb, rb := bytesOfF32(ret), bytesOfF32(staging)
	rowB := 4 * cols
	me := l.Local(d.comm.Rank())
	var sends, recvs []Message
	for lf := range L {
		sent := 0
		for m := range N {
			if c := p.inCnt[lf][m]; c > 0 {
				a, z := start[p.base[lf][m]], start[p.base[lf][m]+c]
				sends = append(sends, Message{Peer: lf, Tag: m, Data: sb[a*rowB : z*rowB]})
				sent += z - a
			}
		}
		if lf != me {
			d.count(l.Node(d.comm.Rank()), int64(sent*rowB), 0, false)
		}
	}
	for lt := range L {
		q := p.fwdOff[lt]
		for m := range N {
			if c := p.fwdCnt[lt][m]; c > 0 {
				a, z := wstart[q], wstart[q+c]
				recvs = append(recvs, Message{Peer: lt, Tag: m, Data: rb[a*rowB : z*rowB]})
				q += c
			}
		}
	}
	if err := d.node.Exchange(sends, recvs); err != nil {
		return nil, err
	}
	return staging, nil
}

// combineTwoHop sums y's rows back to their tokens: the forwarder adds
// the rows of its node's ranks (in local rank order) and sends one partial
// sum per token across; the source adds the partials in node order.
func (d *Dispatcher) combineTwoHop(b *Batch, y []float32, cols int) (dsv3.Matrix, error) {
	p := b.two
	l := d.layout
	N := l.Nodes()
	ones := make([]int, b.X.Rows)
	for i := range ones {
		ones[i] = 1
	}
	want := make([]int, len(p.fwdRows))
	for i := range want {
		want[i] = 1
	}
	staging, err := d.returnHop2(b, y, ones, want, cols)
	if err != nil {
		return dsv3.Matrix{}, err
	}
	// Partial sums per hop-1 row, over the local ranks in order.
	n1in := p.from1[N]
	start, pos := invert(n1in, p.fwdRows)
	partial := d.scratchF32(sPartial, n1in*cols)
	parallel.For(n1in, 8, d.opt.Workers, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst := partial[i*cols : (i+1)*cols]
			clear(dst)
			for _, q := range pos[start[i]:start[i+1]] {
				addTo(dst, staging[int(q)*cols:(int(q)+1)*cols])
			}
		}
	})
	n1out := p.sendOff1[N]
	recv := d.scratchF32(sBack, n1out*cols)
	if err := alltoallRows(d.col, bytesOfF32(partial), p.recvCnt1, bytesOfF32(recv), p.sendCnt1, 4*cols); err != nil {
		return dsv3.Matrix{}, err
	}
	for m := range N {
		if m != l.Node(d.comm.Rank()) {
			d.count(m, int64(p.recvCnt1[m]*4*cols), 0, false)
		}
	}
	out := dsv3.NewMatrix(b.tokens, cols)
	tstart, tpos := invert(b.tokens, p.sendTok1)
	parallel.For(b.tokens, 8, d.opt.Workers, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			dst := out.Row(t)
			for _, q := range tpos[tstart[t]:tstart[t+1]] { // node order
				addTo(dst, recv[int(q)*cols:(int(q)+1)*cols])
			}
		}
	})
	return out, nil
}

// pairsTwoHop brings each pair's own result row back to its source; ret
// holds, per received row, its local slots' rows in slot order.
func (d *Dispatcher) pairsTwoHop(b *Batch, ret []float32, cols int) (dsv3.Matrix, []int32, error) {
	p := b.two
	l, k := d.layout, b.K
	N, L := l.Nodes(), l.RanksPerNode
	me := d.comm.Rank()
	n0 := l.Node(me)
	per := make([]int, b.X.Rows)
	for i := range per {
		for _, e := range b.Experts[i*k : (i+1)*k] {
			if e >= 0 {
				per[i]++
			}
		}
	}
	// Forwarded row q (to local rank lt) gets back one row per slot of its
	// hop-1 row held by rank (n0, lt).
	want := make([]int, len(p.fwdRows))
	for lt := range L {
		target := n0*L + lt
		for q := p.fwdOff[lt]; q < p.fwdOff[lt+1]; q++ {
			i := int(p.fwdRows[q])
			for _, e := range p.h1ids[i*k : (i+1)*k] {
				if e >= 0 && l.Owner(int(e)) == target {
					want[q]++
				}
			}
		}
	}
	staging, err := d.returnHop2(b, ret, per, want, cols)
	if err != nil {
		return dsv3.Matrix{}, nil, err
	}
	// Reassemble per hop-1 row, its node's slots in slot order: the stream
	// of each local rank is in hop-1 row order, so one cursor each walks it.
	cursor := make([]int, L)
	for lt, acc := 0, 0; lt < L; lt++ {
		cursor[lt] = acc
		for q := p.fwdOff[lt]; q < p.fwdOff[lt+1]; q++ {
			acc += want[q]
		}
	}
	n1in := p.from1[N]
	nodeSlots := make([]int, n1in)
	total := 0
	for i := range n1in {
		for _, e := range p.h1ids[i*k : (i+1)*k] {
			if e >= 0 {
				nodeSlots[i]++
			}
		}
		total += nodeSlots[i]
	}
	back := d.scratchF32(sBack, total*cols)
	r := 0
	for i := range n1in {
		for _, e := range p.h1ids[i*k : (i+1)*k] {
			if e >= 0 {
				lt := l.Local(l.Owner(int(e)))
				c := cursor[lt]
				cursor[lt]++
				copy(back[r*cols:(r+1)*cols], staging[c*cols:(c+1)*cols])
				r++
			}
		}
	}
	backCnt := make([]int, N) // rows back to each source node
	for m := range N {
		for i := p.from1[m]; i < p.from1[m+1]; i++ {
			backCnt[m] += nodeSlots[i]
		}
		if m != n0 {
			d.count(m, int64(backCnt[m]*4*cols), 0, false)
		}
	}
	// What this rank gets back from each node: its tokens' slots there.
	rowOf := make([]int32, len(b.experts))
	gets := make([]int, N)
	pos := 0
	for n := range N {
		for _, t := range p.sendTok1[p.sendOff1[n]:p.sendOff1[n+1]] {
			for j, e := range b.experts[int(t)*k : (int(t)+1)*k] {
				if l.Node(l.Owner(int(e))) == n {
					rowOf[int(t)*k+j] = int32(pos)
					pos++
					gets[n]++
				}
			}
		}
	}
	recv := make([]float32, pos*cols)
	if err := alltoallRows(d.col, bytesOfF32(back), backCnt, bytesOfF32(recv), gets, 4*cols); err != nil {
		return dsv3.Matrix{}, nil, err
	}
	return dsv3.Matrix{Rows: pos, Cols: cols, Stride: cols, Data: recv}, rowOf, nil
}
