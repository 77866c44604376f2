// gen_reference.js writes hf_reference.json: ids and texts produced by
// Hugging Face tokenizers (the Rust core through its official Node.js
// binding, npm package tokenizers@0.23.2, the version cases.json was made
// with) for the package's reference tests.
//
//	npm install tokenizers@0.23.2
//	node gen_reference.js /path/to/deepseek-v3/tokenizer.json example > hf_reference.json
//
// The second argument names a directory that receives the small tokenizer
// of the package example (tokenizer.json, tokenizer_config.json); its
// encodings are among the toys.
//
// It holds (1) random and code-like strings encoded with the real
// DeepSeek-V3 tokenizer, (2) random id sequences decoded with it (token
// boundaries inside UTF-8 characters, so the decoder's U+FFFD handling is
// exercised), and (3) small byte-level BPE tokenizers built here, with added
// tokens using every flag, every Split behaviour, ByteLevel's
// add_prefix_space and use_regex, unk_token, fuse_unk and ignore_merges,
// each with its tokenizer.json and HF's ids and decoded texts.
'use strict';
const { Tokenizer } = require('tokenizers');

let seed = 20250101;
function rnd() { // mulberry32
  seed |= 0; seed = (seed + 0x6D2B79F5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const intn = (n) => Math.floor(rnd() * n);

// ---- byte-level alphabet (GPT-2) ----
const byteRune = [];
{
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  let n = 0;
  for (let b = 0; b < 256; b++) byteRune[b] = bs.includes(b) ? b : 256 + n++;
}
const toBL = (s) => Array.from(Buffer.from(s, 'utf8'), (b) => String.fromCodePoint(byteRune[b])).join('');

// ---- a toy BPE trained on a small corpus ----
const corpus = `The quick brown fox jumps over the lazy dog. The cat and the dog are friends.
func main() { fmt.Println("hello, world") } // hello again
for i := 0; i < 10; i++ { total += values[i] * 2 } // 12345 12345 12345 123 45
naïve café résumé: über straße — “quotes” and ‘apostrophes’.
abcabcabc ababab bcbcbc xyz xyzzy cats dogs category catalog dogma
It's a truth universally acknowledged, that a single man in possession of a good fortune.
`.repeat(3);
const gpt2 = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
function trainBPE(nMerges) {
  const words = new Map();
  for (const m of corpus.matchAll(gpt2)) {
    const w = toBL(m[0]);
    words.set(w, (words.get(w) || 0) + 1);
  }
  let segs = [...words.entries()].map(([w, c]) => [Array.from(w), c]);
  const vocab = {};
  for (let b = 0; b < 256; b++) vocab[String.fromCodePoint(byteRune[b])] = b;
  let next = 256;
  const merges = [];
  for (let k = 0; k < nMerges; k++) {
    const counts = new Map();
    for (const [s, c] of segs) for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] + ' ' + s[i + 1];
      counts.set(key, (counts.get(key) || 0) + c);
    }
    let best = null, bc = 0;
    for (const [key, c] of counts) if (c > bc || (c === bc && key < best)) { best = key; bc = c; }
    if (!best || bc < 2) break;
    const [a, b] = best.split(' ');
    merges.push(best);
    if (!(a + b in vocab)) vocab[a + b] = next++;
    segs = segs.map(([s, c]) => {
      const o = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) { o.push(a + b); i++; } else o.push(s[i]);
      }
      return [o, c];
    });
  }
  return { vocab, merges, next };
}
const toy = trainBPE(220);

function tokJSON({ added = [], pre, vocab = toy.vocab, merges = toy.merges, model = {} }) {
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: pre,
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: Object.assign({
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
      end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab, merges,
    }, model),
  };
}
const byteLevel = (prefix, useRegex) => ({ type: 'ByteLevel', add_prefix_space: prefix, trim_offsets: true, use_regex: useRegex });

function addedList(specs, first) {
  return specs.map((s, i) => Object.assign({
    id: first + i, content: s.content, single_word: false, lstrip: false, rstrip: false,
    normalized: true, special: false,
  }, s));
}

