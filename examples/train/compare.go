package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// readLog reads a run's log.jsonl.
func readLog(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for line := 1; sc.Scan(); line++ {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	return out, nil
}

// compareRuns reads the log.jsonl of several run directories (or log
// files), prints each run's summary and the relative gaps to the first,
// and draws their training loss (smoothed), validation loss and mean
// MaxVio in one picture.
func compareRuns(spec, png string, stdout io.Writer) error {
	var names []string
	var runs [][]record
	for _, p := range strings.Split(spec, ",") {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			p = filepath.Join(p, "log.jsonl")
		}
		h, err := readLog(p)
		if err != nil {
			return err
		}
		names = append(names, filepath.Base(filepath.Dir(p)))
		runs = append(runs, h)
	}
	base := finals(runs[0])
	for i, h := range runs {
		f := finals(h)
		fmt.Fprintf(stdout, "%-20s %s\n", names[i], summarize(h))
		if i > 0 {
			fmt.Fprintf(stdout, "%-20s vs %s: smoothed train loss %+.2f%%, validation loss %+.2f%%, MaxVio of the last 20%% %.2fx\n",
				names[i], names[0], 100*(f.train-base.train)/base.train, 100*(f.val-base.val)/base.val, f.vio/base.vio)
		}
	}
	loss := plot.New()
	loss.Title.Text = "training loss (moving average of 20 steps) and validation loss"
	loss.X.Label.Text = "step"
	loss.Y.Label.Text = "cross-entropy (nats/token)"
	loss.Add(plotter.NewGrid())
	vio := plot.New()
	vio.Title.Text = "MaxVio, mean over MoE layers (moving average of 10 steps)"
	vio.X.Label.Text = "step"
	vio.Add(plotter.NewGrid())
	for i, h := range runs {
		c := palette[i%len(palette)]
		train, val, mv := plotter.XYs{}, plotter.XYs{}, plotter.XYs{}
		for j, r := range h {
			train = append(train, plotter.XY{X: float64(r.Step), Y: movingMean(h, j, 20, func(r record) float64 { return r.Loss })})
			mv = append(mv, plotter.XY{X: float64(r.Step), Y: movingMean(h, j, 10, meanVio)})
			if r.ValLoss != nil {
				val = append(val, plotter.XY{X: float64(r.Step), Y: *r.ValLoss})
			}
		}
		if err := addLine(loss, names[i]+" train", train, c, false); err != nil {
			return err
		}
		if err := addLine(loss, names[i]+" validation", val, fade(c), true); err != nil {
			return err
		}
		if err := addLine(vio, names[i], mv, c, false); err != nil {
			return err
		}
	}
	loss.Legend.Top = true
	vio.Legend.Top = true
	img := vgimg.New(9*vg.Inch, 8*vg.Inch)
	dc := draw.New(img)
	cs := plot.Align([][]*plot.Plot{{loss}, {vio}}, draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Centimeter}, dc)
	loss.Draw(cs[0][0])
	vio.Draw(cs[1][0])
	if err := writePNG(png, vgimg.PngCanvas{Canvas: img}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "plot: %s\n", png)
	return nil
}

type runFinals struct{ train, val, vio float64 }

// finals returns a run's smoothed final training loss (last 10% of
// steps), last validation loss and mean MaxVio over the last 20%.
func finals(h []record) runFinals {
	n := len(h)
	var f runFinals
	k := max(1, n/10)
	for _, r := range h[n-k:] {
		f.train += r.Loss / float64(k)
	}
	t := max(1, n/5)
	for _, r := range h[n-t:] {
		f.vio += meanVio(r) / float64(t)
	}
	for i := n - 1; i >= 0; i-- {
		if h[i].ValLoss != nil {
			f.val = *h[i].ValLoss
			break
		}
	}
	return f
}

func meanVio(r record) float64 {
	var s float64
	for _, v := range r.MaxVio {
		s += v
	}
	return s / float64(max(1, len(r.MaxVio)))
}

func movingMean(h []record, j, w int, f func(record) float64) float64 {
	lo := max(0, j-w+1)
	var s float64
	for _, r := range h[lo : j+1] {
		s += f(r)
	}
	return s / float64(j+1-lo)
}

func fade(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	return color.RGBA{R: uint8(r >> 9), G: uint8(g >> 9), B: uint8(b >> 9), A: 255}
}
