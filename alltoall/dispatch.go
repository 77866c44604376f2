package alltoall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/fp8"
	"github.com/dsv3go/dsv3/internal/parallel"
)

// Route selects how rows travel between the ranks.
type Route uint8

const (
	// Flat sends each token directly from its rank to every rank that holds
	// one of its experts: once per destination rank, across the inter-node
	// link once per destination rank on another node.
	Flat Route = iota
	// TwoHop is the node-limited dispatch of report §3.2.2: a token crosses
	// to each target node once, to the rank with the same local index as
	// its source (hop 1, inter-node), which forwards it to the ranks of that
	// node holding its experts (hop 2, intra-node). Combine runs the same
	// path backwards and sums within the node before crossing back.
	TwoHop
)

// String returns "flat" or "two-hop".
func (r Route) String() string {
	switch r {
	case Flat:
		return "flat"
	case TwoHop:
		return "two-hop"
	}
	return fmt.Sprintf("Route(%d)", uint8(r))
}

// Payload selects how dispatched rows are encoded on the wire.
type Payload uint8

const (
	// Float32 sends the rows as they are, 4 bytes a value.
	Float32 Payload = iota
	// FP8 sends each row as E4M3 codes plus one scale per 1x128 tile (the
	// fp8 package's activation quantisation, report §3.3.2), 1 byte a
	// value plus 4 bytes per 128; the receiver dequantises. The source
	// quantises each token once, and two-hop forwards the codes as they
	// are.
	FP8
)

// String returns "float32" or "fp8".
func (p Payload) String() string {
	switch p {
	case Float32:
		return "float32"
	case FP8:
		return "fp8"
	}
	return fmt.Sprintf("Payload(%d)", uint8(p))
}

// Options are a Dispatcher's choices; every rank must pass the same.
type Options struct {
	// Route is Flat (the default) or TwoHop.
	Route Route
	// Payload is the encoding of dispatched rows: Float32 (the default) or
	// FP8. Combine always moves float32.
	Payload Payload
	// FP8Scale is the tile scale format of the FP8 payload.
	FP8Scale fp8.ScaleFormat
	// Workers bounds the goroutines that pack and unpack rows and run the
	// experts (0: GOMAXPROCS).
	Workers int
}

// Traffic counts the bytes (and dispatched rows) one rank has sent to
// other ranks, split by whether the receiver is on another node
// (inter-node) or on the same node (intra-node). Bytes include the row
// payload and the per-row metadata (K expert ids and K weights, 8K
// bytes); the small count headers and the agreement all-reduces are not
// counted, nor is anything a rank sends to itself.
type Traffic struct {
	DispatchInter, DispatchIntra         int64 // bytes sent by dispatch
	CombineInter, CombineIntra           int64 // bytes sent by combine
	DispatchInterRows, DispatchIntraRows int64 // rows sent by dispatch
}

// Add returns the element-wise sum of t and u.
func (t Traffic) Add(u Traffic) Traffic {
	return Traffic{t.DispatchInter + u.DispatchInter, t.DispatchIntra + u.DispatchIntra,
		t.CombineInter + u.CombineInter, t.CombineIntra + u.CombineIntra,
		t.DispatchInterRows + u.DispatchInterRows, t.DispatchIntraRows + u.DispatchIntraRows}
}

// Inter returns the inter-node bytes of dispatch and combine.
func (t Traffic) Inter() int64 { return t.DispatchInter + t.CombineInter }

// Intra returns the intra-node bytes of dispatch and combine.
func (t Traffic) Intra() int64 { return t.DispatchIntra + t.CombineIntra }

// Dispatcher is one rank's end of expert-parallel dispatch and combine
// over a Comm: DispatchRows sends each token to the ranks that hold its
// experts, Combine brings the results back and sums them, and Dispatch
// does both around the experts as a moe.Dispatcher. Every rank of the
// communicator must make the same sequence of calls. A Dispatcher is used
// by one goroutine at a time. It keeps its transient buffers (the packed
// rows it sends, about rows × row size) between calls; Close releases
// them.
type Dispatcher struct {
	comm    Comm
	layout  Layout
	opt     Options
	col     Comm // two-hop: the ranks with this rank's local index, one per node (rank = node)
	node    Comm // two-hop: the ranks of this rank's node (rank = local index)
	traffic Traffic
	scratch [nScratch][]uint64 // transient buffers, kept between calls
}

// Scratch buffers: each holds data only during one call.
const (
	sSend = iota
	sHop1
	sFwd
	sStaging
	sPartial
	sBack
	sRet
	nScratch
)

