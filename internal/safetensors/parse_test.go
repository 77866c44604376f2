package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

// file assembles a safetensors file from a header string and a data section,
// independently of Write.
func file(header string, body []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, body...)
}

// seq returns n bytes 0, 1, 2, ...
func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// validFiles are well-formed files covering every dtype DeepSeek uses,
// scalars, empty tensors and metadata.
func validFiles() map[string][]byte {
	return map[string][]byte{
		"f32": file(`{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}`, seq(24)),
		"mixed": file(`{"__metadata__":{"format":"pt"},`+
			`"w":{"dtype":"F8_E4M3","shape":[3,4],"data_offsets":[40,52]},`+
			`"w_scale_inv":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},`+
			`"norm":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},`+
			`"h":{"dtype":"F16","shape":[2,2],"data_offsets":[32,40]},`+
			`"ids":{"dtype":"I64","shape":[2],"data_offsets":[4,20]},`+
			`"pos":{"dtype":"I32","shape":[1],"data_offsets":[20,24]},`+
			`"e5":{"dtype":"F8_E5M2","shape":[2],"data_offsets":[52,54]},`+
			`"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[54,57]},`+
			`"tok":{"dtype":"U8","shape":[1],"data_offsets":[57,58]}}`, seq(58)),
		"scalar-and-empty": file(`{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0,5],"data_offsets":[8,8]}}  `, seq(8)),
		"none":             file(`{}      `, nil),
	}
}

