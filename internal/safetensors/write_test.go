package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

func f32bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// TestWriteReferenceBytes checks Write against byte strings the reference
// library (huggingface/safetensors, tensor.rs tests) produces for the same
// input: compact JSON, "__metadata__" first, header padded with spaces to a
// multiple of 8.
func TestWriteReferenceBytes(t *testing.T) {
	data := f32bytes(0, 1, 2, 3, 4, 5)
	cases := []struct {
		name     string
		tensors  []*Tensor
		metadata map[string]string
		header   string // before padding
		pad      int
	}{
		{"serialization", []*Tensor{{Name: "attn.0", DType: F32, Shape: []int{1, 2, 3}, Data: data}}, nil,
			`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`, 0},
		{"forced alignment", []*Tensor{{Name: "attn0", DType: F32, Shape: []int{1, 1, 2, 3}, Data: data}}, nil,
			`{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}`, 7},
		{"empty", nil, nil, `{}`, 6},
		{"empty with metadata", nil, map[string]string{"framework": "pt"}, `{"__metadata__":{"framework":"pt"}}`, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want []byte
			want = binary.LittleEndian.AppendUint64(want, uint64(len(c.header)+c.pad))
			want = append(want, c.header...)
			want = append(want, strings.Repeat(" ", c.pad)...)
			for _, tn := range c.tensors {
				want = append(want, tn.Data...)
			}
			var buf bytes.Buffer
			if err := Write(&buf, c.tensors, c.metadata); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("got\n%q\nwant\n%q", buf.Bytes(), want)
			}
		})
	}
}

// randomTensors returns tensors of every dtype with random shapes and bytes.
func randomTensors(r *rand.Rand, n int) []*Tensor {
	dts := []DType{F64, F32, F16, BF16, F8E4M3, F8E5M2, I64, I32, I16, I8, U64, U32, U16, U8, Bool}
	out := make([]*Tensor, n)
	for i := range out {
		dt := dts[r.IntN(len(dts))]
		shape := make([]int, r.IntN(4))
		for k := range shape {
			shape[k] = r.IntN(5)
		}
		t := &Tensor{Name: fmt.Sprintf("model.layers.%d.w%d", r.IntN(3), i), DType: dt, Shape: shape}
		t.Data = make([]byte, t.NumElements()*dt.Size())
		for k := range t.Data {
			t.Data[k] = byte(r.Uint32())
		}
		out[i] = t
	}
	return out
}

// independentParse reads a file with a plain JSON decode, for checking Write
// without trusting Parse.
func independentParse(t *testing.T, b []byte) (map[string]struct {
	DType   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Offsets [2]int `json:"data_offsets"`
}, map[string]string, []byte) {
	t.Helper()
	n := int(binary.LittleEndian.Uint64(b))
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		t.Fatal(err)
	}
	var md map[string]string
	ents := map[string]struct {
		DType   string `json:"dtype"`
		Shape   []int  `json:"shape"`
		Offsets [2]int `json:"data_offsets"`
	}{}
	for k, v := range raw {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &md); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var e struct {
			DType   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(v, &e); err != nil {
			t.Fatal(err)
		}
		ents[k] = e
	}
	return ents, md, b[8+n:]
}

func TestWriteRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 20; trial++ {
		ts := randomTensors(r, 1+r.IntN(12))
		md := map[string]string{"format": "pt", "step": strconv.Itoa(trial), "quote\"<&>": "ünïcode\n"}
		path := filepath.Join(t.TempDir(), "x.safetensors")
		if err := WriteFile(path, ts, md); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		hlen := binary.LittleEndian.Uint64(b)
		if hlen%8 != 0 {
			t.Errorf("header length %d is not a multiple of 8", hlen)
		}
		ents, gotMD, body := independentParse(t, b)
		if len(ents) != len(ts) || len(gotMD) != len(md) {
			t.Fatalf("%d tensors, %d metadata; want %d, %d", len(ents), len(gotMD), len(ts), len(md))
		}
		for k, v := range md {
			if gotMD[k] != v {
				t.Errorf("metadata %q = %q, want %q", k, gotMD[k], v)
			}
		}
		// Reference layout: descending dtype alignment, then name, packed
		// from offset 0; so each tensor is aligned to its element size.
		want := append([]*Tensor(nil), ts...)
		sort.Slice(want, func(i, j int) bool {
			if ri, rj := want[i].DType.rank(), want[j].DType.rank(); ri != rj {
				return ri > rj
			}
			return want[i].Name < want[j].Name
		})
		off := 0
		for _, tn := range want {
			e := ents[tn.Name]
			if e.DType != string(tn.DType) || !equalInts(e.Shape, tn.Shape) || !bytes.Equal(body[e.Offsets[0]:e.Offsets[1]], tn.Data) {
				t.Errorf("%s: wrote %+v", tn.Name, e)
			}
			if e.Offsets != [2]int{off, off + len(tn.Data)} {
				t.Errorf("%s: data_offsets %v, want [%d, %d]", tn.Name, e.Offsets, off, off+len(tn.Data))
			}
			if (8+int(hlen)+e.Offsets[0])%tn.DType.Size() != 0 {
				t.Errorf("%s: %s data at file offset %d is misaligned", tn.Name, tn.DType, 8+int(hlen)+e.Offsets[0])
			}
			off += len(tn.Data)
		}
		// Parse reads back what was written.
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range ts {
			g, err := f.Tensor(tn.Name)
			if err != nil {
				t.Fatal(err)
			}
			if g.DType != tn.DType || !equalInts(g.Shape, tn.Shape) || !bytes.Equal(g.Data, tn.Data) {
				t.Errorf("%s: read back %s %v", tn.Name, g.DType, g.Shape)
			}
		}
		f.Close()
		// Deterministic: the same tensors in another order give the same bytes.
		r.Shuffle(len(ts), func(i, j int) { ts[i], ts[j] = ts[j], ts[i] })
		var buf bytes.Buffer
		if err := Write(&buf, ts, md); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), b) {
			t.Errorf("trial %d: output depends on the input order", trial)
		}
	}
}

