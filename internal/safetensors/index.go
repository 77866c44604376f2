package safetensors

import (
	"encoding/json"
	"fmt"
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
// the index names must exist and hold exactly the tensors the index maps to
// it.
func OpenDir(dir string) (*Set, error) {
	s := &Set{Dir: dir, files: map[string]*File{}, byName: map[string]string{}}
	idx, err := os.ReadFile(filepath.Join(dir, IndexName))
	switch {
	case err == nil:
		var ix struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(idx, &ix); err != nil {
			return nil, fmt.Errorf("safetensors: %s: %v", filepath.Join(dir, IndexName), err)
		}
		if len(ix.WeightMap) == 0 {
			return nil, fmt.Errorf("safetensors: %s: empty weight_map", filepath.Join(dir, IndexName))
		}
		for name, shard := range ix.WeightMap {
			if shard == "" || filepath.Base(shard) != shard || strings.HasPrefix(shard, ".") {
				s.Close()
				return nil, fmt.Errorf("safetensors: %s: tensor %q maps to invalid shard name %q", IndexName, name, shard)
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
				return nil, fmt.Errorf("safetensors: index maps tensor %q to %s, which does not hold it", name, shard)
			}
			s.byName[name] = shard
		}
		for shard, f := range s.files {
			for _, n := range f.names {
				if _, ok := s.byName[n]; !ok {
					s.byName[n] = shard
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