func TestParseValid(t *testing.T) {
	f, err := Parse("mixed", validFiles()["mixed"])
	if err != nil {
		t.Fatal(err)
	}
	body := seq(58)
	want := []struct {
		name  string
		dt    DType
		shape []int
		b, e  int
	}{
		{"e5", F8E5M2, []int{2}, 52, 54},
		{"h", F16, []int{2, 2}, 32, 40},
		{"ids", I64, []int{2}, 4, 20},
		{"mask", Bool, []int{3}, 54, 57},
		{"norm", BF16, []int{4}, 24, 32},
		{"pos", I32, []int{1}, 20, 24},
		{"tok", U8, []int{1}, 57, 58},
		{"w", F8E4M3, []int{3, 4}, 40, 52},
		{"w_scale_inv", F32, []int{1, 1}, 0, 4},
	}
	names := f.Names()
	if len(names) != len(want) {
		t.Fatalf("names %v, want %d of them", names, len(want))
	}
	for i, w := range want {
		if names[i] != w.name {
			t.Errorf("name %d = %q, want %q", i, names[i], w.name)
		}
		tn, err := f.Tensor(w.name)
		if err != nil {
			t.Fatal(err)
		}
		if tn.DType != w.dt || !equalInts(tn.Shape, w.shape) || !bytes.Equal(tn.Data, body[w.b:w.e]) {
			t.Errorf("%s: got %s %v %v, want %s %v %v", w.name, tn.DType, tn.Shape, tn.Data, w.dt, w.shape, body[w.b:w.e])
		}
		if cap(tn.Data) != len(tn.Data) {
			t.Errorf("%s: Data has capacity %d beyond its %d bytes", w.name, cap(tn.Data), len(tn.Data))
		}
	}
	if f.Metadata["format"] != "pt" || len(f.Metadata) != 1 {
		t.Errorf("metadata %v", f.Metadata)
	}
	if _, err := f.Tensor("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing tensor: %v", err)
	}

	g, err := Parse("scalar", validFiles()["scalar-and-empty"])
	if err != nil {
		t.Fatal(err)
	}
	s, _ := g.Tensor("s")
	z, _ := g.Tensor("z")
	if s.NumElements() != 1 || len(s.Data) != 8 || z.NumElements() != 0 || len(z.Data) != 0 {
		t.Errorf("scalar %v %d bytes, empty %v %d bytes", s.Shape, len(s.Data), z.Shape, len(z.Data))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// brokenCases are malformed files, each with the strings its error must
// contain: the tensor (or file) it concerns and what is wrong.
func brokenCases() []struct {
	name string
	data []byte
	want []string
} {
	good := validFiles()["f32"]
	le := func(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }
	return []struct {
		name string
		data []byte
		want []string
	}{
		{"empty file", nil, []string{"case.safetensors", "too short"}},
		{"truncated length", good[:5], []string{"case.safetensors", "too short"}},
		{"truncated header", good[:40], []string{"case.safetensors", "runs past the end"}},
		{"truncated data", good[:len(good)-1], []string{`"a"`, "outside the 23-byte data section"}},
		{"absurd header length", append(le(1<<62), good[8:]...), []string{"case.safetensors", "exceeds the 100000000-byte limit"}},
		{"header length max uint64", append(le(math.MaxUint64), good[8:]...), []string{"case.safetensors", "exceeds"}},
		{"header length just over limit", append(le(MaxHeaderLen+1), good[8:]...), []string{"case.safetensors", "exceeds"}},
		{"overlapping offsets", file(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}`, seq(24)),
			[]string{`"b" [8, 24) overlaps tensor "a" [0, 16)`}},
		{"identical offsets", file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, seq(4)),
			[]string{"overlaps", `"a"`, `"b"`}},
		{"empty tensor inside another", file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"z":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}}`, seq(4)),
			[]string{`"z" [2, 2) overlaps tensor "a"`}},
		{"offset past end", file(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, seq(8)), []string{`"a"`, "[0, 16] outside the 8-byte data section"}},
		{"begin after end", file(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, seq(4)), []string{`"a"`, "[4, 0] outside"}},
		{"negative offset", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, seq(1)), []string{`"a"`, "outside"}},
		{"huge offset", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,99999999999999999999]}}`, seq(1)), []string{`"a"`, "malformed entry"}},
		{"three offsets", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, seq(1)), []string{`"a"`, "data_offsets has 3 values, want 2"}},
		{"gap", file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}}`, seq(10)),
			[]string{`"b" starts at byte 6`, "[4, 6) unused"}},
		{"leading gap", file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, seq(6)), []string{`"a" starts at byte 2`}},
		{"trailing bytes", file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, seq(6)), []string{"case.safetensors", "cover 4 bytes of the 6-byte data section"}},
		{"unknown dtype", file(`{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, seq(16)), []string{`"a"`, `unknown dtype "F128"`}},
		{"lowercase dtype", file(`{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, seq(4)), []string{`"a"`, `unknown dtype "f32"`}},
		{"dtype not a string", file(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, seq(4)), []string{`"a"`, "malformed entry"}},
		{"shape size mismatch", file(`{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}`, seq(20)), []string{`"a"`, "F32 [2 3] needs 24 bytes", "give 20"}},
		{"dtype size mismatch", file(`{"a":{"dtype":"BF16","shape":[4],"data_offsets":[0,4]}}`, seq(4)), []string{`"a"`, "BF16 [4] needs 8 bytes"}},
		{"negative dim", file(`{"a":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,0]}}`, nil), []string{`"a"`, "negative dimension -1"}},
		{"two negative dims", file(`{"a":{"dtype":"F32","shape":[-2,-2],"data_offsets":[0,16]}}`, seq(16)), []string{`"a"`, "negative dimension"}},
		{"shape overflow", file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil), []string{`"a"`, "overflows"}},
		{"fractional dim", file(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, seq(4)), []string{`"a"`, "malformed entry"}},
		{"missing shape", file(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, seq(4)), []string{`"a"`, "no shape"}},
		{"missing dtype", file(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, seq(4)), []string{`"a"`, "no dtype"}},
		{"missing offsets", file(`{"a":{"dtype":"F32","shape":[1]}}`, seq(4)), []string{`"a"`, "no data_offsets"}},
		{"unknown field", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"strides":[1]}}`, seq(4)), []string{`"a"`, "malformed entry", "strides"}},
		{"entry not an object", file(`{"a":5}`, nil), []string{`"a"`, "malformed entry"}},
		{"malformed JSON", file(`{"a":{"dtype":"F32",`, nil), []string{"case.safetensors", "malformed JSON header"}},
		{"unterminated object", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}`, seq(1)), []string{"case.safetensors", "malformed JSON header"}},
		{"JSON array", file(`[1,2,3]`, nil), []string{"case.safetensors", "does not start with '{'"}},
		{"leading space", file(` {}`, nil), []string{"case.safetensors", "does not start with '{'"}},
		{"empty header", file(``, nil), []string{"case.safetensors", "does not start with '{'"}},
		{"trailing garbage", file(`{}xyz`, nil), []string{"case.safetensors", "trailing data"}},
		{"two objects", file(`{}{}`, nil), []string{"case.safetensors", "trailing data"}},
		{"duplicate name", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, seq(2)),
			[]string{`"a" appears twice`}},
		{"invalid UTF-8", file("{\"a\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", seq(1)), []string{"case.safetensors", "UTF-8"}},
		{"metadata not strings", file(`{"__metadata__":{"n":1}}`, nil), []string{"__metadata__", "not a map of strings"}},
		{"metadata a list", file(`{"__metadata__":["x"]}`, nil), []string{"__metadata__"}},
	}
}