func TestWriteRejects(t *testing.T) {
	ok := &Tensor{Name: "ok", DType: U8, Shape: []int{2}, Data: []byte{1, 2}}
	cases := []struct {
		name    string
		tensors []*Tensor
		md      map[string]string
		want    string
	}{
		{"size mismatch", []*Tensor{ok, {Name: "w", DType: F32, Shape: []int{2, 2}, Data: make([]byte, 12)}}, nil, `tensor "w": F32 [2 2] needs 16 bytes, has 12`},
		{"unknown dtype", []*Tensor{{Name: "w", DType: "F4", Shape: []int{1}, Data: []byte{0}}}, nil, `tensor "w": unknown dtype "F4"`},
		{"negative dim", []*Tensor{{Name: "w", DType: U8, Shape: []int{-1}}}, nil, `tensor "w": shape [-1] has negative dimension`},
		{"duplicate", []*Tensor{ok, ok}, nil, `tensor "ok" appears twice`},
		{"empty name", []*Tensor{{DType: U8, Shape: []int{}, Data: []byte{0}}}, nil, "empty name"},
		{"reserved name", []*Tensor{{Name: "__metadata__", DType: U8, Shape: []int{}, Data: []byte{0}}}, nil, "reserved"},
		{"bad UTF-8 name", []*Tensor{{Name: "w\xff", DType: U8, Shape: []int{}, Data: []byte{0}}}, nil, "UTF-8"},
		{"bad UTF-8 metadata", []*Tensor{ok}, map[string]string{"k": "\xff"}, `__metadata__ entry "k"`},
		{"nil tensor", []*Tensor{ok, nil}, nil, "tensor 1 is nil"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, c.tensors, c.md)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the error", buf.Len())
			}
		})
	}
}

// failingWriter fails after n bytes.
type failingWriter struct {
	w io.Writer
	n int
}

var errInjected = errors.New("injected write failure")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k, _ := f.w.Write(p[:f.n])
		f.n = 0
		return k, errInjected
	}
	f.n -= len(p)
	return f.w.Write(p)
}

