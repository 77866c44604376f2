//go:build mpi

package alltoall

/*
#cgo pkg-config: mpi
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

// Largest byte count of one MPI call: the C API counts in int. Tests lower
// it to exercise the chunked paths.
static long long a2a_chunk = 1LL << 30;

// Error codes of the shim itself, above MPI's.
enum { A2A_ERR_LENGTH = -1001, A2A_ERR_NOMEM = -1002 };

// The tag of the shim's own point-to-point messages (user tags are below).
enum { A2A_TAG = 16384 };

static void a2a_set_chunk(long long n) { a2a_chunk = n; }

static int a2a_init(int *provided) {
	int flag = 0;
	int err = MPI_Initialized(&flag);
	if (err != MPI_SUCCESS) return err;
	if (flag) return MPI_Query_thread(provided);
	return MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, provided);
}

// a2a_world duplicates MPI_COMM_WORLD, so that the package's messages
// never meet the application's, with MPI_ERRORS_RETURN on the duplicate.
static int a2a_world(MPI_Comm *out) {
	int err = MPI_Comm_dup(MPI_COMM_WORLD, out);
	if (err != MPI_SUCCESS) return err;
	return MPI_Comm_set_errhandler(*out, MPI_ERRORS_RETURN);
}
static int a2a_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static int a2a_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }

static long long a2a_chunks(long long n) { return n == 0 ? 1 : (n + a2a_chunk - 1) / a2a_chunk; }

static char a2a_dummy;

// a2a_exchange posts nr receives and ns sends of bytes, each split into
// chunks of at most a2a_chunk bytes (one empty message for an empty
// buffer), then waits for all. On error *failed is the index of the
// message (receives first, then sends) that failed.
static int a2a_exchange(MPI_Comm comm,
		int nr, char **rbuf, long long *rlen, int *rpeer, int *rtag,
		int ns, char **sbuf, long long *slen, int *speer, int *stag, int *failed) {
	long long nreq = 0;
	for (int i = 0; i < nr; i++) nreq += a2a_chunks(rlen[i]);
	for (int i = 0; i < ns; i++) nreq += a2a_chunks(slen[i]);
	*failed = -1;
	if (nreq == 0) return MPI_SUCCESS;
	MPI_Request *req = malloc(nreq * sizeof(MPI_Request));
	MPI_Status *st = malloc(nreq * sizeof(MPI_Status));
	int *owner = malloc(nreq * sizeof(int));
	int *want = malloc(nreq * sizeof(int));
	if (!req || !st || !owner || !want) {
		free(req); free(st); free(owner); free(want);
		return A2A_ERR_NOMEM;
	}
	long long q = 0;
	int err = MPI_SUCCESS;
	for (int i = 0; i < nr + ns && err == MPI_SUCCESS; i++) {
		int recv = i < nr;
		int j = recv ? i : i - nr;
		char *buf = recv ? rbuf[j] : sbuf[j];
		long long len = recv ? rlen[j] : slen[j];
		int peer = recv ? rpeer[j] : speer[j];
		int tag = recv ? rtag[j] : stag[j];
		if (buf == NULL) buf = &a2a_dummy;
		for (long long off = 0, c = 0; c < a2a_chunks(len); c++, off += a2a_chunk) {
			int n = (int)(len - off < a2a_chunk ? len - off : a2a_chunk);
			owner[q] = i;
			want[q] = n;
			err = recv ? MPI_Irecv(buf + off, n, MPI_BYTE, peer, tag, comm, &req[q])
			           : MPI_Isend(buf + off, n, MPI_BYTE, peer, tag, comm, &req[q]);
			if (err != MPI_SUCCESS) {
				*failed = i;
				break;
			}
			q++;
		}
	}
	if (q > 0) {
		int werr = MPI_Waitall((int)q, req, st);
		if (werr != MPI_SUCCESS && err == MPI_SUCCESS) {
			err = werr;
			if (werr == MPI_ERR_IN_STATUS) {
				for (long long k = 0; k < q; k++) {
					if (st[k].MPI_ERROR != MPI_SUCCESS && st[k].MPI_ERROR != MPI_ERR_PENDING) {
						err = st[k].MPI_ERROR;
						*failed = owner[k];
						break;
					}
				}
			}
		}
	}
	if (err == MPI_SUCCESS) {
		for (long long k = 0; k < q && owner[k] < nr; k++) {
			int got = 0;
			MPI_Get_count(&st[k], MPI_BYTE, &got);
			if (got != want[k]) {
				err = A2A_ERR_LENGTH;
				*failed = owner[k];
				break;
			}
		}
	}
	free(req); free(st); free(owner); free(want);
	return err;
}

// a2a_alltoallv is MPI_Alltoallv on bytes with 64-bit counts and
// displacements. When any rank has a count or displacement beyond
// a2a_chunk (agreed by an MPI_Allreduce, so that every rank takes the same
// path) the segments go as chunked point-to-point messages instead.
static int a2a_alltoallv(MPI_Comm comm, int size,
		char *sbuf, long long *scnt, long long *sdsp,
		char *rbuf, long long *rcnt, long long *rdsp, int *failed) {
	int big = 0;
	for (int i = 0; i < size; i++) {
		if (scnt[i] > a2a_chunk || sdsp[i] > a2a_chunk || rcnt[i] > a2a_chunk || rdsp[i] > a2a_chunk) big = 1;
	}
	int any = 0;
	*failed = -1;
	int err = MPI_Allreduce(&big, &any, 1, MPI_INT, MPI_LOR, comm);
	if (err != MPI_SUCCESS) return err;
	if (!any) {
		int *ic = malloc(4 * size * sizeof(int));
		if (!ic) return A2A_ERR_NOMEM;
		for (int i = 0; i < size; i++) {
			ic[i] = (int)scnt[i]; ic[size + i] = (int)sdsp[i];
			ic[2 * size + i] = (int)rcnt[i]; ic[3 * size + i] = (int)rdsp[i];
		}
		if (sbuf == NULL) sbuf = &a2a_dummy;
		if (rbuf == NULL) rbuf = &a2a_dummy;
		err = MPI_Alltoallv(sbuf, ic, ic + size, MPI_BYTE, rbuf, ic + 2 * size, ic + 3 * size, MPI_BYTE, comm);
		free(ic);
		return err;
	}
	char **rb = malloc(size * sizeof(char *)), **sb = malloc(size * sizeof(char *));
	int *peer = malloc(size * sizeof(int)), *tag = malloc(size * sizeof(int));
	if (!rb || !sb || !peer || !tag) {
		free(rb); free(sb); free(peer); free(tag);
		return A2A_ERR_NOMEM;
	}
	for (int i = 0; i < size; i++) {
		rb[i] = rbuf ? rbuf + rdsp[i] : NULL;
		sb[i] = sbuf ? sbuf + sdsp[i] : NULL;
		peer[i] = i;
		tag[i] = A2A_TAG;
	}
	err = a2a_exchange(comm, size, rb, rcnt, peer, tag, size, sb, scnt, peer, tag, failed);
	free(rb); free(sb); free(peer); free(tag);
	return err;
}

// a2a_allreduce reduces doubles in place, at most a2a_chunk bytes a call.
static int a2a_allreduce(MPI_Comm comm, double *data, long long n, int op) {
	MPI_Op o = op == 0 ? MPI_SUM : op == 1 ? MPI_MAX : MPI_MIN;
	long long per = a2a_chunk / 8;
	if (per < 1) per = 1;
	for (long long off = 0; off < n; off += per) {
		int c = (int)(n - off < per ? n - off : per);
		int err = MPI_Allreduce(MPI_IN_PLACE, data + off, c, MPI_DOUBLE, o, comm);
		if (err != MPI_SUCCESS) return err;
	}
	return MPI_SUCCESS;
}

static int a2a_split(MPI_Comm comm, int color, int key, MPI_Comm *out) {
	int err = MPI_Comm_split(comm, color, key, out);
	if (err != MPI_SUCCESS) return err;
	return MPI_Comm_set_errhandler(*out, MPI_ERRORS_RETURN);
}

static int a2a_free(MPI_Comm *c) { return MPI_Comm_free(c); }

static int a2a_rank_size(MPI_Comm c, int *rank, int *size) {
	int err = MPI_Comm_rank(c, rank);
	if (err != MPI_SUCCESS) return err;
	return MPI_Comm_size(c, size);
}

static void a2a_error_string(int code, char *buf, int cap) {
	int n = 0;
	if (code == A2A_ERR_LENGTH) {
		snprintf(buf, cap, "a message's length differs from its receive buffer's");
		return;
	}
	if (code == A2A_ERR_NOMEM) {
		snprintf(buf, cap, "out of memory in the MPI shim");
		return;
	}
	if (MPI_Error_string(code, buf, &n) != MPI_SUCCESS) snprintf(buf, cap, "MPI error %d", code);
	else buf[n < cap ? n : cap - 1] = 0;
}

static int a2a_finalize(void) {
	int flag = 0;
	MPI_Finalized(&flag);
	if (flag) return MPI_SUCCESS;
	return MPI_Finalize();
}

static int a2a_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// mpiLock serialises MPI calls when the library gives less than
// MPI_THREAD_MULTIPLE.
var (
	mpiLock   sync.Mutex
	mpiSerial bool
	mpiOnce   sync.Once
	mpiWorld  *mpiComm
	mpiErr    error
)

func lockMPI() func() {
	if !mpiSerial {
		return func() {}
	}
	mpiLock.Lock()
	return mpiLock.Unlock
}

// MPIWorld initialises MPI (MPI_Init_thread, asking for
// MPI_THREAD_MULTIPLE; at least MPI_THREAD_SERIALIZED is required) unless
// the application already has, and returns a Comm over all the processes
// of the job: a duplicate of MPI_COMM_WORLD (collective, so every process
// calls it; later calls return the same Comm) with MPI_ERRORS_RETURN, so
// that MPI errors come back as Go errors naming the rank and the operation.
// MPI_Init_thread runs on the calling goroutine's OS thread, which stays
// locked to it: call MPIFinalize from the same goroutine. Under
// MPI_THREAD_SERIALIZED the package serialises its MPI calls, so use its
// communicators from one goroutine at a time.
//
// MPIWorld is only built with the build tag mpi (cgo and an MPI library,
// found through pkg-config "mpi"; Debian: libopenmpi-dev).
func MPIWorld() (Comm, error) {
	mpiOnce.Do(func() {
		runtime.LockOSThread()
		var provided C.int
		if code := C.a2a_init(&provided); code != C.MPI_SUCCESS {
			mpiErr = fmt.Errorf("alltoall: MPI_Init_thread: %s", mpiMessage(code))
			return
		}
		switch {
		case provided < C.a2a_thread_serialized():
			mpiErr = fmt.Errorf("alltoall: MPI gives thread level %d, need at least MPI_THREAD_SERIALIZED", int(provided))
			return
		case provided < C.a2a_thread_multiple():
			mpiSerial = true
		}
		var w C.MPI_Comm
		if code := C.a2a_world(&w); code != C.MPI_SUCCESS {
			mpiErr = fmt.Errorf("alltoall: MPI_Comm_dup of MPI_COMM_WORLD: %s", mpiMessage(code))
			return
		}
		c, err := newMPIComm(w, -1, "MPI_COMM_WORLD")
		if err != nil {
			mpiErr = err
			return
		}
		c.world = true
		mpiWorld = c
	})
	if mpiErr != nil {
		return nil, mpiErr
	}
	return mpiWorld, nil
}

// MPIFinalize finalises MPI (MPI_Finalize), from the goroutine that called
// MPIWorld first.
func MPIFinalize() error {
	defer lockMPI()()
	if code := C.a2a_finalize(); code != C.MPI_SUCCESS {
		return fmt.Errorf("alltoall: MPI_Finalize: %s", mpiMessage(code))
	}
	runtime.UnlockOSThread()
	return nil
}

// MPIAbort ends every process of the MPI job (MPI_Abort on
// MPI_COMM_WORLD) with the given exit code.
func MPIAbort(code int) {
	C.a2a_abort(C.int(code))
}

// setMPIChunk sets the largest byte count of one MPI call (tests).
func setMPIChunk(n int) { C.a2a_set_chunk(C.longlong(n)) }

// mpiComm is a Comm over an MPI communicator.
type mpiComm struct {
	c           C.MPI_Comm
	rank, size  int
	worldRank   int
	name        string
	world, free bool
}

func newMPIComm(c C.MPI_Comm, worldRank int, name string) (*mpiComm, error) {
	var r, s C.int
	if code := C.a2a_rank_size(c, &r, &s); code != C.MPI_SUCCESS {
		return nil, fmt.Errorf("alltoall: MPI_Comm_rank/size of %s: %s", name, mpiMessage(code))
	}
	if worldRank < 0 {
		worldRank = int(r)
	}
	return &mpiComm{c: c, rank: int(r), size: int(s), worldRank: worldRank, name: name}, nil
}

func mpiMessage(code C.int) string {
	buf := make([]byte, C.MPI_MAX_ERROR_STRING+1)
	C.a2a_error_string(code, (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
	n := 0
	for n < len(buf) && buf[n] != 0 {
		n++
	}
	return string(buf[:n])
}

// fail names the rank, the communicator and the operation.
func (c *mpiComm) fail(op string, code C.int, detail string) error {
	if detail != "" {
		detail = " (" + detail + ")"
	}
	return fmt.Errorf("alltoall: MPI rank %d (rank %d of %s, size %d): %s%s: %s",
		c.worldRank, c.rank, c.name, c.size, op, detail, mpiMessage(code))
}

func (c *mpiComm) Rank() int { return c.rank }
func (c *mpiComm) Size() int { return c.size }

func ptr(b []byte) *C.char {
	if len(b) == 0 {
		return nil
	}
	return (*C.char)(unsafe.Pointer(unsafe.SliceData(b)))
}

// AlltoallV implements Comm with MPI_Alltoallv (or, for segments beyond
// the 32-bit count of the C API, chunked MPI_Isend/MPI_Irecv).
func (c *mpiComm) AlltoallV(send []byte, sendCounts, sendDispls []int, recv []byte, recvCounts, recvDispls []int) error {
	if err := checkV("send", send, sendCounts, sendDispls, c.size); err != nil {
		return err
	}
	if err := checkV("receive", recv, recvCounts, recvDispls, c.size); err != nil {
		return err
	}
	n := c.size
	arg := make([]C.longlong, 4*n)
	for i := range n {
		arg[i], arg[n+i] = C.longlong(sendCounts[i]), C.longlong(sendDispls[i])
		arg[2*n+i], arg[3*n+i] = C.longlong(recvCounts[i]), C.longlong(recvDispls[i])
	}
	var failed C.int
	defer lockMPI()()
	code := C.a2a_alltoallv(c.c, C.int(n), ptr(send), &arg[0], &arg[n], ptr(recv), &arg[2*n], &arg[3*n], &failed)
	if code != C.MPI_SUCCESS {
		detail := ""
		if failed >= 0 {
			detail = fmt.Sprintf("segment of rank %d", int(failed)%n)
		}
		return c.fail("MPI_Alltoallv", code, detail)
	}
	return nil
}

// Exchange implements Comm with MPI_Irecv, MPI_Isend and MPI_Waitall;
// messages beyond the 32-bit count of the C API go as several chunks.
func (c *mpiComm) Exchange(sends, recvs []Message) error {
	if err := checkMessages("send", sends, c.size); err != nil {
		return err
	}
	if err := checkMessages("receive", recvs, c.size); err != nil {
		return err
	}
	nr, ns := len(recvs), len(sends)
	if nr+ns == 0 {
		return nil
	}
	// The buffers' addresses go into C memory: pin them for the call, and
	// store them as integers (a typed pointer store into C memory would
	// run the GC's write barrier over whatever the memory held before).
	var pin runtime.Pinner
	defer pin.Unpin()
	mem := C.calloc(C.size_t(nr+ns), C.size_t(unsafe.Sizeof(uintptr(0))))
	if mem == nil {
		return fmt.Errorf("alltoall: MPI rank %d: Exchange: out of memory", c.worldRank)
	}
	defer C.free(mem)
	bufs := unsafe.Slice((*uintptr)(mem), nr+ns)
	lens := make([]C.longlong, nr+ns)
	peers := make([]C.int, nr+ns)
	tags := make([]C.int, nr+ns)
	for i, m := range append(append([]Message(nil), recvs...), sends...) {
		if len(m.Data) > 0 {
			pin.Pin(&m.Data[0])
			bufs[i] = uintptr(unsafe.Pointer(&m.Data[0]))
		}
		lens[i], peers[i], tags[i] = C.longlong(len(m.Data)), C.int(m.Peer), C.int(m.Tag)
	}
	at := func(s []C.longlong, i int) *C.longlong {
		if i >= len(s) {
			return nil
		}
		return &s[i]
	}
	atI := func(s []C.int, i int) *C.int {
		if i >= len(s) {
			return nil
		}
		return &s[i]
	}
	rb := (**C.char)(mem)
	var sb **C.char
	if ns > 0 {
		sb = (**C.char)(unsafe.Add(mem, nr*int(unsafe.Sizeof(uintptr(0)))))
	}
	var failed C.int
	defer lockMPI()()
	code := C.a2a_exchange(c.c, C.int(nr), rb, at(lens, 0), atI(peers, 0), atI(tags, 0),
		C.int(ns), sb, at(lens, nr), atI(peers, nr), atI(tags, nr), &failed)
	if code != C.MPI_SUCCESS {
		detail := ""
		switch f := int(failed); {
		case f >= 0 && f < nr:
			detail = fmt.Sprintf("receive from rank %d, tag %d, %d bytes", recvs[f].Peer, recvs[f].Tag, len(recvs[f].Data))
		case f >= nr:
			detail = fmt.Sprintf("send to rank %d, tag %d, %d bytes", sends[f-nr].Peer, sends[f-nr].Tag, len(sends[f-nr].Data))
		}
		return c.fail("MPI_Isend/MPI_Irecv/MPI_Waitall", code, detail)
	}
	return nil
}

// AllReduce implements Comm with MPI_Allreduce (MPI_IN_PLACE, MPI_DOUBLE).
func (c *mpiComm) AllReduce(data []float64, op Op) error {
	if op > Min {
		return fmt.Errorf("alltoall: AllReduce with unknown %v", op)
	}
	if len(data) == 0 {
		return nil
	}
	defer lockMPI()()
	if code := C.a2a_allreduce(c.c, (*C.double)(unsafe.Pointer(&data[0])), C.longlong(len(data)), C.int(op)); code != C.MPI_SUCCESS {
		return c.fail("MPI_Allreduce", code, fmt.Sprintf("%v of %d values", op, len(data)))
	}
	return nil
}

// Split implements Comm with MPI_Comm_split.
func (c *mpiComm) Split(color, key int) (Comm, error) {
	if color < 0 {
		return nil, fmt.Errorf("alltoall: Split color %d must be >= 0", color)
	}
	var out C.MPI_Comm
	unlock := lockMPI()
	code := C.a2a_split(c.c, C.int(color), C.int(key), &out)
	unlock()
	if code != C.MPI_SUCCESS {
		return nil, c.fail("MPI_Comm_split", code, fmt.Sprintf("color %d, key %d", color, key))
	}
	nc, err := newMPIComm(out, c.worldRank, fmt.Sprintf("a split of %s (color %d)", c.name, color))
	if err != nil {
		return nil, err
	}
	nc.free = true
	return nc, nil
}

// Close implements Comm: MPI_Comm_free for a communicator made by Split.
func (c *mpiComm) Close() error {
	if !c.free {
		return nil
	}
	c.free = false
	defer lockMPI()()
	if code := C.a2a_free(&c.c); code != C.MPI_SUCCESS {
		return c.fail("MPI_Comm_free", code, "")
	}
	return nil
}