func TestParseBroken(t *testing.T) {
	for _, c := range brokenCases() {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse("case.safetensors", c.data)
			if err == nil {
				t.Fatalf("no error; tensors %v", f.Names())
			}
			if f != nil {
				t.Errorf("a File came back with the error %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// The same bytes on disk fail the same way through Open.
			p := filepath.Join(t.TempDir(), "case.safetensors")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if f, err := Open(p); err == nil {
				f.Close()
				t.Errorf("Open accepted what Parse rejected")
			} else if !strings.Contains(err.Error(), c.want[0]) {
				t.Errorf("Open error %q does not contain %q", err, c.want[0])
			}
		})
	}
}

// writeDir writes files (name -> content) into a new directory.
func writeDir(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func indexJSON(m map[string]string) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": m})
	return b
}

func TestOpenDirBroken(t *testing.T) {
	shardA := file(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, seq(2))
	shardB := file(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"c":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, seq(2))
	cases := []struct {
		name  string
		files map[string][]byte
		want  []string
	}{
		{"index names a missing file", map[string][]byte{
			IndexName:        indexJSON(map[string]string{"a": "s1.safetensors", "b": "missing.safetensors"}),
			"s1.safetensors": shardA,
		}, []string{`"missing.safetensors"`, `"b"`, "no such file"}},
		{"index names a tensor the shard lacks", map[string][]byte{
			IndexName:        indexJSON(map[string]string{"a": "s1.safetensors", "x": "s1.safetensors"}),
			"s1.safetensors": shardA,
		}, []string{`tensor "x" to shard s1.safetensors, which does not hold it`}},
		{"tensor mapped to the wrong shard", map[string][]byte{
			IndexName:        indexJSON(map[string]string{"a": "s2.safetensors", "b": "s2.safetensors", "c": "s2.safetensors"}),
			"s1.safetensors": shardA, "s2.safetensors": shardB,
		}, []string{`tensor "a"`, "s2.safetensors"}},
		{"shard holds a tensor the index omits", map[string][]byte{
			IndexName:        indexJSON(map[string]string{"a": "s1.safetensors", "b": "s2.safetensors"}),
			"s1.safetensors": shardA, "s2.safetensors": shardB,
		}, []string{`s2.safetensors holds tensor "c"`}},
		{"shard path escapes the directory", map[string][]byte{
			IndexName: indexJSON(map[string]string{"a": "../s1.safetensors"}),
		}, []string{`"a"`, `invalid shard name "../s1.safetensors"`}},
		{"hidden shard name", map[string][]byte{
			IndexName: indexJSON(map[string]string{"a": ".s1.safetensors"}),
		}, []string{`"a"`, "invalid shard name"}},
		{"broken shard", map[string][]byte{
			IndexName:        indexJSON(map[string]string{"a": "s1.safetensors"}),
			"s1.safetensors": shardA[:len(shardA)-1],
		}, []string{`"s1.safetensors"`, `"a"`, "outside"}},
		{"malformed index", map[string][]byte{IndexName: []byte(`{"weight_map": {"a": 3}}`)}, []string{IndexName}},
		{"empty weight_map", map[string][]byte{IndexName: []byte(`{"weight_map": {}}`)}, []string{IndexName, "empty weight_map"}},
		{"no checkpoint", map[string][]byte{"other.txt": nil}, []string{"model.safetensors", "no such file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeDir(t, c.files)
			s, err := OpenDir(dir)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	// A consistent two-shard checkpoint opens.
	dir := writeDir(t, map[string][]byte{
		IndexName:        indexJSON(map[string]string{"a": "s1.safetensors", "b": "s2.safetensors", "c": "s2.safetensors"}),
		"s1.safetensors": shardA, "s2.safetensors": shardB,
	})
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := strings.Join(s.Names(), ","); got != "a,b,c" {
		t.Errorf("names %s", got)
	}
	c, err := s.Tensor("c")
	if err != nil || !bytes.Equal(c.Data, seq(2)[1:2]) {
		t.Errorf("c = %v, %v", c, err)
	}
	if _, err := s.Tensor("d"); err == nil || !strings.Contains(err.Error(), `"d"`) {
		t.Errorf("missing tensor: %v", err)
	}
}

// inside reports whether sub lies within buf's memory.
func inside(sub, buf []byte) bool {
	if len(sub) == 0 {
		return true
	}
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	s0 := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return s0 >= b0 && s0+uintptr(cap(sub)) <= b0+uintptr(len(buf))
}

// FuzzParse checks that Parse never panics, that every tensor it returns
// lies inside the input with the byte length its shape and dtype imply and
// no overlap, and that a parsed file survives Write and Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, b := range validFiles() {
		f.Add(b)
	}
	for _, c := range brokenCases() {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pf, err := Parse("fuzz", data)
		if err != nil {
			if pf != nil {
				t.Fatal("File and error both returned")
			}
			return
		}
		var covered int
		var ts []*Tensor
		for _, n := range pf.Names() {
			tn, err := pf.Tensor(n)
			if err != nil {
				t.Fatal(err)
			}
			if !inside(tn.Data, data) {
				t.Fatalf("tensor %q data lies outside the input", n)
			}
			if len(tn.Data) != tn.NumElements()*tn.DType.Size() || tn.DType.Size() == 0 {
				t.Fatalf("tensor %q: %s %v with %d bytes", n, tn.DType, tn.Shape, len(tn.Data))
			}
			covered += len(tn.Data)
			if n == "" {
				return // valid in the format, refused by Write: skip the round trip
			}
			ts = append(ts, tn)
		}
		hdrEnd := 8 + int(binary.LittleEndian.Uint64(data))
		if covered != len(data)-hdrEnd {
			t.Fatalf("tensors cover %d bytes of a %d-byte data section", covered, len(data)-hdrEnd)
		}
		var buf bytes.Buffer
		if err := Write(&buf, ts, pf.Metadata); err != nil {
			t.Fatalf("re-writing a parsed file: %v", err)
		}
		pg, err := Parse("rewritten", buf.Bytes())
		if err != nil {
			t.Fatalf("re-parsing a written file: %v", err)
		}
		if len(pg.Names()) != len(ts) || len(pg.Metadata) != len(pf.Metadata) {
			t.Fatalf("round trip: %d tensors, %d metadata -> %d, %d", len(ts), len(pf.Metadata), len(pg.Names()), len(pg.Metadata))
		}
		for k, v := range pf.Metadata {
			if pg.Metadata[k] != v {
				t.Fatalf("metadata %q: %q -> %q", k, v, pg.Metadata[k])
			}
		}
		for _, a := range ts {
			b, err := pg.Tensor(a.Name)
			if err != nil {
				t.Fatal(err)
			}
			if a.DType != b.DType || !equalInts(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("round trip changed tensor %q", a.Name)
			}
		}
	})
}
