//go:build !unix

package safetensors

// syncDir is a no-op where directories cannot be synced (Windows commits
// a rename's metadata itself).
func syncDir(dir string) error { return nil }
