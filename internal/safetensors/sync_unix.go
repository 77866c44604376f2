//go:build unix

package safetensors

import "os"

// syncDir flushes dir's entries (a rename into it) to stable storage.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
