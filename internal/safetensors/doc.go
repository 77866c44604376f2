// Package safetensors reads and writes the safetensors format of Hugging Face
// (https://github.com/huggingface/safetensors), the format of the DeepSeek-V3
// checkpoints: FP8 (F8_E4M3) projection weights with their F32
// weight_scale_inv block scales (report §3.3, 128×128 blocks), BF16
// embeddings and norms, F32 router biases.
//
// # Format
//
// A file is
//
//	N        8 bytes, little-endian uint64: the header length
//	header   N bytes of UTF-8 JSON: {"name": {"dtype": "F32",
//	         "shape": [rows, cols], "data_offsets": [begin, end]}, ...}
//	         plus an optional "__metadata__" map of strings
//	data     the tensors' bytes, little-endian, C order; [begin, end) is
//	         relative to the start of this section
//
// A tensor of shape [d0, d1, ...] and dtype size s occupies exactly
// d0·d1·…·s bytes (1·s for a scalar, shape []). A sharded checkpoint adds
// model.safetensors.index.json, whose "weight_map" maps every tensor name
// to the shard file holding it.
//
// # Reading
//
// Open memory-maps a file read-only and Parse checks an in-memory one;
// Tensor.Data aliases the mapping, so tensor bytes are never copied (the
// mapping is read-only: writing through Data faults). Every header is
// validated, as strictly as the reference library does, before any tensor is
// exposed: the declared header length is at most MaxHeaderLen and inside the
// file; the header is valid UTF-8 and one JSON object without duplicate
// names; each entry has a known dtype (DType.Size > 0), non-negative
// dimensions, and exactly product(shape) × dtype size bytes; the byte ranges
// lie inside the data section, do not overlap, and cover it without gaps or
// trailing bytes. A failure returns an error naming the file and the tensor
// with the expected and actual values, never a panic and never a read
// outside the file. OpenDir opens a checkpoint directory through its index
// and checks that every shard holds the tensors the index maps to it.
//
// Tensor.Float32s decodes F32, BF16 and F16 tensors into a new []float32;
// FP8 weights stay bytes (Tensor.Bytes) for the fp8 package, which dequantises
// them with their block scales.
//
// # Writing
//
// Write serialises tensors in the reference library's layout and order:
// sorted by dtype alignment (largest first), then by name, so every tensor
// starts at a multiple of its element size; "__metadata__" first when given;
// the header padded with spaces to a multiple of 8 bytes. The output is a
// deterministic function of the tensors and metadata (a file written by the
// reference library from the same tensors is reproduced byte for byte).
//
// WriteFile replaces a file atomically: it writes a temporary file in the
// same directory, syncs it, renames it over the target and syncs the
// directory, so a crash leaves either the old file or the new one, never a
// half-written one. WriteSharded writes a sharded checkpoint (shards plus
// model.safetensors.index.json) the same way; the index is renamed into place
// last and no file the current index references is overwritten before that,
// so the directory always holds one complete checkpoint (a crash may leave
// hidden temporary files or unreferenced new shards behind, never a broken
// checkpoint). Because files are replaced by rename and never rewritten in
// place, a process that has the old checkpoint memory-mapped keeps reading
// it intact while a new one is written.
package safetensors
