package safetensors

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// IndexName is the file that maps tensor names to shards.
const IndexName = "model.safetensors.index.json"

// Set is a checkpoint of one or more shards: a directory holding
// model.safetensors.index.json, or a single model.safetensors.
type Set struct {
	Dir    string
	files  map[string]*File // by shard file name
	byName map[string]string
	names  []string
}

// OpenDir opens the checkpoint in dir: through its index when
// model.safetensors.index.json exists, else model.safetensors. Every shard
// the index names must exist, pass Open's validation and hold exactly the
// tensors the index maps to it; a violation is an error naming the tensor
// and the shard. Close the Set to unmap the shards.
func OpenDir(dir string) (*Set, error) {
	s := &Set{Dir: dir, files: map[string]*File{}, byName: map[string]string{}}
	idx, err := os.ReadFile(filepath.Join(dir, IndexName))
	switch {
	case err == nil:
		ixPath := filepath.Join(dir, IndexName)
		var ix struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(idx, &ix); err != nil {
			return nil, fmt.Errorf("safetensors: %s: %v", ixPath, err)
		}
		if len(ix.WeightMap) == 0 {
			return nil, fmt.Errorf("safetensors: %s: empty weight_map", ixPath)
		}
		names := make([]string, 0, len(ix.WeightMap))
		for name := range ix.WeightMap {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			shard := ix.WeightMap[name]
			if !validShardName(shard) {
				s.Close()
				return nil, fmt.Errorf("safetensors: %s: tensor %q maps to invalid shard name %q", ixPath, name, shard)
			}
			if _, ok := s.files[shard]; !ok {
				f, err := Open(filepath.Join(dir, shard))
				if err != nil {
					s.Close()
					return nil, fmt.Errorf("safetensors: shard %q (holding tensor %q): %w", shard, name, err)
				}
				s.files[shard] = f
			}
			if _, ok := s.files[shard].tensors[name]; !ok {
				s.Close()
				return nil, fmt.Errorf("safetensors: %s maps tensor %q to shard %s, which does not hold it", ixPath, name, shard)
			}
			s.byName[name] = shard
		}
		shards := make([]string, 0, len(s.files))
		for shard := range s.files {
			shards = append(shards, shard)
		}
		sort.Strings(shards)
		for _, shard := range shards {
			for _, n := range s.files[shard].names {
				if s.byName[n] != shard {
					s.Close()
					return nil, fmt.Errorf("safetensors: shard %s holds tensor %q, which %s does not map to it", shard, n, ixPath)
				}
			}
		}
	case os.IsNotExist(err):
		f, err := Open(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			return nil, err
		}
		s.files["model.safetensors"] = f
		for _, n := range f.names {
			s.byName[n] = "model.safetensors"
		}
	default:
		return nil, fmt.Errorf("safetensors: %v", err)
	}
	for n := range s.byName {
		s.names = append(s.names, n)
	}
	sort.Strings(s.names)
	return s, nil
}

// Names returns every tensor name in sorted order.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// Tensor returns the named tensor from whichever shard holds it.
func (s *Set) Tensor(name string) (*Tensor, error) {
	shard, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: checkpoint %s has no tensor %q", s.Dir, name)
	}
	return s.files[shard].Tensor(name)
}

// Close unmaps every shard.
func (s *Set) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// index is the JSON of model.safetensors.index.json.
type index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// WriteSharded writes tensors as a sharded checkpoint in dir (created if
// missing): shard files of at most maxShardBytes tensor bytes each (a larger
// tensor gets a shard of its own; maxShardBytes <= 0 means one shard), named
// model-00001-of-0000N.safetensors as Hugging Face names them, each with the
// given metadata, and model.safetensors.index.json mapping every tensor to
// its shard with "metadata": {"total_size": bytes of all tensors}. Tensors
// are assigned to shards in name order.
//
// Every file is written atomically (see WriteFile) and the index last, and
// no file that already exists in dir is overwritten by a shard: when a
// conventional shard name is taken (by the checkpoint being replaced), the
// new shards are named model-<random tag>-00001-of-0000N.safetensors
// instead. So at every instant the index on disk references one complete
// checkpoint, old or new, and a crash never mixes them. After the new
// index is in place the *.safetensors shards only the previous index
// referenced are removed (best effort); other files in dir are left alone.
func WriteSharded(dir string, tensors []*Tensor, maxShardBytes int64, metadata map[string]string) error {
	if _, _, err := layout(tensors, metadata); err != nil { // validates every tensor and name once
		return err
	}
	sorted := append([]*Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var shards [][]*Tensor
	var cur []*Tensor
	var curBytes, total int64
	for _, t := range sorted {
		sz := int64(len(t.Data))
		total += sz
		if maxShardBytes > 0 && len(cur) > 0 && curBytes+sz > maxShardBytes {
			shards = append(shards, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, t)
		curBytes += sz
	}
	shards = append(shards, cur) // one shard, possibly empty, when there are no tensors
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	names, err := shardNames(dir, len(shards))
	if err != nil {
		return err
	}
	ix := index{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	for i, sh := range shards {
		if err := WriteFile(filepath.Join(dir, names[i]), sh, metadata); err != nil {
			return err
		}
		for _, t := range sh {
			ix.WeightMap[t.Name] = names[i]
		}
	}
	old := oldShards(dir)
	js, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return fmt.Errorf("safetensors: %s: %v", IndexName, err)
	}
	js = append(js, '\n')
	if err := writeAtomic(filepath.Join(dir, IndexName), func(w io.Writer) error {
		_, err := w.Write(js)
		return err
	}); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	for _, n := range old {
		if !keep[n] {
			os.Remove(filepath.Join(dir, n))
		}
	}
	return nil
}

// shardNames returns n shard file names none of which exists in dir.
func shardNames(dir string, n int) ([]string, error) {
	conventional := func(prefix string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%05d-of-%05d.safetensors", prefix, i+1, n)
		}
		return out
	}
	free := func(names []string) bool {
		for _, nm := range names {
			if _, err := os.Lstat(filepath.Join(dir, nm)); !os.IsNotExist(err) {
				return false
			}
		}
		return true
	}
	if names := conventional("model"); free(names) {
		return names, nil
	}
	for range 100 {
		var tag [4]byte
		if _, err := rand.Read(tag[:]); err != nil {
			return nil, fmt.Errorf("safetensors: %w", err)
		}
		if names := conventional("model-" + hex.EncodeToString(tag[:])); free(names) {
			return names, nil
		}
	}
	return nil, fmt.Errorf("safetensors: %s: no free shard file names", dir)
}

// oldShards returns the shard names (plain *.safetensors file names) the
// index in dir references, or nil when there is no readable index.
func oldShards(dir string) []string {
	b, err := os.ReadFile(filepath.Join(dir, IndexName))
	if err != nil {
		return nil
	}
	var ix index
	if json.Unmarshal(b, &ix) != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, shard := range ix.WeightMap {
		if validShardName(shard) && strings.HasSuffix(shard, ".safetensors") && !seen[shard] {
			seen[shard] = true
			out = append(out, shard)
		}
	}
	sort.Strings(out)
	return out
}

// validShardName reports whether an index may name shard: a plain file name
// in the checkpoint's directory.
func validShardName(shard string) bool {
	return shard != "" && filepath.Base(shard) == shard && !strings.HasPrefix(shard, ".") && shard != IndexName
}
