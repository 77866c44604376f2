package dualpipe

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is the kind of one scheduled operation.
type Kind uint8

const (
	// Forward is the forward pass of one micro-batch on one stage ("F").
	Forward Kind = iota
	// Backward is the backward pass of one micro-batch on one stage ("B"):
	// full (input and weight gradients) or, with Op.DeferW, the input
	// gradient only, its weight gradient left to a later WeightGrad op.
	Backward
	// WeightGrad is a weight-gradient computation deferred from an earlier
	// Backward with DeferW on the same rank ("W").
	WeightGrad
	// ForwardBackward is an overlapped pair ("F&B"): the forward of one
	// micro-batch on one stage and the full backward of another micro-batch
	// on another stage of the same rank, run as one unit so that the
	// communication of each hides behind the computation of the other
	// (report §3.2.1).
	ForwardBackward
)

// String returns the kind's name in the fixture's JSON form: F, B, W or FB.
func (k Kind) String() string {
	switch k {
	case Forward:
		return "F"
	case Backward:
		return "B"
	case WeightGrad:
		return "W"
	case ForwardBackward:
		return "FB"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Task names one micro-batch on one model stage: the unit a forward, a
// backward or a weight-gradient op works on.
type Task struct {
	// Dir is the direction the micro-batch travels. DualPipe feeds
	// micro-batches from both ends: direction 0 enters at rank 0 and its
	// loss is on rank P-1; direction 1 enters at rank P-1 and its loss is
	// on rank 0. Every other schedule has one direction, 0.
	Dir int
	// MB is the micro-batch's index within its direction, in feeding order.
	MB int
	// Stage is the model stage (chunk of layers) the op runs, 0 nearest the
	// input.
	Stage int
}

// Op is one operation in a rank's program.
type Op struct {
	Kind Kind
	// Task is what a Forward, Backward or WeightGrad op works on; for a
	// ForwardBackward op it is the forward half.
	Task
	// Back is the backward half of a ForwardBackward op, always a full
	// backward; zero for the other kinds.
	Back Task
	// DeferW marks a Backward that computes the input gradient only; its
	// weight gradient is computed by a later WeightGrad op for the same
	// Task on the same rank (zero-bubble split).
	DeferW bool
	// Step is the phase of the generator that emitted the op (DualPipe's
	// steps 1 to 8; 1F1B and ZB1P: 1 warm-up, 2 steady state, 3 cool-down),
	// for display only: validation, simulation and execution ignore it.
	Step int
}

// Label returns the op's compact form used in the fixture: F<dir>.<mb>,
// B<dir>.<mb> (full backward), Bi<dir>.<mb> (input gradient only),
// W<dir>.<mb>, and F<dir>.<mb>&B<dir>.<mb> for an overlapped pair.
func (o Op) Label() string {
	t := func(prefix string, t Task) string {
		return prefix + strconv.Itoa(t.Dir) + "." + strconv.Itoa(t.MB)
	}
	switch o.Kind {
	case Forward:
		return t("F", o.Task)
	case Backward:
		if o.DeferW {
			return t("Bi", o.Task)
		}
		return t("B", o.Task)
	case WeightGrad:
		return t("W", o.Task)
	case ForwardBackward:
		return t("F", o.Task) + "&" + t("B", o.Back)
	}
	return o.Kind.String()
}

// String returns the label with the stage: "F0.3@s1", "F0.3@s0&B1.1@s3".
func (o Op) String() string {
	t := func(prefix string, t Task) string {
		return prefix + strconv.Itoa(t.Dir) + "." + strconv.Itoa(t.MB) + "@s" + strconv.Itoa(t.Stage)
	}
	switch o.Kind {
	case Backward:
		if o.DeferW {
			return t("Bi", o.Task)
		}
		return t("B", o.Task)
	case ForwardBackward:
		return t("F", o.Task) + "&" + t("B", o.Back)
	case Forward, WeightGrad:
		return t(o.Kind.String(), o.Task)
	}
	return o.Kind.String()
}

// Variant is a pipeline schedule family. It fixes where the stages live
// (the placement) and how many directions micro-batches travel in.
type Variant uint8

const (
	// OneFOneB is the classic one-forward-one-backward schedule (PipeDream
	// flush): P ranks, P stages, stage s on rank s.
	OneFOneB Variant = iota
	// ZB1P is the zero-bubble schedule ZB-H1 (Qi et al. 2023, "Zero Bubble
	// Pipeline Parallelism"): 1F1B with every backward split into an
	// input-gradient B and a deferred W, with rank r running its W ops r
	// steps late so that they fill the cool-down bubble while the peak
	// activation memory stays that of 1F1B. Placement as OneFOneB.
	ZB1P
	// DualPipe is DeepSeek-V3's bidirectional schedule (report §3.2.1,
	// Figure 5): P ranks (P even), P stages, every rank r holding two
	// copies of the model's stages: stage r for direction 0 and stage
	// P-1-r for direction 1. Half of the micro-batches enter at each end.
	DualPipe
	// DualPipeV is the "cut-in-half" V-shaped form of DualPipe
	// (deepseek-ai/DualPipe, dualpipev.py): P ranks hold 2P stages in a V,
	// rank r holding stages r and 2P-1-r; one direction, loss on rank 0,
	// one copy of the parameters.
	DualPipeV
)

// String returns the variant's name as the example's -variant flag spells
// it: 1f1b, zb1p, dualpipe or dualpipev.
func (v Variant) String() string {
	switch v {
	case OneFOneB:
		return "1f1b"
	case ZB1P:
		return "zb1p"
	case DualPipe:
		return "dualpipe"
	case DualPipeV:
		return "dualpipev"
	}
	return "Variant(" + strconv.Itoa(int(v)) + ")"
}

// Title returns the name Table 2 of the report uses: 1F1B, ZB1P, DualPipe,
// DualPipeV.
func (v Variant) Title() string {
	switch v {
	case OneFOneB:
		return "1F1B"
	case ZB1P:
		return "ZB1P"
	case DualPipe:
		return "DualPipe"
	case DualPipeV:
		return "DualPipeV"
	}
	return v.String()
}

// Variants lists the four schedule families in Table 2's order.
var Variants = []Variant{OneFOneB, ZB1P, DualPipe, DualPipeV}

// ParseVariant returns the variant named s (as String or Title spell it,
// case-insensitively).
func ParseVariant(s string) (Variant, error) {
	for _, v := range Variants {
		if strings.EqualFold(s, v.String()) || strings.EqualFold(s, v.Title()) {
			return v, nil
		}
	}
	return 0, fmt.Errorf("dualpipe: unknown variant %q, want one of 1f1b, zb1p, dualpipe, dualpipev", s)
}

// Schedule is a pipeline schedule as data: for every rank, its operations
// in execution order. Generators (Generate, NewDualPipe, ...) build them;
// Validate checks any Schedule, Simulate times it and Executor runs it.
type Schedule struct {
	Variant Variant
	// Ranks is the number of pipeline ranks (devices), P.
	Ranks int
	// MicroBatches is the number of micro-batches in the step, N, over
	// both directions for DualPipe (N/2 each).
	MicroBatches int
	// Ops[r] is rank r's program.
	Ops [][]Op
}

// Stages returns the number of model stages: 2P for DualPipeV, P else.
func (s *Schedule) Stages() int {
	if s.Variant == DualPipeV {
		return 2 * s.Ranks
	}
	return s.Ranks
}

// Dirs returns the number of directions micro-batches travel in: 2 for
// DualPipe, 1 else.
func (s *Schedule) Dirs() int {
	if s.Variant == DualPipe {
		return 2
	}
	return 1
}

// DirMicroBatches returns how many micro-batches travel in each direction.
func (s *Schedule) DirMicroBatches() int {
	return s.MicroBatches / s.Dirs()
}

// GlobalMB returns the index in the whole batch of micro-batch mb of
// direction dir: mb for direction 0, N/2+mb for DualPipe's direction 1
// (the second half of the batch enters at rank P-1).
func (s *Schedule) GlobalMB(dir, mb int) int {
	return dir*s.DirMicroBatches() + mb
}

// RankOf returns the rank that runs stage for micro-batches of direction
// dir.
func (s *Schedule) RankOf(dir, stage int) int {
	switch s.Variant {
	case DualPipe:
		if dir == 1 {
			return s.Ranks - 1 - stage
		}
		return stage
	case DualPipeV:
		if stage >= s.Ranks {
			return 2*s.Ranks - 1 - stage
		}
		return stage
	}
	return stage
}

// Held returns the stages rank r holds, in module order: [r] for 1F1B and
// ZB1P; [r, P-1-r] for DualPipe (module 0 serves direction 0, module 1
// direction 1); [r, 2P-1-r] for DualPipeV.
func (s *Schedule) Held(r int) []int {
	switch s.Variant {
	case DualPipe:
		return []int{r, s.Ranks - 1 - r}
	case DualPipeV:
		return []int{r, 2*s.Ranks - 1 - r}
	}
	return []int{r}
}

// Module returns the index within Held(rank) of the chunk that runs t, or
// -1 when the rank does not run it.
func (s *Schedule) Module(rank int, t Task) int {
	if s.RankOf(t.Dir, t.Stage) != rank {
		return -1
	}
	held := s.Held(rank)
	if s.Variant == DualPipe {
		// Both modules may hold the same stage index only if P-1-r = r,
		// which P even excludes; the direction picks the module.
		return t.Dir
	}
	for j, st := range held {
		if st == t.Stage {
			return j
		}
	}
	return -1
}

// ParamCopies returns how many copies of the whole model's parameters the
// ranks hold together: 2 for DualPipe, 1 else.
func (s *Schedule) ParamCopies() int {
	if s.Variant == DualPipe {
		return 2
	}
	return 1
}

// Labels returns rank r's ops in compact form (Op.Label).
func (s *Schedule) Labels(r int) []string {
	out := make([]string, len(s.Ops[r]))
	for i, o := range s.Ops[r] {
		out[i] = o.Label()
	}
	return out
}