// scratchBytes returns n bytes of scratch buffer i (8-byte aligned, not
// zeroed).
func (d *Dispatcher) scratchBytes(i, n int) []byte {
	if w := (n + 7) / 8; cap(d.scratch[i]) < w {
		d.scratch[i] = nil
		d.scratch[i] = make([]uint64, w)
	}
	if n == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d.scratch[i]))), n)
}

// scratchF32 returns n float32 values of scratch buffer i (not zeroed).
func (d *Dispatcher) scratchF32(i, n int) []float32 {
	if n == 0 {
		return []float32{}
	}
	return f32View(d.scratchBytes(i, 4*n))
}

// NewDispatcher returns rank c.Rank()'s dispatcher. It is collective: the
// ranks check that they agree on the layout and options (every rank gets
// an error if one of them has a bad or different one) and, for TwoHop,
// split c into the per-node and same-local-index communicators.
func NewDispatcher(c Comm, l Layout, opt Options) (*Dispatcher, error) {
	var bad error
	switch {
	case l.Validate() != nil:
		bad = l.Validate()
	case c.Size() != l.Ranks:
		bad = fmt.Errorf("alltoall: layout of %d ranks over a communicator of %d", l.Ranks, c.Size())
	case opt.Route > TwoHop:
		bad = fmt.Errorf("alltoall: unknown %v", opt.Route)
	case opt.Payload > FP8:
		bad = fmt.Errorf("alltoall: unknown %v", opt.Payload)
	case opt.FP8Scale > fp8.ScalePow2:
		bad = fmt.Errorf("alltoall: unknown FP8 scale format %d", opt.FP8Scale)
	}
	failed, lo, hi, err := agree(c, bad != nil, float64(l.Experts), float64(l.RanksPerNode),
		float64(opt.Route), float64(opt.Payload), float64(opt.FP8Scale))
	switch {
	case err != nil:
		return nil, err
	case bad != nil:
		return nil, bad
	case failed >= 0:
		return nil, fmt.Errorf("alltoall: NewDispatcher: rank %d has a bad layout or options", failed)
	}
	for i, name := range []string{"experts", "ranks per node", "route", "payload", "FP8 scale format"} {
		if lo[i] != hi[i] {
			return nil, fmt.Errorf("alltoall: NewDispatcher: the ranks disagree on the %s (%g to %g)", name, lo[i], hi[i])
		}
	}
	d := &Dispatcher{comm: c, layout: l, opt: opt}
	if opt.Route == TwoHop {
		me := c.Rank()
		if d.col, err = c.Split(l.Local(me), l.Node(me)); err != nil {
			return nil, err
		}
		if d.node, err = c.Split(l.Node(me), l.Local(me)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Layout returns the dispatcher's layout.
func (d *Dispatcher) Layout() Layout { return d.layout }

// Traffic returns the bytes this rank has sent since the last
// ResetTraffic.
func (d *Dispatcher) Traffic() Traffic { return d.traffic }

// ResetTraffic zeroes the traffic counters.
func (d *Dispatcher) ResetTraffic() { d.traffic = Traffic{} }

// Close releases the two-hop sub-communicators (collective) and the
// scratch buffers.
func (d *Dispatcher) Close() error {
	d.scratch = [nScratch][]uint64{}
	var errs []error
	for _, c := range []Comm{d.col, d.node} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	d.col, d.node = nil, nil
	return errors.Join(errs...)
}

// agree is one AllReduce (max) through which every rank learns the lowest
// rank that failed (-1 if none) and the minimum and maximum of each value
// over the ranks. A NaN value abstains: if every rank abstains, lo is +Inf
// and hi -Inf.
func agree(c Comm, failed bool, vals ...float64) (failedRank int, lo, hi []float64, err error) {
	buf := make([]float64, 1+2*len(vals))
	buf[0] = -float64(c.Size())
	if failed {
		buf[0] = -float64(c.Rank())
	}
	for i, v := range vals {
		buf[1+2*i], buf[2+2*i] = v, -v
		if math.IsNaN(v) {
			buf[1+2*i], buf[2+2*i] = math.Inf(-1), math.Inf(-1)
		}
	}
	if err := c.AllReduce(buf, Max); err != nil {
		return 0, nil, nil, err
	}
	failedRank = -1
	if r := int(-buf[0]); r < c.Size() {
		failedRank = r
	}
	lo, hi = make([]float64, len(vals)), make([]float64, len(vals))
	for i := range vals {
		hi[i], lo[i] = buf[1+2*i], -buf[2+2*i]
	}
	return failedRank, lo, hi, nil
}

// Batch is what one rank received from a dispatch: the rows sent to it,
// grouped by source rank, with their metadata. It also remembers the
// routes, so that Combine can send results back along them.
type Batch struct {
	// X holds the received rows, [Rows, d]: first those from rank 0, then
	// rank 1, ..., each source's rows in its token order. A token is
	// received once however many of its experts this rank holds.
	X dsv3.Matrix
	// From has Size()+1 offsets: rows From[s] to From[s+1] came from rank s.
	From []int
	// K is the number of slots per token.
	K int
	// Experts[i*K+j] is the expert of slot j of row i if this rank holds
	// it, else -1.
	Experts []int32
	// Weights[i*K+j] is the weight the source gave slot j of row i (1 when
	// it gave none).
	Weights []float32
	// FirstExpert is the first expert of this rank; ExpertCounts[e -
	// FirstExpert] counts the (row, slot) pairs of its expert e.
	FirstExpert  int
	ExpertCounts []int

	d       *Dispatcher
	tokens  int     // T: the tokens this rank dispatched
	experts []int32 // the ids this rank dispatched (T×K)
	flat    *flatPlan
	two     *twoPlan
}

// flatPlan remembers a flat dispatch.
type flatPlan struct {
	sendCnt, sendOff []int   // rows to each rank
	sendTok          []int32 // token of each sent row, by rank then token
	recvCnt          []int   // rows from each rank
}

// twoPlan remembers a two-hop dispatch. m indexes source nodes (ranks of
// the col communicator), l local ranks (ranks of the node communicator).
type twoPlan struct {
	// source side (hop 1)
	sendCnt1, sendOff1 []int   // rows to each node
	sendTok1           []int32 // token of each row, by node then token
	// forwarder side
	recvCnt1, from1 []int   // hop-1 rows from each source node; offsets
	h1ids           []int32 // per hop-1 row: K ids, -1 unless on this node
	fwdCnt          [][]int // [l][m]: hop-1 rows of node m forwarded to l
	fwdOff          []int   // per l: first row in fwdRows
	fwdRows         []int32 // hop-1 row of each forwarded row, by l, m, row
	// final side (hop 2)
	inCnt [][]int // [l][m]: rows from forwarder l that came from node m
	base  [][]int // [l][m]: where those rows start in X
}

// rowBytes returns the encoded size of a row of d values.
func (d *Dispatcher) rowBytes(cols int) int {
	if d.opt.Payload == FP8 {
		return cols + 4*((cols+fp8.BlockSize-1)/fp8.BlockSize)
	}
	return 4 * cols
}

// encoder writes token rows in the wire format.
type encoder struct {
	payload Payload
	x       dsv3.Matrix
	tiles   *fp8.Tiles
	rb      int
}

func (e *encoder) put(dst []byte, t int) {
	if e.payload == Float32 {
		copy(f32View(dst), e.x.Row(t))
		return
	}
	c := e.x.Cols
	copy(dst[:c], fp8Bytes(e.tiles.Codes[t*c:(t+1)*c]))
	sc := e.tiles.ScaleCols()
	for b, s := range e.tiles.Scales[t*sc : (t+1)*sc] {
		binary.NativeEndian.PutUint32(dst[c+4*b:], math.Float32bits(s))
	}
}

func fp8Bytes(c []fp8.E4M3) []byte {
	if len(c) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(c))), len(c))
}

