package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"unicode/utf8"
)

// DType is a tensor element type, spelled as in the safetensors header.
type DType string

// The dtypes of the safetensors format. DeepSeek checkpoints use F32, BF16,
// F16, F8_E4M3, F8_E5M2, I64, I32, U8 and BOOL.
const (
	F64    DType = "F64"
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	U8     DType = "U8"
	Bool   DType = "BOOL"
)

// Size returns the size in bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case F8E4M3, F8E5M2, I8, U8, Bool:
		return 1
	}
	return 0
}

// rank orders dtypes by alignment as the reference library's Dtype enum
// does; Write lays tensors out by descending rank.
func (d DType) rank() int {
	switch d {
	case Bool:
		return 0
	case U8:
		return 1
	case I8:
		return 2
	case F8E5M2:
		return 3
	case F8E4M3:
		return 4
	case I16:
		return 5
	case U16:
		return 6
	case F16:
		return 7
	case BF16:
		return 8
	case I32:
		return 9
	case U32:
		return 10
	case F32:
		return 11
	case F64:
		return 12
	case I64:
		return 13
	case U64:
		return 14
	}
	return -1
}

// MaxHeaderLen bounds the JSON header, as the reference library does
// (100,000,000 bytes); a larger declared length is an error, not an
// allocation.
const MaxHeaderLen = 100_000_000

// metadataKey is the header entry that holds free-form string metadata.
const metadataKey = "__metadata__"

// Tensor is one tensor: its name, dtype, shape and raw little-endian bytes
// in C order. Tensors read from a File alias its mapping; Write accepts
// tensors built by hand or by NewTensor.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements returns the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open safetensors file.
type File struct {
	// Path is the file's path (or the name given to Parse).
	Path string
	// Metadata is the header's "__metadata__" map, nil when absent.
	Metadata map[string]string
	tensors  map[string]*Tensor
	names    []string
	unmap    func() error
}

type headerEntry struct {
	DType   *string  `json:"dtype"`
	Shape   *[]int64 `json:"shape"`
	Offsets *[]int64 `json:"data_offsets"`
}

// Open maps path and validates its header.
func Open(path string) (*File, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := parse(path, data)
	if err != nil {
		unmap()
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse validates data as a whole safetensors file held in memory; name is
// used in errors. The returned tensors alias data.
func Parse(name string, data []byte) (*File, error) {
	return parse(name, data)
}

func parse(path string, data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("safetensors: %s: %d bytes is too short for the 8-byte header length (truncated?)", path, len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderLen {
		return nil, fmt.Errorf("safetensors: %s: header length %d exceeds the %d-byte limit", path, n, MaxHeaderLen)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("safetensors: %s: header length %d runs past the end of the %d-byte file (truncated?)", path, n, len(data))
	}
	hdr := data[8 : 8+n]
	body := data[8+n:]
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, fmt.Errorf("safetensors: %s: header does not start with '{'", path)
	}
	if !utf8.Valid(hdr) {
		return nil, fmt.Errorf("safetensors: %s: header is not valid UTF-8", path)
	}
	entries, err := headerObject(hdr)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: malformed JSON header: %v", path, err)
	}
	f := &File{Path: path, tensors: make(map[string]*Tensor, len(entries))}
	type span struct {
		name       string
		begin, end int64
	}
	spans := make([]span, 0, len(entries))
	for _, ent := range entries {
		name, msg := ent.name, ent.value
		if name == metadataKey {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors: %s: %s is not a map of strings: %v", path, metadataKey, err)
			}
			continue
		}
		var e headerEntry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: malformed entry: %v", path, name, err)
		}
		switch {
		case e.DType == nil:
			return nil, fmt.Errorf("safetensors: %s: tensor %q: entry has no dtype", path, name)
		case e.Shape == nil:
			return nil, fmt.Errorf("safetensors: %s: tensor %q: entry has no shape", path, name)
		case e.Offsets == nil:
			return nil, fmt.Errorf("safetensors: %s: tensor %q: entry has no data_offsets", path, name)
		}
		dt := DType(*e.DType)
		if dt.Size() == 0 {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: unknown dtype %q", path, name, *e.DType)
		}
		offs := *e.Offsets
		if len(offs) != 2 {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: data_offsets has %d values, want 2", path, name, len(offs))
		}
		b, en := offs[0], offs[1]
		if b < 0 || en < b || en > int64(len(body)) {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: data_offsets [%d, %d] outside the %d-byte data section", path, name, b, en, len(body))
		}
		dims := *e.Shape
		count := int64(1)
		shape := make([]int, len(dims))
		for i, d := range dims {
			if d < 0 {
				return nil, fmt.Errorf("safetensors: %s: tensor %q: shape %v has negative dimension %d", path, name, dims, d)
			}
			if d > 0 && count > math.MaxInt64/8/d || int64(int(d)) != d {
				return nil, fmt.Errorf("safetensors: %s: tensor %q: shape %v overflows", path, name, dims)
			}
			count *= d
			shape[i] = int(d)
		}
		if want := count * int64(dt.Size()); want != en-b {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: %s %v needs %d bytes, data_offsets [%d, %d] give %d", path, name, dt, dims, want, b, en, en-b)
		}
		f.tensors[name] = &Tensor{Name: name, DType: dt, Shape: shape, Data: body[b:en:en]}
		spans = append(spans, span{name, b, en})
	}
	// The ranges must tile the data section: sorted by offset, each begins
	// where the previous ended, and the last ends at the end of the file.
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		if spans[i].end != spans[j].end {
			return spans[i].end < spans[j].end
		}
		return spans[i].name < spans[j].name
	})
	var end int64
	for i, s := range spans {
		switch {
		case s.begin < end:
			p := spans[i-1]
			return nil, fmt.Errorf("safetensors: %s: tensor %q [%d, %d) overlaps tensor %q [%d, %d)", path, s.name, s.begin, s.end, p.name, p.begin, p.end)
		case s.begin > end:
			return nil, fmt.Errorf("safetensors: %s: tensor %q starts at byte %d of the data section, leaving bytes [%d, %d) unused (gap)", path, s.name, s.begin, end, s.begin)
		}
		end = s.end
	}
	if end != int64(len(body)) {
		return nil, fmt.Errorf("safetensors: %s: the tensors cover %d bytes of the %d-byte data section (%d trailing bytes)", path, end, len(body), int64(len(body))-end)
	}
	for _, s := range spans {
		f.names = append(f.names, s.name)
	}
	sort.Strings(f.names)
	return f, nil
}

type rawEntry struct {
	name  string
	value json.RawMessage
}

// headerObject splits a JSON object into its entries in order, rejecting
// duplicate names and anything after the closing brace but spaces.
func headerObject(hdr []byte) ([]rawEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(hdr))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("starts with %v, not an object", tok)
	}
	var out []rawEntry
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("key %v is not a string", tok)
		}
		if seen[name] {
			return nil, fmt.Errorf("name %q appears twice", name)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("entry %q: %v", name, err)
		}
		out = append(out, rawEntry{name, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("trailing data after the object")
	}
	return out, nil
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Tensor returns the named tensor, or an error naming it and the file.
func (f *File) Tensor(name string) (*Tensor, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", f.Path, name)
	}
	return t, nil
}

// Close unmaps the file; tensors read from it must not be used afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap = nil
	return err
}

// readAll is the fallback for platforms without mmap.
func readAll(path string) ([]byte, func() error, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return nil }, nil
}
