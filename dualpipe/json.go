package dualpipe

import (
	"encoding/json"
	"fmt"
)

// jsonTask is one forward or backward in the fixture's JSON form.
type jsonTask struct {
	Op        string `json:"op"`
	Dir       int    `json:"dir"`
	MB        int    `json:"mb"`
	GlobalMB  int    `json:"global_mb"`
	Stage     int    `json:"stage"`
	DeferredW *bool  `json:"deferred_w,omitempty"`
	Step      int    `json:"step"`
}

// jsonOp is one op: a jsonTask, or an FB pair with its halves in F and B.
type jsonOp struct {
	Op        string    `json:"op"`
	Dir       *int      `json:"dir,omitempty"`
	MB        *int      `json:"mb,omitempty"`
	GlobalMB  *int      `json:"global_mb,omitempty"`
	Stage     *int      `json:"stage,omitempty"`
	DeferredW *bool     `json:"deferred_w,omitempty"`
	Step      int       `json:"step"`
	F         *jsonTask `json:"f,omitempty"`
	B         *jsonTask `json:"b,omitempty"`
}

type jsonRank struct {
	Rank         int       `json:"rank"`
	ModuleStages []int     `json:"module_stages"`
	Labels       []string  `json:"labels"`
	Ops          []jsonOp  `json:"ops"`
	StartTimes   []float64 `json:"unit_cost_start_times,omitempty"`
}

type jsonCostModel struct {
	Cost struct {
		F      float64 `json:"F"`
		BFull  float64 `json:"B_full"`
		BInput float64 `json:"B_input_only"`
		W      float64 `json:"W"`
		FB     float64 `json:"FB"`
	} `json:"cost"`
	CommLatency     float64   `json:"comm_latency"`
	Makespan        float64   `json:"makespan"`
	BusyPerRank     []float64 `json:"busy_per_rank"`
	BubblePerRank   []float64 `json:"bubble_per_rank"`
	PeakActivations []int     `json:"peak_activations_per_rank"`
}

type jsonSchedule struct {
	What        string            `json:"what,omitempty"`
	Variant     string            `json:"variant"`
	NumRanks    int               `json:"num_ranks"`
	NumChunks   int               `json:"num_chunks"`
	NumStages   int               `json:"num_stages,omitempty"`
	Conventions map[string]string `json:"conventions,omitempty"`
	CostModel   *jsonCostModel    `json:"unit_cost_model,omitempty"`
	Ranks       []jsonRank        `json:"ranks"`
}

func (s *Schedule) conventions() map[string]string {
	m := map[string]string{
		"mb":    "micro-batch index within its direction, in feeding order; global_mb is its index in the whole batch",
		"stage": fmt.Sprintf("model stage index (0..%d) of the chunk the op runs on", s.Stages()-1),
		"ops":   "F forward; B backward, full (deferred_w=false) or input gradient only with its weight gradient deferred to a later W (deferred_w=true); W deferred weight gradient; FB overlapped pair of the forward f and the full backward b on the rank's two chunks",
	}
	switch s.Variant {
	case DualPipe:
		m["modules"] = "rank r holds two chunks: module 0 = stage r, module 1 = stage P-1-r"
		m["dir"] = "dir 0: injected at rank 0, loss on rank P-1 (module 0); dir 1: injected at rank P-1, loss on rank 0 (module 1); global_mb = mb for dir 0, N/2+mb for dir 1"
	case DualPipeV:
		m["modules"] = "rank r holds two chunks: module 0 = stage r, module 1 = stage 2P-1-r; the micro-batches go down ranks 0..P-1 and back, loss on rank 0"
		m["dir"] = "one direction, dir 0"
	default:
		m["modules"] = "rank r holds stage r"
		m["dir"] = "one direction, dir 0"
	}
	return m
}

func (s *Schedule) jsonTask(op string, t Task, deferW *bool, step int) *jsonTask {
	return &jsonTask{Op: op, Dir: t.Dir, MB: t.MB, GlobalMB: s.GlobalMB(t.Dir, t.MB), Stage: t.Stage, DeferredW: deferW, Step: step}
}

