package dualpipe

import (
	"bufio"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"
)

// Colours of the pictures, after Figure 5 of the report: forward orange,
// backward green (input-only backward lighter), weight gradient blue; the
// reverse direction (DualPipe's direction 1) in darker shades.
var (
	palette = [2]map[string]color.RGBA{
		{
			"F":  {0xF5, 0xB0, 0x41, 0xFF},
			"B":  {0x76, 0xD3, 0x5A, 0xFF},
			"Bi": {0xB7, 0xE9, 0x9F, 0xFF},
			"W":  {0x7D, 0xB9, 0xF0, 0xFF},
		},
		{
			"F":  {0xC2, 0x7A, 0x12, 0xFF},
			"B":  {0x3C, 0x96, 0x2A, 0xFF},
			"Bi": {0x6C, 0xB2, 0x55, 0xFF},
			"W":  {0x3C, 0x7C, 0xBE, 0xFF},
		},
	}
	inkDark  = color.RGBA{0x1A, 0x1A, 0x1A, 0xFF}
	inkLight = color.RGBA{0xFF, 0xFF, 0xFF, 0xFF}
	gridGrey = color.RGBA{0xBB, 0xBB, 0xBB, 0xFF}
)

// box is one coloured rectangle of a picture, in pixels, with its label.
type box struct {
	x, y, w, h float64
	fill       color.RGBA
	ink        color.RGBA
	label      string
}

// cell is one op of the picture: one or two boxes (an F&B pair is two, in
// a shared thick border).
type cell struct {
	boxes  []box
	paired bool
	x, y   float64 // the whole cell, for the pair's border
	w, h   float64
}

// legendItem is one entry of the legend: colour swatches side by side
// (joined in a thick border when paired) and a text.
type legendItem struct {
	x        float64
	swatches []color.RGBA
	paired   bool
	text     string
}

// layout is the geometry shared by the SVG and PNG pictures.
type layout struct {
	title        string
	unit, rowH   float64 // pixels per time unit, row height
	left, top    float64 // space for rank labels and title
	width        float64
	height       float64
	rows         []string // rank labels
	cells        []cell
	legend       []legendItem
	legendY      float64
	makespanX    float64
	ticks        []float64 // time tick positions (in time units)
	tickLabelGap float64
}

// shade returns 1 for the ops drawn in darker shades: DualPipe's direction
// 1, DualPipeV's way back up the V (stages P..2P-1).
func (s *Schedule) shade(t Task) int {
	if s.Variant == DualPipeV && t.Stage >= s.Ranks {
		return 1
	}
	return t.Dir & 1
}

func styleOf(kind string, dir int) (color.RGBA, color.RGBA) {
	fill := palette[dir&1][kind]
	if dir&1 == 1 {
		return fill, inkLight
	}
	return fill, inkDark
}