// ---- texts ----
const words = ['the', 'cat', 'dog', 'cats', 'category', 'hello', 'world', 'abc', 'ab', 'bc', 'xyz',
  'naïve', 'café', 'über', 'straße', '世界', 'こんにちは', '😀', 'x', 'Q'];
const seps = [' ', '  ', '   ', '\t', '\n', '\r\n', '\n\n', ' \n ', ',', '.', '-', '--', '_', '!', '?',
  '(', ')', '"', "'", '0', '7', '42', '123', '2024', '3.14', '1-2', '\u00a0', '\u3000', '\u2028', ''];
function randomPhrase(extra, n) {
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = rnd();
    if (r < 0.45) s += pick(words);
    else if (r < 0.85) s += pick(seps);
    else s += pick(extra.length ? extra : seps);
  }
  return s;
}

// Runes across the classes the DeepSeek-V3 patterns test, and random code
// points of assigned, stable blocks.
const runes = Array.from('aZqéßΩжاהüñǅʰ\u0301\u0903\u20dd079²½Ⅻ٣१〇!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«—…、。，！€©°→😀☕\ufffd' +
  '  \t\n\r\v\f\u0085\u00a0\u1680\u2000\u2028\u2029\u202f\u205f\u3000\u200b\u200d\u00ad\u0000\u001b\ufeff' +
  '一世界\u9fa5\u9fa6ぁ\u3040\u309f\u30a0ア\u30ff\u3100ー한');
const blocks = [[0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x52f], [0x590, 0x6ff], [0x900, 0x97f], [0x2000, 0x206f],
  [0x20a0, 0x23ff], [0x2500, 0x27bf], [0x3000, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xff00, 0xffef],
  [0x1f300, 0x1f64f]];
function randomRune() {
  if (rnd() < 0.6) return pick(runes);
  const [lo, hi] = pick(blocks);
  return String.fromCodePoint(lo + intn(hi - lo + 1));
}
const codeWords = ['func', 'return', 'if', 'err', '!=', 'nil', '{', '}', '(', ')', ':=', '==', '//', '/*', '*/',
  'x', 'y1', 'fooBar', 'Baz_qux', '"str"', "'c'", '0x1F', '1e-9', '42', '1234567', '[]byte', '<-', '&&', '||',
  '...', ';', ',', '.', '#include', '<stdio.h>', '->', '=>', '@param', '$var', '%d', '\\n', '`raw`'];
const codeSeps = [' ', '', '\n', '\n\t', '\n\t\t', '\n    ', '  ', '\t', '\r\n', '\n\n', ' \n'];
function randomCode(n) {
  let s = '';
  for (let i = 0; i < n; i++) s += pick(codeWords) + pick(codeSeps);
  return s;
}

