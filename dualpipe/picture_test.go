package dualpipe

import (
	"bytes"
	"encoding/xml"
	"flag"
	"image/png"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the committed pictures and the doc.go timeline from the generators")

// docMarker is the doc.go line that the generated text timeline follows.
const docMarker = "// The timeline of NewDualPipe(8, 20) with UnitCosts, as Timeline.WriteText draws it:"

// committedPictures are the SVG files committed beside the package (shown
// by its README) and the schedules they draw.
var committedPictures = []struct {
	file string
	v    Variant
	p, n int
}{
	{"dualpipe_p8_n20.svg", DualPipe, 8, 20},
	{"dualpipev_p4_n10.svg", DualPipeV, 4, 10},
}

func unitTimeline(t *testing.T, v Variant, p, n int) *Timeline {
	t.Helper()
	s, err := Generate(v, p, n)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := Simulate(s, UnitCosts())
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// TestCommittedPicturesInSync checks that the committed SVG pictures and
// the timeline in the package doc equal what the code generates now (run
// go test -run TestCommittedPicturesInSync -update to regenerate them).
func TestCommittedPicturesInSync(t *testing.T) {
	for _, c := range committedPictures {
		var buf bytes.Buffer
		if err := unitTimeline(t, c.v, c.p, c.n).WriteSVG(&buf); err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(c.file, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatalf("%v (regenerate with -update)", err)
		}
		if !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("%s is out of date: regenerate with go test -run TestCommittedPicturesInSync -update", c.file)
		}
	}

	var text bytes.Buffer
	if err := unitTimeline(t, DualPipe, 8, 20).WriteText(&text); err != nil {
		t.Fatal(err)
	}
	var block []string
	for _, line := range strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n") {
		block = append(block, "//\t"+line)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(doc), "\n")
	at := -1
	for i, l := range lines {
		if l == docMarker {
			at = i
		}
	}
	if at < 0 || at+2 >= len(lines) || lines[at+1] != "//" {
		t.Fatalf("doc.go has no line %q followed by an empty comment line", docMarker)
	}
	start, end := at+2, at+2
	for end < len(lines) && strings.HasPrefix(lines[end], "//\t") {
		end++
	}
	if *update {
		out := append(append(append([]string{}, lines[:start]...), block...), lines[end:]...)
		if err := os.WriteFile("doc.go", []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := strings.Join(lines[start:end], "\n"); got != strings.Join(block, "\n") {
		t.Errorf("the timeline in doc.go is out of date: regenerate with go test -run TestCommittedPicturesInSync -update\n got:\n%s\nwant:\n%s", got, strings.Join(block, "\n"))
	}
}

// TestPictures checks the pictures' content: the SVG is well-formed XML
// with one labelled cell per op half and one thick border per overlapped
// pair; the PNG decodes to the layout's size; the text has one row per
// rank of the makespan's width.
func TestPictures(t *testing.T) {
	tl := unitTimeline(t, DualPipe, 4, 8)
	s := tl.Schedule
	var svg bytes.Buffer
	if err := tl.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg.Bytes()))
	rects, thick, labels := 0, 0, map[string]int{}
	var inText bool
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("SVG is not well-formed: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			inText = el.Name.Local == "text"
			if el.Name.Local == "rect" {
				rects++
				for _, a := range el.Attr {
					if a.Name.Local == "stroke-width" && a.Value == "2" {
						thick++
					}
				}
			}
		case xml.CharData:
			if inText {
				labels[string(el)]++
			}
		case xml.EndElement:
			inText = false
		}
	}
	halves, pairs := 0, 0
	for _, ops := range s.Ops {
		for _, o := range ops {
			halves++
			if o.Kind == ForwardBackward {
				halves++
				pairs++
			}
		}
	}
	// Cells, the background, 4 legend swatch groups of 2 and the pair's 2
	// swatches.
	if want := halves + 1 + 8 + 2; rects-thick != want {
		t.Errorf("SVG has %d filled rectangles, want %d", rects-thick, want)
	}
	if thick != pairs+1 {
		t.Errorf("SVG has %d thick borders, want %d (one per pair and one in the legend)", thick, pairs+1)
	}
	for r := range s.Ranks {
		if labels["Rank "+string(rune('0'+r))] != 1 {
			t.Errorf("SVG lacks the label of rank %d", r)
		}
	}
	// Every rank runs micro-batch 3 of both directions on both chunks:
	// forward and backward, 4 ranks × 2 chunks × 2 = 16 cells labelled 3,
	// plus W cells of deferred backwards of micro-batch 3.
	w3 := 0
	for _, ops := range s.Ops {
		for _, o := range ops {
			if o.Kind == WeightGrad && o.MB == 3 {
				w3++
			}
		}
	}
	if labels["3"] != 16+w3 {
		t.Errorf("SVG has %d cells labelled 3, want %d", labels["3"], 16+w3)
	}

	var pbuf bytes.Buffer
	if err := tl.WritePNG(&pbuf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&pbuf)
	if err != nil {
		t.Fatal(err)
	}
	l := newLayout(tl, pngUnit, 6*pngScale)
	if b := img.Bounds(); b.Dx() < int(l.width) || b.Dy() < int(l.height) {
		t.Errorf("PNG is %v, layout %vx%v", b, l.width, l.height)
	}
	// The first op of rank 0 (F0.0, forward orange) is drawn at time 0.
	x, y := int(l.left)+3, int(l.top)+3
	if c := img.At(x, y); c != palette[0]["F"] {
		t.Errorf("PNG pixel (%d, %d) is %v, want the forward colour", x, y, c)
	}

	var text bytes.Buffer
	if err := tl.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(text.String()), "\n")
	if len(rows) != 1+s.Ranks {
		t.Fatalf("text has %d lines, want %d", len(rows), 1+s.Ranks)
	}
	for r, row := range rows[1:] {
		cells := strings.TrimPrefix(row, row[:strings.Index(row, "|")+1])
		if len(cells) != int(2*tl.Makespan) {
			t.Errorf("text rank %d is %d columns, want %d", r, len(cells), int(2*tl.Makespan))
		}
	}
	if !strings.HasPrefix(rows[1], "rank 0 |F0F1F2f0i0w0f1F3&b1-") {
		t.Errorf("text rank 0 starts %q", rows[1][:40])
	}
}
