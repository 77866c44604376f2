package tokenizer

import (
	"container/heap"
	"sync"
)

// bpe is the byte-level BPE model, rebuilt over raw bytes: the initial
// symbols of a piece are its bytes (each byte's alphabet rune is one
// vocabulary entry) and merges are looked up by the ids of the pair.
type bpe struct {
	byteID [256]int32        // id of each single byte, -1 if absent
	merges map[uint64]uint64 // (left id << 32 | right id) -> (rank << 32 | merged id)
	whole  map[string]int32  // raw-bytes vocabulary, only with ignore_merges
	unk    int32             // unk_token id, -1 if none
	fuse   bool              // fuse_unk
	cache  *wordCache        // piece -> ids
	linear int               // pieces up to this many symbols merge by linear scan
}

const noMerge = ^uint64(0)

func (m *bpe) lookup(a, b int32) uint64 {
	if v, ok := m.merges[uint64(uint32(a))<<32|uint64(uint32(b))]; ok {
		return v
	}
	return noMerge
}

// appendIDs appends the BPE encoding of the raw-bytes piece to dst.
func (m *bpe) appendIDs(dst []int, piece string, sc *scratch) []int {
	if len(piece) == 1 && m.byteID[piece[0]] >= 0 {
		return append(dst, int(m.byteID[piece[0]]))
	}
	if m.whole != nil {
		if id, ok := m.whole[piece]; ok {
			return append(dst, int(id))
		}
	}
	if ids, ok := m.cache.get(piece); ok {
		for _, id := range ids {
			dst = append(dst, int(id))
		}
		return dst
	}
	ids := m.merge(sc.merged[:0], piece, sc)
	sc.merged = ids
	if len(piece) < maxCachedLen {
		m.cache.put(piece, ids)
	}
	for _, id := range ids {
		dst = append(dst, int(id))
	}
	return dst
}

// symbols builds the initial symbols of piece (Word::add in merge_word):
// known bytes, with unknown ones dropped or replaced by unk.
func (m *bpe) symbols(piece string, syms []int32) []int32 {
	unkPending := false
	for i := 0; i < len(piece); i++ {
		id := m.byteID[piece[i]]
		if id >= 0 {
			if unkPending {
				syms = append(syms, m.unk)
				unkPending = false
			}
			syms = append(syms, id)
			continue
		}
		if m.unk < 0 {
			continue // no unk token: Hugging Face drops the byte
		}
		if unkPending && !m.fuse {
			syms = append(syms, m.unk)
		}
		unkPending = true
	}
	if unkPending {
		syms = append(syms, m.unk)
	}
	return syms
}

// merge applies merges to piece by rank, lowest first, leftmost among equal
// ranks (Word::merge_all), and appends the result to dst.
func (m *bpe) merge(dst []int32, piece string, sc *scratch) []int32 {
	syms := m.symbols(piece, sc.syms[:0])
	sc.syms = syms
	if len(syms) <= m.linear {
		return append(dst, m.mergeLinear(syms, sc)...)
	}
	return m.mergeHeap(dst, syms, sc)
}

// mergeLinear keeps the rank of every adjacent pair and merges the minimum
// until none is left: O(n²) but fastest for the short pieces of real text.
func (m *bpe) mergeLinear(syms []int32, sc *scratch) []int32 {
	if len(syms) < 2 {
		return syms
	}
	ranks := sc.ranks[:0]
	for i := 0; i+1 < len(syms); i++ {
		ranks = append(ranks, m.lookup(syms[i], syms[i+1]))
	}
	sc.ranks = ranks
	for {
		best := noMerge
		at := -1
		for i, r := range ranks {
			if r < best {
				best, at = r, i
			}
		}
		if at < 0 {
			return syms
		}
		syms[at] = int32(uint32(best))
		syms = append(syms[:at+1], syms[at+2:]...)
		ranks = append(ranks[:at], ranks[at+1:]...)
		if at > 0 {
			ranks[at-1] = m.lookup(syms[at-1], syms[at])
		}
		if at < len(ranks) {
			ranks[at] = m.lookup(syms[at], syms[at+1])
		}
	}
}

// mergeHeap is Word::merge_all: a min-heap of candidate merges (rank, then
// position) over a linked list of symbols, O(n log n) for long pieces.
func (m *bpe) mergeHeap(dst []int32, syms []int32, sc *scratch) []int32 {
	n := len(syms)
	prev, next := make([]int32, n), make([]int32, n)
	alive := make([]bool, n)
	for i := range syms {
		prev[i], next[i], alive[i] = int32(i-1), int32(i+1), true
	}
	next[n-1] = -1
	h := mergeHeap(sc.heap[:0])
	for i := 0; i+1 < n; i++ {
		if v := m.lookup(syms[i], syms[i+1]); v != noMerge {
			h = append(h, candidate{rank: uint32(v >> 32), pos: int32(i), id: int32(uint32(v))})
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		top := heap.Pop(&h).(candidate)
		p := top.pos
		if !alive[p] || next[p] < 0 {
			continue
		}
		q := next[p]
		// A stale entry: the pair at p no longer merges into top.id.
		if v := m.lookup(syms[p], syms[q]); v == noMerge || int32(uint32(v)) != top.id {
			continue
		}
		syms[p] = top.id
		alive[q] = false
		next[p] = next[q]
		if next[q] >= 0 {
			prev[next[q]] = p
		}
		if pp := prev[p]; pp >= 0 {
			if v := m.lookup(syms[pp], syms[p]); v != noMerge {
				heap.Push(&h, candidate{rank: uint32(v >> 32), pos: pp, id: int32(uint32(v))})
			}
		}
		if nn := next[p]; nn >= 0 {
			if v := m.lookup(syms[p], syms[nn]); v != noMerge {
				heap.Push(&h, candidate{rank: uint32(v >> 32), pos: p, id: int32(uint32(v))})
			}
		}
	}
	sc.heap = h
	for i := int32(0); i >= 0; i = next[i] {
		dst = append(dst, syms[i])
	}
	return dst
}

type candidate struct {
	rank uint32
	pos  int32
	id   int32
}

type mergeHeap []candidate

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(candidate)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// maxCachedLen is the longest piece (in bytes) kept in the cache, as in
// Hugging Face (MAX_LENGTH).
const maxCachedLen = 256

// defaultCacheEntries bounds the word cache; past it new pieces are merged
// but not stored.
const defaultCacheEntries = 1 << 16

// wordCache maps pieces to their ids, shared by all goroutines using a
// Tokenizer.
type wordCache struct {
	mu  sync.RWMutex
	m   map[string][]int32
	cap int
}

func newWordCache(capacity int) *wordCache {
	return &wordCache{m: make(map[string][]int32), cap: capacity}
}

func (c *wordCache) get(piece string) ([]int32, bool) {
	if c.cap == 0 {
		return nil, false
	}
	c.mu.RLock()
	ids, ok := c.m[piece]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(piece string, ids []int32) {
	if c.cap == 0 {
		return
	}
	c.mu.Lock()
	if len(c.m) < c.cap {
		c.m[piece] = append([]int32(nil), ids...)
	}
	c.mu.Unlock()
}
