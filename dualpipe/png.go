package dualpipe

import (
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strings"
	"unicode"
)

// pngUnit is the PNG picture's width of one time unit, in pixels, and
// pngScale the size of a font pixel.
const (
	pngUnit  = 24
	pngScale = 2
)

// WritePNG writes the picture of WriteSVG as a PNG image, drawn with the
// standard library and a built-in bitmap font (text in capitals).
func (t *Timeline) WritePNG(w io.Writer) error {
	l := newLayout(t, pngUnit, 6*pngScale)
	img := image.NewRGBA(image.Rect(0, 0, int(math.Ceil(l.width)), int(math.Ceil(l.height))))
	fill(img, 0, 0, l.width, l.height, color.RGBA{0xFF, 0xFF, 0xFF, 0xFF})
	text(img, 10, 8, l.title, inkDark)
	bottom := l.top + float64(len(l.rows))*(l.rowH+4) - 4
	for _, x := range l.ticks {
		px := l.left + x*l.unit
		fill(img, px, l.top-4, 1, bottom-l.top+8, gridGrey)
		s := num(x)
		text(img, px-float64(len(s))*3*pngScale, bottom+6, s, inkDark)
	}
	for r, name := range l.rows {
		y := l.top + float64(r)*(l.rowH+4)
		text(img, 6, y+l.rowH/2-3.5*pngScale, name, inkDark)
	}
	for _, c := range l.cells {
		for _, b := range c.boxes {
			fill(img, b.x, b.y, b.w, b.h, b.fill)
			frame(img, b.x, b.y, b.w, b.h, 1, color.RGBA{0x33, 0x33, 0x33, 0xFF})
			if b.label != "" {
				tw := float64(len(b.label))*6*pngScale - pngScale
				text(img, b.x+(b.w-tw)/2, b.y+b.h/2-3.5*pngScale, b.label, b.ink)
			}
		}
		if c.paired {
			frame(img, c.x, c.y, c.w, c.h, 2, color.RGBA{0, 0, 0, 0xFF})
		}
	}
	for _, it := range l.legend {
		x := it.x
		for _, sw := range it.swatches {
			fill(img, x, l.legendY, 18, 14, sw)
			frame(img, x, l.legendY, 18, 14, 1, color.RGBA{0x33, 0x33, 0x33, 0xFF})
			if it.paired {
				x += 18
			} else {
				x += 20
			}
		}
		if it.paired {
			frame(img, it.x, l.legendY, x-it.x, 14, 2, color.RGBA{0, 0, 0, 0xFF})
			x += 2
		}
		text(img, x+4, l.legendY, it.text, inkDark)
	}
	return png.Encode(w, img)
}

// fill paints the rectangle [x, x+w) × [y, y+h), rounded to pixels.
func fill(img *image.RGBA, x, y, w, h float64, c color.RGBA) {
	r := image.Rect(int(math.Round(x)), int(math.Round(y)), int(math.Round(x+w)), int(math.Round(y+h))).Intersect(img.Bounds())
	for py := r.Min.Y; py < r.Max.Y; py++ {
		for px := r.Min.X; px < r.Max.X; px++ {
			img.SetRGBA(px, py, c)
		}
	}
}

// frame draws the border of a rectangle, th pixels thick, inside it.
func frame(img *image.RGBA, x, y, w, h, th float64, c color.RGBA) {
	fill(img, x, y, w, th, c)
	fill(img, x, y+h-th, w, th, c)
	fill(img, x, y, th, h, c)
	fill(img, x+w-th, y, th, h, c)
}

// text draws s in capitals with the bitmap font, top-left at (x, y);
// characters without a glyph are drawn as spaces.
func text(img *image.RGBA, x, y float64, s string, c color.RGBA) {
	for _, ch := range strings.ToUpper(s) {
		g, ok := glyphs[unicode.ToUpper(ch)]
		if ok {
			for gy, row := range g {
				for gx, p := range row {
					if p == '#' {
						fill(img, x+float64(gx*pngScale), y+float64(gy*pngScale), pngScale, pngScale, c)
					}
				}
			}
		}
		x += 6 * pngScale
	}
}