// bigTensors returns tensors of about 3 MB, more than WriteFile buffers.
func bigTensors(seed byte) []*Tensor {
	a := &Tensor{Name: "a", DType: F32, Shape: []int{512, 1024}, Data: make([]byte, 512*1024*4)}
	b := &Tensor{Name: "b", DType: BF16, Shape: []int{512, 1024}, Data: make([]byte, 512*1024*2)}
	for i := range a.Data {
		a.Data[i] = byte(i) ^ seed
	}
	for i := range b.Data {
		b.Data[i] = byte(i*3) ^ seed
	}
	return []*Tensor{a, b}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFileFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := WriteFile(path, bigTensors(1), map[string]string{"v": "old"}); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { writeHook = nil }()
	for _, at := range []int{0, 7, 100, 1 << 20, 3 << 20} { // in the header, in the data, past the buffer
		writeHook = func(w io.Writer) io.Writer { return &failingWriter{w, at} }
		err := WriteFile(path, bigTensors(2), map[string]string{"v": "new"})
		if !errors.Is(err, errInjected) {
			t.Fatalf("failure after %d bytes: error %v", at, err)
		}
		now, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(now, old) {
			t.Fatalf("failure after %d bytes changed the existing file", at)
		}
		if ls := listDir(t, dir); len(ls) != 1 {
			t.Errorf("failure after %d bytes left %v", at, ls)
		}
	}
	writeHook = nil
	// A rejected tensor touches nothing.
	bad := append(bigTensors(2), &Tensor{Name: "c", DType: F32, Shape: []int{3}, Data: make([]byte, 11)})
	if err := WriteFile(path, bad, nil); err == nil {
		t.Fatal("invalid tensor accepted")
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, old) {
		t.Fatal("a rejected write changed the file")
	}
	// A successful write replaces it.
	if err := WriteFile(path, bigTensors(2), map[string]string{"v": "new"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata["v"] != "new" {
		t.Errorf("metadata %v after the successful write", f.Metadata)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if ls := listDir(t, dir); len(ls) != 1 {
		t.Errorf("directory holds %v", ls)
	}
}

// crashWriter kills the process after n bytes of the call-th file written,
// as a power cut or OOM kill would.
type crashWriter struct {
	w io.Writer
	n int
}

func (c *crashWriter) Write(p []byte) (int, error) {
	if len(p) >= c.n {
		c.w.Write(p[:c.n])
		os.Exit(3)
	}
	c.n -= len(p)
	return c.w.Write(p)
}

// TestCrashHelper is the child process of the crash tests.
func TestCrashHelper(t *testing.T) {
	target := os.Getenv("DSV3_SAFETENSORS_CRASH")
	if target == "" {
		t.Skip("child process of the crash tests")
	}
	var call, file, at int
	fmt.Sscanf(os.Getenv("DSV3_SAFETENSORS_CRASH_AT"), "%d %d", &file, &at)
	writeHook = func(w io.Writer) io.Writer {
		call++
		if call == file {
			return &crashWriter{w, at}
		}
		return w
	}
	var err error
	if strings.HasSuffix(target, ".safetensors") {
		err = WriteFile(target, bigTensors(2), map[string]string{"v": "new"})
	} else {
		err = WriteSharded(target, bigTensors(2), 1<<20, map[string]string{"v": "new"})
	}
	t.Fatalf("the write finished (err %v) before the injected crash", err)
}

func crashChild(t *testing.T, target string, file, at int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), "DSV3_SAFETENSORS_CRASH="+target, fmt.Sprintf("DSV3_SAFETENSORS_CRASH_AT=%d %d", file, at))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("child did not crash as planned: %v\n%s", err, out)
	}
}

func TestWriteFileCrashKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := WriteFile(path, bigTensors(1), map[string]string{"v": "old"}); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path)
	for _, at := range []int{5, 2 << 20} {
		crashChild(t, path, 1, at)
		now, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(now, old) {
			t.Fatalf("crash after %d bytes changed the existing file", at)
		}
	}
}

