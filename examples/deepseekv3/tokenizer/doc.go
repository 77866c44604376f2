// Package tokenizer implements the DeepSeek-V3 tokenizer, the byte-level BPE
// of a Hugging Face tokenizer.json, reproducing the ids of Hugging Face's
// Rust tokenizers. (DeepSeek-V3 technical report, arXiv 2412.19437, §4.1:
// byte-level BPE with an extended vocabulary of 128K tokens, and a
// pre-tokenizer whose tokens may combine punctuation and line breaks.)
//
// # Encoding
//
// Encode(text) runs the same steps as tokenizers' encode(text,
// add_special_tokens=False):
//
//  1. Added tokens first. The entries of "added_tokens" ("<｜begin▁of▁sentence｜>",
//     "<｜User｜>", "<|EOT|>", ...) are found in the raw text, even inside a
//     word, leftmost first and longest at a position; the non-normalized
//     ones are matched first and the normalized ones in the gaps. Each
//     token's lstrip, rstrip and single_word flags apply as in Hugging Face.
//     A match becomes its id; the text between matches goes on.
//  2. The pre-tokenizer's Split steps run one after another, each on every
//     piece the previous one produced. DeepSeek-V3 has three, all
//     "Isolated" (matches and the text between them both become pieces):
//     \p{N}{1,3} (digits grouped in threes from the left), a run of CJK
//     ideographs and kana, and
//     [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+ |
//     [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ |  ?[\p{P}\p{S}]+[\r\n]* |
//     \s*[\r\n]+ | \s+(?!\S) | \s+.
//     The lookahead sees the end of the current piece, so a digit split
//     ends a whitespace run; \s is Unicode whitespace.
//  3. ByteLevel maps every byte of a piece to one rune of GPT-2's byte
//     alphabet (" " is "Ġ", "\n" is "Ċ"); add_prefix_space and use_regex
//     are honoured as set in the file (DeepSeek-V3: both false).
//  4. BPE: the piece starts as single bytes and the merge of lowest rank
//     (its index in "merges") among adjacent pairs is applied, leftmost
//     first among equal ranks, until no pair merges. Results are cached per
//     piece.
//
// Added tokens are not special to Encode: "<｜end▁of▁sentence｜>" in the text
// becomes id 1. EncodeWithSpecialTokens also prepends BOS (and appends EOS)
// as tokenizer_config.json asks, the way Python transformers does.
//
// # Regular expressions
//
// The Split patterns need a lookahead and Unicode classes, which Go's regexp
// lacks, so a pattern runs on github.com/dlclark/regexp2, a backtracking
// engine like Hugging Face's Oniguruma. DeepSeek-V3's three patterns are
// recognised and run by hand-written scanners instead, which the tests check
// against regexp2 (every BMP rune, random and real text, a fuzz target).
// With them, encoding 1 MB of Go source runs at roughly 20-30 MB per CPU
// second with an empty word cache and 35-45 warm, against 2-3 with regexp2
// (BenchmarkEncodeGoSource, one core). Unicode categories come from Go's unicode
// package, whose Unicode version may differ from Oniguruma's for the newest
// characters.
//
// # Testing against Hugging Face
//
// The tests compare with ids produced by Hugging Face tokenizers (the Rust
// library, 0.23.2): the fixture cases of the real DeepSeek-V3 tokenizer, 600
// random and code-like strings and 300 random id sequences to decode
// (testdata/hf_reference.json, made by testdata/gen_reference.js), and small
// tokenizers that exercise every added-token flag, every Split behaviour,
// ByteLevel's options, unk_token, fuse_unk and ignore_merges.
//
// # Decoding
//
// Decode(ids, skipSpecialTokens) maps each id to its token string, the
// ByteLevel decoder turns each string back to bytes (a string with runes
// outside the byte alphabet, such as an added token, stands for its own
// UTF-8), joins all bytes and reads them as UTF-8, replacing each maximal
// ill-formed subsequence with U+FFFD as Rust's String::from_utf8_lossy does.
// So decode(encode(s)) == s for every valid UTF-8 s. TokenBytes gives the raw
// bytes of one token for streaming output.
//
// # Errors and limits
//
// Load and FromJSON reject malformed files with an error naming the field:
// bad JSON, a model that is not BPE, merges whose parts or result are not in
// the vocabulary, duplicate or conflicting ids, invalid regexes, and
// components this package does not implement (normalizers other than an
// empty Sequence, pre-tokenizers other than Split and ByteLevel, a
// ByteLevel step that is not last, decoders other than ByteLevel, BPE
// dropout, continuing_subword_prefix, end_of_word_suffix, byte_fallback).
// Encoding and decoding never fail: any string encodes (bytes of invalid
// UTF-8 are tokenized like the rest, each counting as U+FFFD for the
// split rules), and ids that name no token decode to nothing, as in Hugging
// Face.
//
// A Tokenizer is safe for concurrent use.
package tokenizer