// decode turns n received rows of cols values in the wire format into a
// float32 matrix (without copying for Float32).
func (d *Dispatcher) decode(buf []byte, n, cols int) dsv3.Matrix {
	if d.opt.Payload == Float32 {
		return dsv3.Matrix{Rows: n, Cols: cols, Stride: cols, Data: f32View(buf)[:n*cols]}
	}
	x := dsv3.NewMatrix(n, cols)
	rb := d.rowBytes(cols)
	parallel.For(n, 32, d.opt.Workers, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			src, row := buf[i*rb:(i+1)*rb], x.Row(i)
			fp8.Float32sFromE4M3(row, fp8.AsE4M3(src[:cols]))
			for j := range row {
				row[j] *= math.Float32frombits(binary.NativeEndian.Uint32(src[cols+4*(j/fp8.BlockSize):]))
			}
		}
	})
	return x
}

// meta is the per-row metadata on the wire: K expert ids (-1 for slots the
// receiver does not serve) and K float32 weights, as 2K uint32 values.
func packMeta(dst []uint32, experts []int32, weights []float32, t, k int, keep func(e int32) bool) {
	for j := range k {
		e := experts[t*k+j]
		if e >= 0 && keep(e) {
			dst[j] = uint32(e)
		} else {
			dst[j] = math.MaxUint32 // -1
		}
		w := float32(1)
		if weights != nil {
			w = weights[t*k+j]
		}
		dst[k+j] = math.Float32bits(w)
	}
}

