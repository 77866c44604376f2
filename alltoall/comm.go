package alltoall

import (
	"fmt"
	"math"
	"unsafe"
)

// Comm is a communicator: a fixed group of ranks 0..Size()-1 that move
// bytes among themselves. Every method except Rank and Size is blocking
// and, except Exchange, collective: all ranks of the communicator call it,
// in the same order, or it does not complete. Buffers are borrowed for the
// duration of the call only.
//
// Two implementations are provided: the in-process World (one goroutine
// per rank) and, with the build tag mpi, MPI (a cgo shim over Open MPI).
// Values are moved as raw bytes in the machine's byte order; the ranks of
// one job must share it.
type Comm interface {
	// Rank is this process's (or goroutine's) index in the communicator.
	Rank() int
	// Size is the number of ranks.
	Size() int

	// AlltoallV is MPI_Alltoallv on bytes: rank r sends
	// send[sendDispls[i] : sendDispls[i]+sendCounts[i]] to every rank i and
	// receives rank i's segment for r into
	// recv[recvDispls[i] : recvDispls[i]+recvCounts[i]]. The counts must
	// agree pairwise (what i sends to r is what r expects from i).
	AlltoallV(send []byte, sendCounts, sendDispls []int, recv []byte, recvCounts, recvDispls []int) error

	// Exchange posts every receive in recvs and every send in sends at
	// once (MPI_Irecv, MPI_Isend) and returns when all have completed.
	// A receive matches the sends from its Peer with its Tag in the order
	// they were posted; its Data must have exactly the length of the
	// message. Tags are in [0, MaxTag). Sending to and receiving from
	// oneself is allowed. It is not collective: only the peers named take
	// part.
	Exchange(sends, recvs []Message) error

	// AllReduce replaces data, on every rank, by the element-wise
	// reduction (op) of the data of all ranks; every rank passes the same
	// length.
	AllReduce(data []float64, op Op) error

	// Split partitions the ranks by color (MPI_Comm_split): the ranks that
	// pass the same color form a new communicator, ordered by key and
	// then by rank in this one. color must be >= 0.
	Split(color, key int) (Comm, error)

	// Close releases a communicator made by Split (collective over its
	// ranks). Closing a world communicator does nothing.
	Close() error
}

// Message is one tagged point-to-point message of Exchange: sent to, or
// received from, rank Peer.
type Message struct {
	Peer, Tag int
	Data      []byte
}

// MaxTag bounds the tags of Exchange: tags are in [0, MaxTag). (The MPI
// standard guarantees tags up to 32767; the shim keeps MaxTag for its
// own use.)
const MaxTag = 1 << 14

// Op is a reduction of AllReduce.
type Op uint8

const (
	// Sum adds the values of all ranks, in rank order in the in-process
	// implementation.
	Sum Op = iota
	// Max keeps the largest.
	Max
	// Min keeps the smallest.
	Min
)

// String returns "sum", "max" or "min".
func (o Op) String() string {
	switch o {
	case Sum:
		return "sum"
	case Max:
		return "max"
	case Min:
		return "min"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

func (o Op) apply(a, b float64) float64 {
	switch o {
	case Max:
		return math.Max(a, b)
	case Min:
		return math.Min(a, b)
	}
	return a + b
}

// Send sends data to rank to with tag (Exchange with one send). It may
// wait for the matching receive (as MPI_Send may), so a rank cannot Send to
// itself without an Exchange that also posts the receive.
func Send(c Comm, to, tag int, data []byte) error {
	return c.Exchange([]Message{{Peer: to, Tag: tag, Data: data}}, nil)
}

// Recv receives the next message from rank from with tag into data, which
// must have the message's length (Exchange with one receive).
func Recv(c Comm, from, tag int, data []byte) error {
	return c.Exchange(nil, []Message{{Peer: from, Tag: tag, Data: data}})
}

// AllReduceFloat32 sums (or reduces by op) data over the ranks of c, in
// float64, and rounds the result back into data. It is how replicated
// parameters (the router, the shared experts) combine their gradients
// under expert parallelism.
func AllReduceFloat32(c Comm, data []float32, op Op) error {
	buf := make([]float64, len(data))
	for i, v := range data {
		buf[i] = float64(v)
	}
	if err := c.AllReduce(buf, op); err != nil {
		return err
	}
	for i, v := range buf {
		data[i] = float32(v)
	}
	return nil
}

// checkV validates one side of an AlltoallV call.
func checkV(what string, buf []byte, counts, displs []int, size int) error {
	if len(counts) != size || len(displs) != size {
		return fmt.Errorf("alltoall: AlltoallV %s counts/displacements have %d/%d entries, want %d (the communicator size)", what, len(counts), len(displs), size)
	}
	for i, n := range counts {
		d := displs[i]
		if n < 0 || d < 0 || d > len(buf) || n > len(buf)-d {
			return fmt.Errorf("alltoall: AlltoallV %s segment %d is [%d, %d+%d) outside a %d-byte buffer", what, i, d, d, n, len(buf))
		}
	}
	return nil
}

// checkMessages validates the peers and tags of an Exchange.
func checkMessages(what string, ms []Message, size int) error {
	for i, m := range ms {
		if m.Peer < 0 || m.Peer >= size {
			return fmt.Errorf("alltoall: Exchange %s %d names peer %d, outside [0, %d)", what, i, m.Peer, size)
		}
		if m.Tag < 0 || m.Tag >= MaxTag {
			return fmt.Errorf("alltoall: Exchange %s %d has tag %d, outside [0, %d)", what, i, m.Tag, MaxTag)
		}
	}
	return nil
}

// Byte views of numeric slices (no copy; native byte order).

func bytesOfF32(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
}

func bytesOfU32(f []uint32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
}

func bytesOfI64(f []int64) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 8*len(f))
}

// alignedBytes returns n zeroed bytes whose start is 8-byte aligned, so
// that they can be viewed as float32 or int64 values.
func alignedBytes(n int) []byte {
	w := make([]uint64, (n+7)/8)
	if n == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), n)
}

// f32View views 4-byte-aligned bytes as float32 values.
func f32View(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