(async () => {
  const out = {
    format: 'dsv3-tokenizer-hf-reference/1',
    reference: 'Hugging Face tokenizers 0.23.2 (Rust core via the official Node.js binding, npm tokenizers@0.23.2)',
    generator: 'testdata/gen_reference.js',
  };

  // (1) and (2): the real DeepSeek-V3 tokenizer.
  const ds = Tokenizer.fromFile(process.argv[2]);
  const enc = async (tk, s) => (await tk.encode(s, null, { addSpecialTokens: false })).getIds();
  const dsCases = [];
  for (let i = 0; i < 400; i++) {
    let s = '';
    const n = 1 + intn(30);
    for (let k = 0; k < n; k++) s += randomRune();
    dsCases.push(s);
  }
  for (let i = 0; i < 150; i++) dsCases.push(randomCode(3 + intn(25)));
  for (let i = 0; i < 50; i++) dsCases.push(randomPhrase(['<｜User｜>', '<｜Assistant｜>', '<｜end▁of▁sentence｜>', '<|EOT|>', '<｜tool▁sep｜>', '<｜'], 3 + intn(12)));
  out.deepseek_encode = [];
  for (const s of dsCases) out.deepseek_encode.push({ text: s, ids: await enc(ds, s) });

  const vocabSize = 128815;
  out.deepseek_decode = [];
  for (let i = 0; i < 300; i++) {
    const ids = [];
    const n = 1 + intn(12);
    for (let k = 0; k < n; k++) {
      const r = rnd();
      if (r < 0.5) ids.push(intn(400)); // single bytes and short tokens, often partial UTF-8
      else if (r < 0.9) ids.push(intn(128000));
      else ids.push(128000 + intn(vocabSize - 128000));
    }
    const skip = rnd() < 0.5;
    out.deepseek_decode.push({ ids, skip_special_tokens: skip, text: await ds.decode(ids, skip) });
  }

  // (3) toy tokenizers.
  const first = toy.next;
  const addedSpecs = [
    { content: '<s>', special: true, normalized: false },
    { content: '</s>', special: true, normalized: false },
    { content: '[MASK]', special: true, lstrip: true, rstrip: true, normalized: false },
    { content: '<sep>', lstrip: true },
    { content: '<eol>', rstrip: true },
    { content: 'cat', single_word: true },
    { content: 'dog', single_word: true, special: true, normalized: false },
    { content: '<s>x' },
    { content: 'ab', normalized: false },
    { content: 'abc', normalized: false },
    { content: 'bc', normalized: false },
    { content: ' pad', special: true, normalized: false },
    { content: '世界', special: false, normalized: true, rstrip: true },
  ];
  const added = addedList(addedSpecs, first);
  const extra = addedSpecs.map((a) => a.content).concat(['<s', 'MASK', '[MASK', ' [MASK] ', 'xcat', 'cat_', 'cat1', 'écat', 'dogdog']);
  const toyTexts = ['', ' ', 'Hello world', ' leading', 'trailing  ', 'a  b', '12345 678', 'x-y-z', '1-2-3', '--a--',
    'The cat sat.', 'cats and dogs', 'a cat!', 'cat', '(cat)', 'cat_', 'concatenate', 'dog dog', 'hotdog',
    '<s>hello</s>', '<s>x', 'xx<s>xx', 'abc', 'abcd', 'xabcx', 'ab bc', 'a  [MASK]  b', '[MASK][MASK]', '  [MASK]',
    'x <sep> y', 'x<sep>y', '  <sep>', 'line<eol>   next', '<eol>\n\n', '[MASK] pad', 'x pad', 'pad', '世界 hi',
    'naïve café', 'zzz qqq', 'quiz', 'fizz buzz', ' zzz', 'zz', '\u00a0cat\u00a0', 'cat\u3000dog'];
  for (let i = 0; i < 80; i++) toyTexts.push(randomPhrase(extra, 2 + intn(10)));

  const variants = [];
  variants.push({ name: 'gpt2-added-tokens', json: tokJSON({ added, pre: byteLevel(true, true) }) });
  variants.push({ name: 'bytelevel-plain', json: tokJSON({ added, pre: byteLevel(false, false) }) });
  const behaviors = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];
  for (const b of behaviors) for (const invert of [false, true]) {
    variants.push({
      name: `split-${b}-invert-${invert}`,
      json: tokJSON({ pre: { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: '[0-9]+|-' }, behavior: b, invert },
        byteLevel(false, false)] } }),
    });
  }
  variants.push({
    name: 'split-string-pattern',
    json: tokJSON({ pre: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { String: '-' }, behavior: 'MergedWithNext', invert: false },
      { type: 'Split', pattern: { String: 'ca' }, behavior: 'Isolated', invert: false },
      byteLevel(false, false)] } }),
  });
  variants.push({
    name: 'split-empty-string',
    json: tokJSON({ pre: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { String: '' }, behavior: 'MergedWithPrevious', invert: false },
      byteLevel(false, false)] } }),
  });
  variants.push({
    name: 'split-empty-matches',
    json: tokJSON({ pre: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: 'x*' }, behavior: 'Isolated', invert: false },
      { type: 'Split', pattern: { Regex: '\\b' }, behavior: 'Removed', invert: false },
      byteLevel(false, false)] } }),
  });
  variants.push({
    name: 'split-then-prefix-space',
    json: tokJSON({ added, pre: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '\\p{N}{1,3}' }, behavior: 'Isolated', invert: false },
      byteLevel(true, false)] } }),
  });
  // Vocabularies without the bytes of 'z' and 'q'.
  const zq = new Set([String.fromCodePoint(byteRune[0x7a]), String.fromCodePoint(byteRune[0x71])]);
  const vocabNoZQ = {};
  for (const [k, v] of Object.entries(toy.vocab)) if (![...k].some((c) => zq.has(c))) vocabNoZQ[k] = v;
  vocabNoZQ['<unk>'] = toy.next + 100;
  const mergesNoZQ = toy.merges.filter((m) => ![...m].some((c) => zq.has(c)));
  for (const fuse of [false, true]) {
    variants.push({
      name: `unk-fuse-${fuse}`,
      json: tokJSON({ pre: byteLevel(false, true), vocab: vocabNoZQ, merges: mergesNoZQ, model: { unk_token: '<unk>', fuse_unk: fuse } }),
    });
  }
  variants.push({ name: 'no-unk-drops-bytes', json: tokJSON({ pre: byteLevel(false, true), vocab: vocabNoZQ, merges: mergesNoZQ }) });
  const vocabWhole = Object.assign({}, toy.vocab, { [toBL(' zzz')]: toy.next + 200, [toBL('quiz')]: toy.next + 201 });
  for (const ignore of [false, true]) {
    variants.push({ name: `ignore-merges-${ignore}`, json: tokJSON({ pre: byteLevel(false, true), vocab: vocabWhole, model: { ignore_merges: ignore } }) });
  }
  // The package example: the toy vocabulary with DeepSeek-V3's
  // pre-tokenizer and four of its added tokens.
  const dsJSON = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
  const exampleJSON = tokJSON({
    added: addedList([
      { content: '<｜begin▁of▁sentence｜>', special: true, normalized: false },
      { content: '<｜end▁of▁sentence｜>', special: true, normalized: false },
      { content: '<｜User｜>' },
      { content: '<｜Assistant｜>' },
    ], toy.next),
    pre: dsJSON.pre_tokenizer,
  });
  exampleJSON.post_processor = dsJSON.post_processor;
  variants.push({ name: 'example', json: exampleJSON, texts: ['<｜User｜>The cat ate 12345 fish.<｜Assistant｜>'] });
  if (process.argv[3]) {
    const fs = require('fs');
    fs.mkdirSync(process.argv[3], { recursive: true });
    fs.writeFileSync(process.argv[3] + '/tokenizer.json', JSON.stringify(exampleJSON, null, 1) + '\n');
    fs.writeFileSync(process.argv[3] + '/tokenizer_config.json', JSON.stringify({
      add_bos_token: true, add_eos_token: false,
      bos_token: { __type: 'AddedToken', content: '<｜begin▁of▁sentence｜>', lstrip: false, normalized: true, rstrip: false, single_word: false },
      eos_token: { __type: 'AddedToken', content: '<｜end▁of▁sentence｜>', lstrip: false, normalized: true, rstrip: false, single_word: false },
      tokenizer_class: 'LlamaTokenizerFast',
    }, null, 1) + '\n');
  }
  // Merges as pairs rather than "a b" strings.
  variants.push({ name: 'merges-as-pairs', json: tokJSON({ added, pre: byteLevel(false, true), merges: toy.merges.map((m) => m.split(' ')) }) });

  // The toy vocabulary and merges are stored once; a variant that uses them
  // has "vocab": "toy_vocab" and "merges": "toy_merges" in its model.
  out.toy_vocab = toy.vocab;
  out.toy_merges = toy.merges;
  out.toys = [];
  for (const v of variants) {
    const tk = Tokenizer.fromString(JSON.stringify(v.json));
    const stored = JSON.parse(JSON.stringify(v.json));
    if (v.json.model.vocab === toy.vocab) stored.model.vocab = 'toy_vocab';
    if (v.json.model.merges === toy.merges) stored.model.merges = 'toy_merges';
    const cases = [];
    for (const s of (v.texts || []).concat(toyTexts)) {
      const ids = await enc(tk, s);
      // decoded is left out when it equals text, decoded_skip_special when it
      // equals decoded.
      const c = { text: s, ids };
      const dec = await tk.decode(ids, false), skip = await tk.decode(ids, true);
      if (dec !== s) c.decoded = dec;
      if (skip !== dec) c.decoded_skip_special = skip;
      cases.push(c);
    }
    out.toys.push({ name: v.name, tokenizer: stored, cases });
  }
  process.stdout.write(JSON.stringify(out) + '\n');
})();