// alltoallRows moves rows of rb bytes: cnt rows to each rank from send,
// rcnt rows from each rank into recv.
func alltoallRows(c Comm, send []byte, cnt []int, recv []byte, rcnt []int, rb int) error {
	n := c.Size()
	sc, sd, rc, rd := make([]int, n), make([]int, n), make([]int, n), make([]int, n)
	so, ro := 0, 0
	for i := range n {
		sc[i], sd[i], rc[i], rd[i] = cnt[i]*rb, so, rcnt[i]*rb, ro
		so += sc[i]
		ro += rc[i]
	}
	return c.AlltoallV(send, sc, sd, recv, rc, rd)
}

// exchangeCounts sends per values to every rank (send[i*per:(i+1)*per]
// to rank i) and returns what every rank sent this one.
func exchangeCounts(c Comm, send []int64, per int) ([]int64, error) {
	n := c.Size()
	recv := make([]int64, n*per)
	cnt := make([]int, n)
	for i := range cnt {
		cnt[i] = 1
	}
	err := alltoallRows(c, bytesOfI64(send), cnt, bytesOfI64(recv), cnt, 8*per)
	return recv, err
}

func prefix(cnt []int) []int {
	off := make([]int, len(cnt)+1)
	for i, n := range cnt {
		off[i+1] = off[i] + n
	}
	return off
}

// DispatchRows sends each token row of x [T, d] to every rank that holds
// one of its experts experts[t*k : (t+1)*k], once per rank (once per node
// across the inter-node link with TwoHop), with its expert ids and
// weights (weights may be nil: all 1). It is collective; every rank
// returns the Batch of rows it received. Bad input on any rank (ids out
// of range, lengths that do not match, k or d that differ between ranks)
// makes every rank return an error.
func (d *Dispatcher) DispatchRows(x dsv3.Matrix, experts []int32, k int, weights []float32) (*Batch, error) {
	return d.dispatch(x, experts, k, weights, nil)
}

// dispatch is DispatchRows with an error found by the caller, which makes
// this rank fail the agreement.
func (d *Dispatcher) dispatch(x dsv3.Matrix, experts []int32, k int, weights []float32, bad error) (*Batch, error) {
	T := x.Rows
	var mem *Membership
	if bad == nil {
		switch {
		case x.CheckShape("alltoall: dispatched rows", T, x.Cols) != nil:
			bad = x.CheckShape("alltoall: dispatched rows", T, x.Cols)
		case k <= 0 || len(experts) != T*k:
			bad = fmt.Errorf("alltoall: %d expert ids for %d tokens of k = %d experts", len(experts), T, k)
		case weights != nil && len(weights) != len(experts):
			bad = fmt.Errorf("alltoall: %d weights for %d (token, expert) pairs", len(weights), len(experts))
		default:
			mem, bad = d.layout.Route(experts, k)
		}
	}
	cols := float64(x.Cols)
	if T == 0 { // an empty rank does not vote on the width
		cols = math.NaN()
	}
	failed, lo, hi, err := agree(d.comm, bad != nil, float64(k), cols)
	switch {
	case err != nil:
		return nil, err
	case bad != nil:
		return nil, bad
	case failed >= 0:
		return nil, fmt.Errorf("alltoall: dispatch aborted: rank %d had bad input", failed)
	case lo[0] != hi[0]:
		return nil, fmt.Errorf("alltoall: dispatch: the ranks disagree on k (%g to %g experts per token)", lo[0], hi[0])
	case lo[1] != hi[1] && !math.IsInf(hi[1], -1):
		return nil, fmt.Errorf("alltoall: dispatch: the ranks disagree on the row width (%g to %g values)", lo[1], hi[1])
	}
	width := x.Cols
	if !math.IsInf(hi[1], -1) { // some rank has tokens
		width = int(hi[1])
	}
	enc := &encoder{payload: d.opt.Payload, x: x, rb: d.rowBytes(width)}
	if d.opt.Payload == FP8 && T > 0 {
		if enc.tiles, err = fp8.QuantizeTiles(x, d.opt.FP8Scale); err != nil {
			return nil, err
		}
	}
	b := &Batch{K: k, d: d, tokens: T, experts: experts}
	b.FirstExpert, _ = d.layout.ExpertRange(d.comm.Rank())
	if d.opt.Route == TwoHop {
		err = d.dispatchTwoHop(b, mem, enc, weights, width)
	} else {
		err = d.dispatchFlat(b, mem, enc, weights, width)
	}
	if err != nil {
		return nil, err
	}
	b.ExpertCounts = make([]int, d.layout.ExpertsPerRank())
	for _, e := range b.Experts {
		if e >= 0 {
			b.ExpertCounts[int(e)-b.FirstExpert]++
		}
	}
	return b, nil
}

