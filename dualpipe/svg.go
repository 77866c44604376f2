package dualpipe

import (
	"bufio"
	"fmt"
	"html"
	"image/color"
	"io"
	"strconv"
)

// svgUnit is the SVG picture's width of one time unit, in pixels.
const svgUnit = 20

// WriteSVG writes t as an SVG picture in the style of Figure 5 of the
// report: one row per rank, time to the right, each op a cell coloured by
// kind (forward, backward, input-only backward, weight gradient) and
// direction, with its micro-batch number; an overlapped F&B pair is two
// cells in a thick black border. The output is deterministic.
func (t *Timeline) WriteSVG(w io.Writer) error {
	l := newLayout(t, svgUnit, 7)
	bw := bufio.NewWriter(w)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	hex := func(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		f(l.width), f(l.height), f(l.width), f(l.height))
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(bw, `<text x="10" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(l.title))
	bottom := l.top + float64(len(l.rows))*(l.rowH+4) - 4
	for _, x := range l.ticks {
		px := l.left + x*l.unit
		fmt.Fprintf(bw, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="0.5"/>`+"\n", f(px), f(l.top-4), f(px), f(bottom+4), hex(gridGrey))
		fmt.Fprintf(bw, `<text x="%s" y="%s" text-anchor="middle" font-size="10" fill="#555555">%s</text>`+"\n", f(px), f(bottom+l.tickLabelGap), num(x))
	}
	for r, name := range l.rows {
		y := l.top + float64(r)*(l.rowH+4)
		fmt.Fprintf(bw, `<text x="8" y="%s" font-weight="bold">%s</text>`+"\n", f(y+l.rowH/2+4), name)
	}
	for _, c := range l.cells {
		for _, b := range c.boxes {
			fmt.Fprintf(bw, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s" stroke="#333333" stroke-width="0.5"/>`+"\n",
				f(b.x), f(b.y), f(b.w), f(b.h), hex(b.fill))
			if b.label != "" {
				fmt.Fprintf(bw, `<text x="%s" y="%s" text-anchor="middle" fill="%s">%s</text>`+"\n",
					f(b.x+b.w/2), f(b.y+b.h/2+4), hex(b.ink), b.label)
			}
		}
		if c.paired {
			fmt.Fprintf(bw, `<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#000000" stroke-width="2"/>`+"\n",
				f(c.x), f(c.y), f(c.w), f(c.h))
		}
	}
	for _, it := range l.legend {
		x := it.x
		for _, sw := range it.swatches {
			fmt.Fprintf(bw, `<rect x="%s" y="%s" width="18" height="14" fill="%s" stroke="#333333" stroke-width="0.5"/>`+"\n", f(x), f(l.legendY), hex(sw))
			if it.paired {
				x += 18
			} else {
				x += 20
			}
		}
		if it.paired {
			fmt.Fprintf(bw, `<rect x="%s" y="%s" width="%s" height="14" fill="none" stroke="#000000" stroke-width="2"/>`+"\n", f(it.x), f(l.legendY), f(x-it.x))
			x += 2
		}
		fmt.Fprintf(bw, `<text x="%s" y="%s">%s</text>`+"\n", f(x+4), f(l.legendY+11), html.EscapeString(it.text))
	}
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}
