package gemm

import (
	"sync"
	"unsafe"
)

// buffer is a reusable float32 scratch area whose usable part (f) starts on
// a 64-byte boundary, so packed panels line up with cache lines and vector
// loads never split a line.
type buffer struct {
	raw []float32
	f   []float32
}

var bufferPool = sync.Pool{New: func() any { return new(buffer) }}

// getBuffer returns a pooled scratch slice of length n (contents undefined);
// release it with putBuffer.
func getBuffer(n int) *buffer {
	bf := bufferPool.Get().(*buffer)
	if cap(bf.f) < n {
		const align = 16 // float32s per 64 bytes
		bf.raw = make([]float32, n+align)
		off := 0
		if mis := int(uintptr(unsafe.Pointer(&bf.raw[0])) & 63); mis != 0 {
			off = (64 - mis) / 4
		}
		bf.f = bf.raw[off : off+n : off+n]
	}
	bf.f = bf.f[:n]
	return bf
}

func putBuffer(bf *buffer) { bufferPool.Put(bf) }