// newLayout lays t out with unit pixels per time unit, for text charW
// pixels wide per character.
func newLayout(t *Timeline, unit, charW float64) *layout {
	s := t.Schedule
	l := &layout{unit: unit, rowH: 24, left: math.Max(70, 16+float64(len("Rank 00"))*charW), top: 34, tickLabelGap: 14}
	c := t.Costs
	l.title = fmt.Sprintf("%s, %d ranks, %d stages, %d micro-batches; F=%s B=%s W=%s F&B=%s, makespan %s, bubble %s",
		s.Variant.Title(), s.Ranks, s.Stages(), s.MicroBatches, num(c.F), num(c.B), num(c.W), num(c.fb()), num(t.Makespan), num(t.MaxBubble()))
	if c.Comm != 0 {
		l.title += ", transfer " + num(c.Comm)
	}
	for r := range s.Ranks {
		l.rows = append(l.rows, "Rank "+strconv.Itoa(r))
		y := l.top + float64(r)*(l.rowH+4)
		for i, o := range s.Ops[r] {
			x0, x1 := l.left+t.Start[r][i]*unit, l.left+t.End[r][i]*unit
			cl := cell{x: x0, y: y, w: x1 - x0, h: l.rowH}
			mk := func(kind string, tk Task, x, w float64) box {
				fill, ink := styleOf(kind, s.shade(tk))
				return box{x: x, y: y, w: w, h: l.rowH, fill: fill, ink: ink, label: strconv.Itoa(tk.MB)}
			}
			switch o.Kind {
			case Forward:
				cl.boxes = []box{mk("F", o.Task, x0, x1-x0)}
			case Backward:
				k := "B"
				if o.DeferW {
					k = "Bi"
				}
				cl.boxes = []box{mk(k, o.Task, x0, x1-x0)}
			case WeightGrad:
				cl.boxes = []box{mk("W", o.Task, x0, x1-x0)}
			case ForwardBackward:
				frac := 0.5
				if c.F+c.B > 0 {
					frac = c.F / (c.F + c.B)
				}
				xm := x0 + (x1-x0)*frac
				cl.boxes = []box{mk("F", o.Task, x0, xm-x0), mk("B", o.Back, xm, x1-xm)}
				cl.paired = true
			}
			l.cells = append(l.cells, cl)
		}
	}
	rowsBottom := l.top + float64(s.Ranks)*(l.rowH+4)
	l.makespanX = l.left + t.Makespan*unit
	step := tickStep(t.Makespan)
	for x := 0.0; x <= t.Makespan+1e-9; x += step {
		l.ticks = append(l.ticks, x)
	}
	l.legendY = rowsBottom + l.tickLabelGap + 14
	lx := l.left
	add := func(it legendItem) {
		it.x = lx
		l.legend = append(l.legend, it)
		lx += float64(len(it.swatches))*20 + 4 + float64(len(it.text))*charW + 16
	}
	shades := s.Dirs()
	if s.Variant == DualPipeV {
		shades = 2
	}
	for _, it := range []struct{ kind, text string }{
		{"F", "Forward"}, {"B", "Backward"}, {"Bi", "Backward for input"}, {"W", "Backward for weights"},
	} {
		var sw []color.RGBA
		for d := 0; d < shades; d++ {
			fill, _ := styleOf(it.kind, d)
			sw = append(sw, fill)
		}
		add(legendItem{swatches: sw, text: it.text})
	}
	fF, _ := styleOf("F", 0)
	fB, _ := styleOf("B", 0)
	add(legendItem{swatches: []color.RGBA{fF, fB}, paired: true, text: "Overlapped forward & backward"})
	switch s.Variant {
	case DualPipe:
		add(legendItem{text: "(darker: direction 1, fed at the last rank)"})
	case DualPipeV:
		add(legendItem{text: "(darker: the way back up the V)"})
	}
	l.width = math.Max(math.Max(l.makespanX, lx), 10+float64(len(l.title))*charW) + 20
	l.height = l.legendY + 14 + 12
	return l
}

// tickStep returns a round time step for about ten ticks.
func tickStep(span float64) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / 10
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// num formats a time or cost compactly.
func num(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// WriteText writes t as text, two columns per time unit (times are rounded
// to half units): one row per rank, each op a cell of its duration holding
// its kind and micro-batch, padded with '-', idle time as '.'. Kinds are
// F (forward), B (full backward), I (input-only backward) and W (weight
// gradient), upper case for direction 0 and lower case for DualPipe's
// direction 1 and DualPipeV's way back up the V (stages P..2P-1); an
// overlapped pair shows both halves joined by '&'.
func (t *Timeline) WriteText(w io.Writer) error {
	s := t.Schedule
	bw := bufio.NewWriter(w)
	col := func(v float64) int { return int(math.Round(v * 2)) }
	width := col(t.Makespan)
	lab := func(kind byte, tk Task) string {
		if s.shade(tk) == 1 {
			kind += 'a' - 'A'
		}
		return string(kind) + strconv.Itoa(tk.MB)
	}
	ruler := []byte(strings.Repeat(" ", width))
	for u := 0; 2*u < width; u += 10 {
		copy(ruler[2*u:], strconv.Itoa(u))
	}
	fmt.Fprintf(bw, "time   |%s\n", strings.TrimRight(string(ruler), " "))
	for r, ops := range s.Ops {
		line := []byte(strings.Repeat(".", width))
		for i, o := range ops {
			a, b := col(t.Start[r][i]), col(t.End[r][i])
			var text string
			switch o.Kind {
			case Forward:
				text = lab('F', o.Task)
			case Backward:
				if o.DeferW {
					text = lab('I', o.Task)
				} else {
					text = lab('B', o.Task)
				}
			case WeightGrad:
				text = lab('W', o.Task)
			case ForwardBackward:
				text = lab('F', o.Task) + "&" + lab('B', o.Back)
			}
			for j := a; j < b; j++ {
				line[j] = '-'
			}
			copy(line[a:b], text)
		}
		fmt.Fprintf(bw, "rank %-2d|%s\n", r, line)
	}
	return bw.Flush()
}
