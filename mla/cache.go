package mla

import (
	"fmt"

	"github.com/dsv3go/dsv3"
)

// Cache is one layer's compressed KV cache, owned by the caller: for each
// of Seqs independent sequences and each position below Capacity, the
// normalised key-value latent c^KV_t (kv_a_layernorm output, kv_lora_rank
// values, eq. 1) and the RoPE'd shared key k^R_t (qk_rope_head_dim values,
// eq. 3), nothing else. A model keeps one Cache per layer.
//
// A Cache is not safe for concurrent use; different caches are independent.
type Cache struct {
	seqs, capacity int
	dc, dr         int
	latent, rope   dsv3.Matrix // [seqs·capacity, dc], [seqs·capacity, dr]
	lens           []int
}

// NewCache returns an empty cache for layers of cfg's shape, holding seqs
// sequences of up to capacity tokens: CacheBytesPerToken(cfg)·seqs·capacity
// bytes.
func NewCache(cfg Config, seqs, capacity int) (*Cache, error) {
	if cfg.KVLoraRank <= 0 || cfg.QKRopeHeadDim <= 0 {
		return nil, fmt.Errorf("mla: cache for kv_lora_rank = %d, qk_rope_head_dim = %d, want both > 0", cfg.KVLoraRank, cfg.QKRopeHeadDim)
	}
	if seqs <= 0 {
		return nil, fmt.Errorf("mla: cache for %d sequences, want > 0", seqs)
	}
	if capacity <= 0 {
		return nil, fmt.Errorf("mla: cache capacity %d, want > 0", capacity)
	}
	return &Cache{
		seqs: seqs, capacity: capacity, dc: cfg.KVLoraRank, dr: cfg.QKRopeHeadDim,
		latent: dsv3.NewMatrix(seqs*capacity, cfg.KVLoraRank),
		rope:   dsv3.NewMatrix(seqs*capacity, cfg.QKRopeHeadDim),
		lens:   make([]int, seqs),
	}, nil
}

// Seqs returns the number of sequences the cache holds.
func (c *Cache) Seqs() int { return c.seqs }

// Capacity returns the most tokens a sequence can hold.
func (c *Cache) Capacity() int { return c.capacity }

// Len returns the number of cached tokens of sequence seq (positions
// 0 … Len−1), or −1 if seq is out of range.
func (c *Cache) Len(seq int) int {
	if seq < 0 || seq >= c.seqs {
		return -1
	}
	return c.lens[seq]
}

// Truncate keeps the first n tokens of sequence seq (n <= Len(seq)), as
// when speculative tokens are rejected or a sequence is reused.
func (c *Cache) Truncate(seq, n int) error {
	if seq < 0 || seq >= c.seqs {
		return fmt.Errorf("mla: cache sequence %d out of range [0, %d)", seq, c.seqs)
	}
	if n < 0 || n > c.lens[seq] {
		return fmt.Errorf("mla: truncate sequence %d to %d tokens, it holds %d", seq, n, c.lens[seq])
	}
	c.lens[seq] = n
	return nil
}

// Latent returns the cached normalised latents of sequence seq, a view of
// [Len(seq), kv_lora_rank].
func (c *Cache) Latent(seq int) dsv3.Matrix {
	return c.latent.View(seq*c.capacity, 0, c.lens[seq], c.dc)
}

// RopeKey returns the cached RoPE'd shared keys of sequence seq, a view of
// [Len(seq), qk_rope_head_dim].
func (c *Cache) RopeKey(seq int) dsv3.Matrix {
	return c.rope.View(seq*c.capacity, 0, c.lens[seq], c.dr)
}

// Bytes returns the memory the cache's values take.
func (c *Cache) Bytes() int { return 4 * c.seqs * c.capacity * (c.dc + c.dr) }

// check returns an error unless the cache fits a layer of cfg.
func (c *Cache) check(cfg Config) error {
	if c == nil {
		return fmt.Errorf("mla: nil cache")
	}
	if c.dc != cfg.KVLoraRank || c.dr != cfg.QKRopeHeadDim {
		return fmt.Errorf("mla: cache holds %d latent + %d rope values per token, the layer needs kv_lora_rank %d + qk_rope_head_dim %d", c.dc, c.dr, cfg.KVLoraRank, cfg.QKRopeHeadDim)
	}
	return nil
}
