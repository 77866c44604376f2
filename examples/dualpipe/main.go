// Command dualpipe compares pipeline schedules as Table 2 of the
// DeepSeek-V3 report does, draws their timelines and prints them as JSON.
//
// Usage:
//
//	dualpipe [-p 8] [-n 20] [-F 1 -B 2 -W 1 -FB 3 -comm 0] [-variant dualpipe] [-svg file] [-png file] [-sweep]
//	dualpipe -json -variant dualpipe|dualpipev|1f1b|zb1p -p P -n N
//
// Without -json it prints the Table 2 comparison of 1F1B, ZB1P, DualPipe
// and DualPipeV for PP = -p pipeline stages (DualPipeV then runs on PP/2
// devices), N = -n micro-batches and the given costs: each method's bubble
// formula and value, the simulated bubble of its ranks, the makespan, the
// parameter and activation memory per device. It writes the timeline of
// -variant for -p ranks as SVG (-svg, default dualpipe.svg; empty to skip)
// and PNG (-png). With -sweep it also prints the bubble rate for more
// micro-batches.
//
// With -json it prints the -variant schedule for -p ranks and -n
// micro-batches in the JSON form of ../shared/fixtures/dualpipe/ (ranks,
// each with its ordered ops: op, dir, mb, stage, deferred_w).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/dsv3go/dsv3/dualpipe"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dualpipe:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dualpipe", flag.ContinueOnError)
	p := fs.Int("p", 8, "pipeline ranks (for the Table 2 comparison: pipeline stages PP)")
	n := fs.Int("n", 20, "micro-batches per step")
	c := dualpipe.UnitCosts()
	fs.Float64Var(&c.F, "F", c.F, "time of a forward chunk")
	fs.Float64Var(&c.B, "B", c.B, "time of a full backward chunk")
	fs.Float64Var(&c.W, "W", c.W, "time of the weight-gradient part of a backward chunk")
	fs.Float64Var(&c.FB, "FB", c.FB, "time of an overlapped forward & backward pair (0: F+B)")
	fs.Float64Var(&c.Comm, "comm", c.Comm, "transfer time between ranks")
	variant := fs.String("variant", "dualpipe", "schedule to draw or print: dualpipe, dualpipev, 1f1b or zb1p")
	asJSON := fs.Bool("json", false, "print the -variant schedule as JSON and exit")
	svgPath := fs.String("svg", "dualpipe.svg", "write the -variant timeline as SVG to this file (empty: skip)")
	pngPath := fs.String("png", "", "write the -variant timeline as PNG to this file")
	sweep := fs.Bool("sweep", false, "also print the bubble rate of every method for more micro-batches")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	v, err := dualpipe.ParseVariant(*variant)
	if err != nil {
		return err
	}
	if *asJSON {
		s, err := dualpipe.Generate(v, *p, *n)
		if err != nil {
			return err
		}
		data, err := s.MarshalJSON()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", data)
		return err
	}

	if err := table2(stdout, *p, *n, c); err != nil {
		return err
	}
	if *sweep {
		if err := sweepTable(stdout, *p, *n, c); err != nil {
			return err
		}
	}
	if *svgPath == "" && *pngPath == "" {
		return nil
	}
	s, err := dualpipe.Generate(v, *p, *n)
	if err != nil {
		return err
	}
	tl, err := dualpipe.Simulate(s, c)
	if err != nil {
		return err
	}
	for _, out := range []struct {
		path  string
		write func(io.Writer) error
	}{{*svgPath, tl.WriteSVG}, {*pngPath, tl.WritePNG}} {
		if out.path == "" {
			continue
		}
		if err := writeFile(out.path, out.write); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote the %s timeline (%d ranks, %d micro-batches) to %s\n", v.Title(), s.Ranks, s.MicroBatches, out.path)
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// table2 prints Table 2 of the report next to the simulation.
func table2(w io.Writer, pp, n int, c dualpipe.Costs) error {
	rows, err := dualpipe.Compare(pp, n, c)
	if err != nil {
		return err
	}
	fb := c.FB
	if fb == 0 {
		fb = c.F + c.B
	}
	fmt.Fprintf(w, "Table 2 for PP=%d stages, N=%d micro-batches; F=%g B=%g W=%g F&B=%g transfer=%g\n\n", pp, n, c.F, c.B, c.W, fb, c.Comm)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Method\tBubble formula\tformula\tsimulated bubble (ranks)\tmakespan\tparams/device\tactivations/device\t#devices")
	for _, r := range rows {
		tl := r.Timeline
		sim := fmt.Sprintf("%g", tl.MaxBubble())
		if tl.MinBubble() != tl.MaxBubble() {
			sim = fmt.Sprintf("%g..%g", tl.MinBubble(), tl.MaxBubble())
		}
		fmt.Fprintf(tw, "%s\t%s\t%g\t%s\t%g\t%d× (%d %s)\t%d\t%d\n",
			r.Variant.Title(), r.Formula, r.FormulaBubble, sim, tl.Makespan,
			r.ParamsPerDevice, r.ParamCopies, plural(r.ParamCopies, "copy", "copies"), r.PeakActivations, r.Devices)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nparams/device counts stages held per device (Table 2's 1× and 2×); activations/device is the peak number of")
	fmt.Fprintln(w, "micro-batches whose activations of one stage a device holds. The formulas ignore transfer time.")
	return nil
}

// sweepTable prints the bubble rate (largest bubble / makespan) of every
// method as the number of micro-batches grows.
func sweepTable(w io.Writer, pp, n int, c dualpipe.Costs) error {
	ns := []int{n, 2 * n, 4 * n, 8 * n}
	fmt.Fprintf(w, "\nBubble rate (largest bubble / makespan) for PP=%d stages\n\n", pp)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"Method"}
	for _, k := range ns {
		head = append(head, fmt.Sprintf("N=%d", k))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, v := range dualpipe.Variants {
		ranks := pp
		if v == dualpipe.DualPipeV {
			ranks = pp / 2
		}
		pts, err := dualpipe.Sweep([]dualpipe.Variant{v}, []int{ranks}, ns, c)
		if err != nil {
			return err
		}
		cells := []string{v.Title()}
		byN := map[int]float64{}
		for _, pt := range pts {
			byN[pt.MicroBatches] = pt.BubbleRate
		}
		for _, k := range ns {
			if rate, ok := byN[k]; ok {
				cells = append(cells, fmt.Sprintf("%.1f%%", 100*rate))
			} else {
				cells = append(cells, "-")
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func plural(k int, one, many string) string {
	if k == 1 {
		return one
	}
	return many
}