// MarshalJSON encodes s in the JSON form of the fixture
// ../shared/fixtures/dualpipe/dualpipe_schedule_pp4_mb8.json: variant,
// num_ranks, num_chunks (micro-batches), conventions, and for every rank
// its module stages, op labels and ops (op, dir, mb, global_mb, stage,
// deferred_w for B, step; an FB op holds its halves in f and b). When s is
// valid it also carries the unit-cost simulation (unit_cost_model and every
// rank's unit_cost_start_times).
func (s *Schedule) MarshalJSON() ([]byte, error) {
	if err := s.checkShape(); err != nil {
		return nil, err
	}
	js := jsonSchedule{
		What:        fmt.Sprintf("%s per-rank op order for num_ranks=%d, num_chunks=%d", s.Variant.Title(), s.Ranks, s.MicroBatches),
		Variant:     s.Variant.String(),
		NumRanks:    s.Ranks,
		NumChunks:   s.MicroBatches,
		NumStages:   s.Stages(),
		Conventions: s.conventions(),
	}
	var tl *Timeline
	if Validate(s) == nil {
		var err error
		if tl, err = Simulate(s, UnitCosts()); err != nil {
			return nil, err
		}
		cm := &jsonCostModel{CommLatency: 0, Makespan: tl.Makespan, BusyPerRank: tl.Busy, BubblePerRank: tl.Bubble, PeakActivations: tl.PeakActivations}
		u := UnitCosts()
		cm.Cost.F, cm.Cost.BFull, cm.Cost.BInput, cm.Cost.W, cm.Cost.FB = u.F, u.B, u.B-u.W, u.W, u.FB
		js.CostModel = cm
	}
	for r, ops := range s.Ops {
		jr := jsonRank{Rank: r, ModuleStages: s.Held(r), Labels: s.Labels(r), Ops: make([]jsonOp, len(ops))}
		if tl != nil {
			jr.StartTimes = tl.Start[r]
		}
		for i, o := range ops {
			var jt *jsonTask
			switch o.Kind {
			case Forward, WeightGrad:
				jt = s.jsonTask(o.Kind.String(), o.Task, nil, o.Step)
			case Backward:
				d := o.DeferW
				jt = s.jsonTask("B", o.Task, &d, o.Step)
			case ForwardBackward:
				f := false
				jr.Ops[i] = jsonOp{Op: "FB", Step: o.Step,
					F: s.jsonTask("F", o.Task, nil, o.Step),
					B: s.jsonTask("B", o.Back, &f, o.Step)}
				continue
			default:
				return nil, fmt.Errorf("dualpipe: rank %d op %d: unknown kind %d", r, i, o.Kind)
			}
			jr.Ops[i] = jsonOp{Op: jt.Op, Dir: &jt.Dir, MB: &jt.MB, GlobalMB: &jt.GlobalMB, Stage: &jt.Stage, DeferredW: jt.DeferredW, Step: jt.Step}
		}
		js.Ranks = append(js.Ranks, jr)
	}
	return json.MarshalIndent(js, "", " ")
}

// ParseJSON decodes a schedule in the fixture's JSON form (see
// MarshalJSON). It reads variant, num_ranks, num_chunks and every rank's
// ops, ignores the other fields, and does not validate the result: call
// Validate.
func ParseJSON(data []byte) (*Schedule, error) {
	var js jsonSchedule
	if err := json.Unmarshal(data, &js); err != nil {
		return nil, fmt.Errorf("dualpipe: schedule JSON: %w", err)
	}
	v, err := ParseVariant(js.Variant)
	if err != nil {
		return nil, err
	}
	if js.NumRanks < 1 || len(js.Ranks) != js.NumRanks {
		return nil, fmt.Errorf("dualpipe: schedule JSON: num_ranks %d with %d ranks listed", js.NumRanks, len(js.Ranks))
	}
	s := &Schedule{Variant: v, Ranks: js.NumRanks, MicroBatches: js.NumChunks, Ops: make([][]Op, js.NumRanks)}
	for i, jr := range js.Ranks {
		if jr.Rank != i {
			return nil, fmt.Errorf("dualpipe: schedule JSON: ranks[%d] is rank %d, want %d", i, jr.Rank, i)
		}
		ops := make([]Op, len(jr.Ops))
		for k, jo := range jr.Ops {
			o, err := parseJSONOp(jo)
			if err != nil {
				return nil, fmt.Errorf("dualpipe: schedule JSON: rank %d op %d: %w", i, k, err)
			}
			ops[k] = o
		}
		s.Ops[i] = ops
	}
	return s, nil
}

func parseJSONOp(jo jsonOp) (Op, error) {
	task := func(jo jsonOp) (Task, error) {
		if jo.Dir == nil || jo.MB == nil || jo.Stage == nil {
			return Task{}, fmt.Errorf("op %q needs dir, mb and stage", jo.Op)
		}
		return Task{Dir: *jo.Dir, MB: *jo.MB, Stage: *jo.Stage}, nil
	}
	switch jo.Op {
	case "F", "W":
		t, err := task(jo)
		k := Forward
		if jo.Op == "W" {
			k = WeightGrad
		}
		return Op{Kind: k, Task: t, Step: jo.Step}, err
	case "B":
		t, err := task(jo)
		return Op{Kind: Backward, Task: t, DeferW: jo.DeferredW != nil && *jo.DeferredW, Step: jo.Step}, err
	case "FB":
		if jo.F == nil || jo.B == nil {
			return Op{}, fmt.Errorf("op FB needs both halves f and b")
		}
		if jo.F.Op != "F" || jo.B.Op != "B" {
			return Op{}, fmt.Errorf("op FB has halves %q and %q, want F and B", jo.F.Op, jo.B.Op)
		}
		if jo.B.DeferredW != nil && *jo.B.DeferredW {
			return Op{}, fmt.Errorf("the backward half of an FB op is always full, got deferred_w=true")
		}
		return Op{Kind: ForwardBackward,
			Task: Task{Dir: jo.F.Dir, MB: jo.F.MB, Stage: jo.F.Stage},
			Back: Task{Dir: jo.B.Dir, MB: jo.B.MB, Stage: jo.B.Stage},
			Step: jo.Step}, nil
	}
	return Op{}, fmt.Errorf("unknown op %q, want F, B, W or FB", jo.Op)
}
