package main

import (
	"os"

	"gonum.org/v1/plot/vg/vgimg"
)

// writePNG writes the canvas to path through a temporary file.
func writePNG(path string, c vgimg.PngCanvas) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
