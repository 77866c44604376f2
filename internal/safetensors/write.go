package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"unicode/utf8"
)

// layout validates tensors and returns them in file order (descending dtype
// alignment, then name, as the reference library writes them) with the
// padded header.
func layout(tensors []*Tensor, metadata map[string]string) ([]*Tensor, []byte, error) {
	order := make([]*Tensor, len(tensors))
	seen := make(map[string]bool, len(tensors))
	for i, t := range tensors {
		if t == nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %d is nil", i)
		}
		if err := t.check(); err != nil {
			return nil, nil, err
		}
		if seen[t.Name] {
			return nil, nil, fmt.Errorf("safetensors: tensor %q appears twice", t.Name)
		}
		seen[t.Name] = true
		order[i] = t
	}
	sort.Slice(order, func(i, j int) bool {
		ri, rj := order[i].DType.rank(), order[j].DType.rank()
		if ri != rj {
			return ri > rj
		}
		return order[i].Name < order[j].Name
	})
	var h bytes.Buffer
	h.WriteByte('{')
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, nil, fmt.Errorf("safetensors: %s entry %q is not valid UTF-8", metadataKey, k)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		writeJSONString(&h, metadataKey)
		h.WriteString(":{")
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeJSONString(&h, k)
			h.WriteByte(':')
			writeJSONString(&h, metadata[k])
		}
		h.WriteByte('}')
	}
	var off int64
	for i, t := range order {
		if i > 0 || len(metadata) > 0 {
			h.WriteByte(',')
		}
		writeJSONString(&h, t.Name)
		h.WriteString(`:{"dtype":`)
		writeJSONString(&h, string(t.DType))
		h.WriteString(`,"shape":[`)
		for k, d := range t.Shape {
			if k > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := off + int64(len(t.Data))
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeaderLen {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds the %d-byte limit", h.Len(), MaxHeaderLen)
	}
	return order, h.Bytes(), nil
}

// writeJSONString appends s as a JSON string, escaping only what JSON
// requires (as the reference library's serde_json does).
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)           // a valid UTF-8 string always encodes
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// Write writes tensors to w as one safetensors file with the optional
// string metadata (omitted when empty). Every tensor is validated first (a
// unique, non-empty UTF-8 name other than "__metadata__", a known dtype,
// non-negative dimensions, exactly product(shape) × dtype size bytes); an
// invalid one is an error naming it, returned before anything is written.
// The layout is deterministic and the reference library's: see the package
// documentation.
func Write(w io.Writer, tensors []*Tensor, metadata map[string]string) error {
	order, hdr, err := layout(tensors, metadata)
	if err != nil {
		return err
	}
	return writeLaid(w, order, hdr)
}

func writeLaid(w io.Writer, order []*Tensor, hdr []byte) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, t := range order {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("writing tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// WriteFile writes tensors to path as Write does, atomically: the bytes go
// to a temporary file in the same directory, which is synced, renamed over
// path, and the directory synced. On any error, and after a crash at any
// point, path holds its previous content (or still does not exist); a crash
// may leave a hidden temporary file (".<name>.tmp-*") behind.
func WriteFile(path string, tensors []*Tensor, metadata map[string]string) error {
	order, hdr, err := layout(tensors, metadata)
	if err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error { return writeLaid(w, order, hdr) })
}

// writeHook, when set (by tests), wraps the temporary file's writer.
var writeHook func(io.Writer) io.Writer

// writeAtomic writes path through fill: temporary file, sync, rename, sync
// the directory.
func writeAtomic(path string, fill func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("safetensors: writing %s: %w", path, err)
		}
	}()
	var w io.Writer = tmp
	if writeHook != nil {
		w = writeHook(w)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if err = fill(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}
