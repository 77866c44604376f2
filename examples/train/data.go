package main

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// corpus is the training text as token ids, split into training and
// validation parts.
type corpus struct {
	train, val []int32
	files      int
	bytes      int
	source     string
}

// goRoot returns the Go installation's root, from `go env GOROOT` or the
// GOROOT variable.
func goRoot() (string, error) {
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		if r := strings.TrimSpace(string(out)); r != "" {
			return r, nil
		}
	}
	if r := os.Getenv("GOROOT"); r != "" {
		return r, nil
	}
	return "", fmt.Errorf("cannot find the Go standard library: `go env GOROOT` failed and GOROOT is unset; pass -data")
}

// textFiles lists the files under root (or root itself) to read: .go
// files for the default corpus, every regular file otherwise, sorted.
func textFiles(root string, goOnly bool) ([]string, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{root}, nil
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if goOnly && (d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if goOnly && !strings.HasSuffix(p, ".go") {
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// isValidation puts about one file in valEvery into the validation split,
// by a hash of its path relative to the corpus root: deterministic and
// independent of the file order.
func isValidation(rel string, valEvery uint32) bool {
	h := fnv.New32a()
	h.Write([]byte(rel))
	return h.Sum32()%valEvery == 0
}

// loadCorpus reads up to maxBytes of text from root (the Go standard
// library's src when root is ""), encodes it with enc, and splits it.
func loadCorpus(root string, maxBytes int, enc func([]byte) []int32) (*corpus, error) {
	goOnly := false
	if root == "" {
		gr, err := goRoot()
		if err != nil {
			return nil, err
		}
		root = filepath.Join(gr, "src")
		goOnly = true
	}
	files, err := textFiles(root, goOnly)
	if err != nil {
		return nil, fmt.Errorf("reading the corpus at %s: %w", root, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no text files under %s", root)
	}
	c := &corpus{source: root}
	var trainBuf, valBuf bytes.Buffer
	for _, f := range files {
		if maxBytes > 0 && c.bytes >= maxBytes {
			break
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, f)
		c.files++
		c.bytes += len(b)
		if len(files) > 1 && isValidation(rel, 20) {
			valBuf.Write(b)
		} else {
			trainBuf.Write(b)
		}
	}
	if valBuf.Len() == 0 { // a single file: its last 5% validate
		b := trainBuf.Bytes()
		cut := len(b) * 95 / 100
		valBuf.Write(b[cut:])
		trainBuf.Truncate(cut)
	}
	c.train, c.val = enc(trainBuf.Bytes()), enc(valBuf.Bytes())
	return c, nil
}

// byteTokens is the default byte-level tokenisation: one token per byte.
func byteTokens(b []byte) []int32 {
	ids := make([]int32, len(b))
	for i, c := range b {
		ids[i] = int32(c)
	}
	return ids
}
