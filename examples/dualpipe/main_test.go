package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3/dualpipe"
	"github.com/dsv3go/dsv3/internal/testutil"
)

func TestJSONMatchesFixture(t *testing.T) {
	path := testutil.Fixture(t, "dualpipe", "dualpipe_schedule_pp4_mb8.json")
	var out bytes.Buffer
	if err := run([]string{"-json", "-variant", "dualpipe", "-p", "4", "-n", "8"}, &out); err != nil {
		t.Fatal(err)
	}
	got, err := dualpipe.ParseJSON(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dualpipe.ParseJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("-json output differs from the fixture's schedule")
	}
	for _, v := range []string{"dualpipev", "1f1b", "zb1p"} {
		out.Reset()
		if err := run([]string{"-json", "-variant", v, "-p", "4", "-n", "8"}, &out); err != nil {
			t.Fatal(err)
		}
		s, err := dualpipe.ParseJSON(out.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if err := dualpipe.Validate(s); err != nil || s.Variant.String() != v {
			t.Errorf("-json -variant %s: %v (variant %v)", v, err, s.Variant)
		}
	}
}

func TestTable2AndPictures(t *testing.T) {
	dir := t.TempDir()
	svg, png := filepath.Join(dir, "t.svg"), filepath.Join(dir, "t.png")
	var out bytes.Buffer
	if err := run([]string{"-p", "8", "-n", "20", "-svg", svg, "-png", png, "-sweep"}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"1F1B       (PP-1)(F+B)         21       21 ",
		"ZB1P       (PP-1)(F+B-2W)      7        7 ",
		"DualPipe   (PP/2-1)(F&B+B-3W)  6        6 ",
		"DualPipeV  (PP/2-1)(F&B+B-3W)  6        6 ",
		"Bubble rate",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil || !bytes.HasPrefix(b, []byte("<svg")) {
		t.Errorf("SVG file: %v %.20q", err, b)
	}
	b, err = os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("PNG file: %v", err)
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-p", "3", "-svg", ""},
		{"-p", "4", "-n", "6", "-svg", ""},
		{"-json", "-p", "4", "-n", "9"},
		{"-variant", "gpipe"},
		{"-W", "5", "-svg", ""},
		{"extra"},
	} {
		var out bytes.Buffer
		if err := run(args, &out); err == nil {
			t.Errorf("run(%q): no error", args)
		}
	}
}