func TestWriteSharded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	r := rand.New(rand.NewPCG(3, 4))
	ts := randomTensors(r, 40)
	ts = append(ts, bigTensors(5)...) // two tensors larger than a shard
	const max = 1 << 10
	if err := WriteSharded(dir, ts, max, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	conventional := regexp.MustCompile(`^model-[0-9]{5}-of-[0-9]{5}\.safetensors$`)
	tagged := regexp.MustCompile(`^model-[0-9a-f]{8}-[0-9]{5}-of-[0-9]{5}\.safetensors$`)
	checkSharded := func(ts []*Tensor, pattern *regexp.Regexp) map[string]string {
		t.Helper()
		var ix struct {
			Metadata struct {
				TotalSize int64 `json:"total_size"`
			} `json:"metadata"`
			WeightMap map[string]string `json:"weight_map"`
		}
		b, err := os.ReadFile(filepath.Join(dir, IndexName))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &ix); err != nil {
			t.Fatal(err)
		}
		var total int64
		perShard := map[string]int64{}
		shards := map[string]bool{}
		for _, tn := range ts {
			total += int64(len(tn.Data))
			sh := ix.WeightMap[tn.Name]
			perShard[sh] += int64(len(tn.Data))
			shards[sh] = true
		}
		if ix.Metadata.TotalSize != total || len(ix.WeightMap) != len(ts) {
			t.Errorf("index: total_size %d for %d tensors, want %d for %d", ix.Metadata.TotalSize, len(ix.WeightMap), total, len(ts))
		}
		for sh, n := range perShard {
			if !pattern.MatchString(sh) || !strings.HasSuffix(sh, fmt.Sprintf("-of-%05d.safetensors", len(shards))) {
				t.Errorf("shard name %s", sh)
			}
			ents, md, _ := independentParse(t, mustRead(t, filepath.Join(dir, sh)))
			if n > max && len(ents) != 1 {
				t.Errorf("shard %s holds %d bytes in %d tensors", sh, n, len(ents))
			}
			if md["format"] != "pt" {
				t.Errorf("shard %s metadata %v", sh, md)
			}
		}
		s, err := OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if len(s.Names()) != len(ts) {
			t.Errorf("OpenDir lists %d tensors, want %d", len(s.Names()), len(ts))
		}
		for _, tn := range ts {
			g, err := s.Tensor(tn.Name)
			if err != nil {
				t.Fatal(err)
			}
			if g.DType != tn.DType || !equalInts(g.Shape, tn.Shape) || !bytes.Equal(g.Data, tn.Data) {
				t.Errorf("%s read back wrong", tn.Name)
			}
		}
		return ix.WeightMap
	}
	first := checkSharded(ts, conventional)
	// Replacing in place with a checkpoint of the same layout: the
	// conventional names are taken, so the new shards get a tag, and the
	// old shards are removed afterwards.
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
	mut := make([]*Tensor, len(ts))
	for i, tn := range ts {
		c := *tn
		c.Data = append([]byte(nil), tn.Data...)
		for k := range c.Data {
			c.Data[k] ^= 0x5a
		}
		mut[i] = &c
	}
	if err := WriteSharded(dir, mut, max, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	second := checkSharded(mut, tagged)
	for name, sh := range second {
		if sh == first[name] {
			t.Errorf("replacement wrote %s to %s; the old checkpoint had %s", name, sh, first[name])
			break
		}
	}
	for sh := range uniq(first) {
		if _, err := os.Stat(filepath.Join(dir, sh)); !os.IsNotExist(err) {
			t.Errorf("old shard %s still present", sh)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Errorf("unrelated file removed: %v", err)
	}
	// And again: back to the conventional names, the tagged ones removed.
	if err := WriteSharded(dir, ts, max, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	third := checkSharded(ts, conventional)
	if ls := listDir(t, dir); len(ls) != len(uniq(third))+2 {
		t.Errorf("directory holds %v", ls)
	}
	// A smaller checkpoint: one shard.
	ts2 := randomTensors(r, 10)
	if err := WriteSharded(dir, ts2, 0, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	if got := uniq(checkSharded(ts2, conventional)); len(got) != 1 {
		t.Errorf("maxShardBytes 0 wrote shards %v", got)
	}
	// Invalid input is rejected before anything is written.
	if err := WriteSharded(dir, append(ts2, &Tensor{Name: "bad", DType: F32, Shape: []int{1}}), max, nil); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("invalid tensor: %v", err)
	}
}

func uniq(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWriteShardedCrash crashes a replacement of a sharded checkpoint in
// every file it writes (the shards, then the index) and checks that the
// directory still opens as the complete old checkpoint.
func TestWriteShardedCrash(t *testing.T) {
	for file := 1; file <= 3; file++ { // shard 1 (a, 2 MB), shard 2 (b, 1 MB), the index
		dir := filepath.Join(t.TempDir(), "ckpt")
		if err := WriteSharded(dir, bigTensors(1), 1<<20, map[string]string{"v": "old"}); err != nil {
			t.Fatal(err)
		}
		crashChild(t, dir, file, 10)
		s, err := OpenDir(dir)
		if err != nil {
			t.Fatalf("crash in file %d: %v", file, err)
		}
		for _, want := range bigTensors(1) {
			g, err := s.Tensor(want.Name)
			if err != nil || !bytes.Equal(g.Data, want.Data) {
				t.Errorf("crash in file %d: tensor %s is not the old one (%v)", file, want.Name, err)
			}
		}
		s.Close()
	}
}

// TestWriteFileWhileMapped replaces a file that is open (memory-mapped) and
// checks that the open File still reads the old bytes.
func TestWriteFileWhileMapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	old := bigTensors(1)
	if err := WriteFile(path, old, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteFile(path, bigTensors(2), nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range old {
		g, _ := f.Tensor(want.Name)
		if !bytes.Equal(g.Data, want.Data) {
			t.Errorf("mapped tensor %s changed under the reader", want.Name)
		}
	}
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if a, _ := g.Tensor("a"); bytes.Equal(a.Data, old[0].Data) {
		t.Error("a new Open still sees the old file")
	}
}

// TestWriteShardedKeepsForeignFiles: an index that names a non-shard file
// does not make WriteSharded delete it.
func TestWriteShardedKeepsForeignFiles(t *testing.T) {
	dir := writeDir(t, map[string][]byte{
		IndexName:     indexJSON(map[string]string{"a": "config.json"}),
		"config.json": []byte(`{"hidden_size": 256}`),
	})
	if err := WriteSharded(dir, bigTensors(1)[1:], 0, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "config.json")); err != nil || string(b) != `{"hidden_size": 256}` {
		t.Errorf("config.json: %q, %v", b, err)
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
