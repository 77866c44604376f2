// Package safetensors reads and writes the safetensors format of Hugging Face
// (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON mapping each tensor name to its dtype,
// shape and [begin, end) byte range within the data section that follows,
// and an optional "__metadata__" map of strings.
//
// Files are memory-mapped read-only; Tensor.Data aliases the mapping, so
// tensor bytes are never copied. Every header is validated before any tensor
// is exposed: the header length is bounded, offsets lie inside the data
// section, ranges do not overlap, and each byte size equals the product of
// the shape times the dtype size. Errors name the file and the tensor.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

// DType is a tensor element type, spelled as in the safetensors header.
type DType string

// The dtypes DeepSeek checkpoints use.
const (
	F64     DType = "F64"
	F32     DType = "F32"
	F16     DType = "F16"
	BF16    DType = "BF16"
	F8E4M3  DType = "F8_E4M3"
	F8E5M2  DType = "F8_E5M2"
	I64     DType = "I64"
	I32     DType = "I32"
	I16     DType = "I16"
	I8      DType = "I8"
	U8      DType = "U8"
	Bool    DType = "BOOL"
	unknown DType = ""
)

// Size returns the size in bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case F8E4M3, F8E5M2, I8, U8, Bool:
		return 1
	}
	return 0
}

// MaxHeaderLen bounds the JSON header (100 MB, the reference library's
// limit); a larger declared length is an error, not an allocation.
const MaxHeaderLen = 100 << 20

// Tensor is one tensor of a file: its name, dtype, shape and raw
// little-endian bytes (aliasing the file's mapping).
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
	Path     string
	Metadata map[string]string
	tensors  map[string]*Tensor
	names    []string
	unmap    func() error
}

type headerEntry struct {
	DType   string  `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
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

// Parse validates data as a whole safetensors file held in memory. The
// returned tensors alias data.
func Parse(name string, data []byte) (*File, error) {
	return parse(name, data)
}

func parse(path string, data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("safetensors: %s: %d bytes is too short for the 8-byte header length", path, len(data))
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
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("safetensors: %s: header is not a JSON object: %v", path, err)
	}
	f := &File{Path: path, tensors: make(map[string]*Tensor, len(raw))}
	type span struct {
		name       string
		begin, end int64
	}
	spans := make([]span, 0, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors: %s: __metadata__ is not a map of strings: %v", path, err)
			}
			continue
		}
		var e headerEntry
		dec := json.NewDecoder(strings.NewReader(string(msg)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: malformed entry: %v", path, name, err)
		}
		dt := DType(e.DType)
		if dt.Size() == 0 {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: unknown dtype %q", path, name, e.DType)
		}
		if len(e.Offsets) != 2 {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: data_offsets has %d values, want 2", path, name, len(e.Offsets))
		}
		b, en := e.Offsets[0], e.Offsets[1]
		if b < 0 || en < b || en > int64(len(body)) {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: data_offsets [%d, %d] outside the %d-byte data section", path, name, b, en, len(body))
		}
		count := int64(1)
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors: %s: tensor %q: negative dimension %d", path, name, d)
			}
			if d > 0 && count > math.MaxInt64/8/d {
				return nil, fmt.Errorf("safetensors: %s: tensor %q: shape %v overflows", path, name, e.Shape)
			}
			count *= d
			shape[i] = int(d)
		}
		if want := count * int64(dt.Size()); want != en-b {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: %s %v needs %d bytes, data_offsets give %d", path, name, dt, e.Shape, want, en-b)
		}
		f.tensors[name] = &Tensor{Name: name, DType: dt, Shape: shape, Data: body[b:en:en]}
		spans = append(spans, span{name, b, en})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	for i := 1; i < len(spans); i++ {
		if spans[i].begin < spans[i-1].end {
			return nil, fmt.Errorf("safetensors: %s: tensor %q [%d, %d) overlaps tensor %q [%d, %d)", path, spans[i].name, spans[i].begin, spans[i].end, spans[i-1].name, spans[i-1].begin, spans[i-1].end)
		}
	}
	for _, s := range spans {
		f.names = append(f.names, s.name)
	}
	sort.Strings(f.names)
	return f, nil
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