func (d *Dispatcher) count(peerNode int, bytes, rows int64, dispatch bool) {
	inter := peerNode != d.layout.Node(d.comm.Rank())
	t := &d.traffic
	switch {
	case dispatch && inter:
		t.DispatchInter += bytes
		t.DispatchInterRows += rows
	case dispatch:
		t.DispatchIntra += bytes
		t.DispatchIntraRows += rows
	case inter:
		t.CombineInter += bytes
	default:
		t.CombineIntra += bytes
	}
}

func (d *Dispatcher) dispatchFlat(b *Batch, mem *Membership, enc *encoder, weights []float32, width int) error {
	c, l, k := d.comm, d.layout, b.K
	R, me, T := c.Size(), c.Rank(), b.tokens
	p := &flatPlan{sendCnt: append([]int(nil), mem.PerRank...)}
	p.sendOff = prefix(p.sendCnt)
	p.sendTok = make([]int32, p.sendOff[R])
	next := append([]int(nil), p.sendOff[:R]...)
	ranks := make([]int, 0, k)
	for t := range T {
		for _, r := range mem.Ranks(t, ranks[:0]) {
			p.sendTok[next[r]] = int32(t)
			next[r]++
		}
	}
	hdr := make([]int64, R)
	for r := range R {
		hdr[r] = int64(p.sendCnt[r])
	}
	rh, err := exchangeCounts(c, hdr, 1)
	if err != nil {
		return err
	}
	p.recvCnt = make([]int, R)
	for r := range R {
		p.recvCnt[r] = int(rh[r])
	}
	b.From = prefix(p.recvCnt)
	nIn, nOut := b.From[R], p.sendOff[R]

	// Metadata.
	meta := make([]uint32, nOut*2*k)
	parallel.For(R, 1, d.opt.Workers, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			keep := func(e int32) bool { return l.Owner(int(e)) == r }
			for i := p.sendOff[r]; i < p.sendOff[r+1]; i++ {
				packMeta(meta[i*2*k:(i+1)*2*k], b.experts, weights, int(p.sendTok[i]), k, keep)
			}
		}
	})
	rmeta := make([]uint32, nIn*2*k)
	if err := alltoallRows(c, bytesOfU32(meta), p.sendCnt, bytesOfU32(rmeta), p.recvCnt, 8*k); err != nil {
		return err
	}
	b.Experts, b.Weights = unpackMeta(rmeta, nIn, k)

	// Rows.
	rb := enc.rb
	send := d.scratchBytes(sSend, nOut*rb)
	parallel.For(nOut, 32, d.opt.Workers, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			enc.put(send[i*rb:(i+1)*rb], int(p.sendTok[i]))
		}
	})
	var recv []byte
	if d.opt.Payload == FP8 { // decoded into a new matrix: the codes are transient
		recv = d.scratchBytes(sHop1, nIn*rb)
	} else {
		recv = alignedBytes(nIn * rb) // becomes Batch.X
	}
	if err := alltoallRows(c, send, p.sendCnt, recv, p.recvCnt, rb); err != nil {
		return err
	}
	b.X = d.decode(recv, nIn, width)
	for r := range R {
		if r != me {
			d.count(l.Node(r), int64(p.sendCnt[r]*(rb+8*k)), int64(p.sendCnt[r]), true)
		}
	}
	b.flat = p
	return nil
}

// unpackMeta splits received metadata into ids and weights.
func unpackMeta(meta []uint32, n, k int) ([]int32, []float32) {
	ids, w := make([]int32, n*k), make([]float32, n*k)
	for i := range n {
		m := meta[i*2*k : (i+1)*2*k]
		for j := range k {
			ids[i*k+j] = int32(m[j])
			w[i*k+j] = math.Float32frombits(m[k+j])
		}
	}
	return ids, w
}
