package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotHistory draws the training and validation loss (and the MTP loss)
// over the steps, and below it each MoE layer's MaxVio, into a PNG.
func plotHistory(path string, hist []record, moeNames []string) error {
	loss := plot.New()
	loss.Title.Text = "DeepSeek-V3 training loss"
	loss.X.Label.Text = "step"
	loss.Y.Label.Text = "cross-entropy (nats/token)"
	loss.Add(plotter.NewGrid())
	train, mtpPts, val := plotter.XYs{}, plotter.XYs{}, plotter.XYs{}
	for _, r := range hist {
		train = append(train, plotter.XY{X: float64(r.Step), Y: r.Loss})
		if r.MTPLoss > 0 {
			mtpPts = append(mtpPts, plotter.XY{X: float64(r.Step), Y: r.MTPLoss})
		}
		if r.ValLoss != nil {
			val = append(val, plotter.XY{X: float64(r.Step), Y: *r.ValLoss})
		}
	}
	if err := addLine(loss, "train", train, color.RGBA{R: 31, G: 119, B: 180, A: 255}, false); err != nil {
		return err
	}
	if err := addLine(loss, "validation", val, color.RGBA{R: 214, G: 39, B: 40, A: 255}, true); err != nil {
		return err
	}
	if len(mtpPts) > 0 {
		if err := addLine(loss, "MTP loss (λ-weighted)", mtpPts, color.RGBA{R: 44, G: 160, B: 44, A: 255}, false); err != nil {
			return err
		}
	}
	loss.Legend.Top = true

	vio := plot.New()
	vio.Title.Text = "expert load imbalance (MaxVio per MoE layer)"
	vio.X.Label.Text = "step"
	vio.Y.Label.Text = "MaxVio"
	vio.Add(plotter.NewGrid())
	for i, name := range moeNames {
		pts := plotter.XYs{}
		for _, r := range hist {
			if i < len(r.MaxVio) {
				pts = append(pts, plotter.XY{X: float64(r.Step), Y: r.MaxVio[i]})
			}
		}
		c := plotter.DefaultLineStyle.Color
		if i < len(palette) {
			c = palette[i]
		}
		if err := addLine(vio, name, pts, c, false); err != nil {
			return err
		}
	}
	vio.Legend.Top = true

	img := vgimg.New(9*vg.Inch, 8*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Centimeter}
	canvases := plot.Align([][]*plot.Plot{{loss}, {vio}}, tiles, dc)
	loss.Draw(canvases[0][0])
	vio.Draw(canvases[1][0])
	png := vgimg.PngCanvas{Canvas: img}
	return writePNG(path, png)
}

var palette = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255}, color.RGBA{R: 140, G: 86, B: 75, A: 255},
}

func addLine(p *plot.Plot, name string, pts plotter.XYs, c color.Color, points bool) error {
	if len(pts) == 0 {
		return nil
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("plot %s: %w", name, err)
	}
	l.Color = c
	l.Width = vg.Points(1.2)
	p.Add(l)
	p.Legend.Add(name, l)
	if points {
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		s.Color = c
		p.Add(s)
	}
	return nil
}
