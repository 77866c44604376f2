package dualpipe

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3/internal/testutil"
)

// fixtureTask and fixtureOp decode the fixture independently of json.go.
type fixtureTask struct {
	Op        string `json:"op"`
	Dir       int    `json:"dir"`
	MB        int    `json:"mb"`
	GlobalMB  int    `json:"global_mb"`
	Stage     int    `json:"stage"`
	DeferredW *bool  `json:"deferred_w"`
	Step      int    `json:"step"`
}

type fixtureOp struct {
	fixtureTask
	F *fixtureTask `json:"f"`
	B *fixtureTask `json:"b"`
}

type fixtureSchedule struct {
	Variant   string `json:"variant"`
	NumRanks  int    `json:"num_ranks"`
	NumChunks int    `json:"num_chunks"`
	CostModel struct {
		Cost struct {
			F, BFull, BInput, W, FB float64
		} `json:"-"`
		CommLatency   float64   `json:"comm_latency"`
		Makespan      float64   `json:"makespan"`
		BusyPerRank   []float64 `json:"busy_per_rank"`
		BubblePerRank []float64 `json:"bubble_per_rank"`
	} `json:"unit_cost_model"`
	Ranks []struct {
		Rank         int         `json:"rank"`
		ModuleStages []int       `json:"module_stages"`
		Labels       []string    `json:"labels"`
		Ops          []fixtureOp `json:"ops"`
		StartTimes   []float64   `json:"unit_cost_start_times"`
	} `json:"ranks"`
}

const fixtureName = "dualpipe_schedule_pp4_mb8.json"

// TestDualPipeMatchesReferenceFixture checks the generated DualPipe
// schedule for P=4, N=8 against the per-rank op order of the reference
// implementation, operation for operation, and the unit-cost simulation
// against the fixture's start times, makespan and bubbles.
func TestDualPipeMatchesReferenceFixture(t *testing.T) {
	path := testutil.Fixture(t, "dualpipe", fixtureName)
	var fx fixtureSchedule
	testutil.ReadJSON(t, path, &fx)
	if fx.Variant != "dualpipe" || fx.NumRanks != 4 || fx.NumChunks != 8 {
		t.Fatalf("fixture is %s P=%d N=%d, want dualpipe 4 8", fx.Variant, fx.NumRanks, fx.NumChunks)
	}
	s, err := NewDualPipe(fx.NumRanks, fx.NumChunks)
	if err != nil {
		t.Fatal(err)
	}
	if len(fx.Ranks) != s.Ranks {
		t.Fatalf("fixture has %d ranks", len(fx.Ranks))
	}
	check := func(r, i int, what string, want fixtureTask, got Task, kind string, deferW bool, step int) {
		t.Helper()
		if want.Op != kind || want.Dir != got.Dir || want.MB != got.MB || want.Stage != got.Stage ||
			want.GlobalMB != s.GlobalMB(got.Dir, got.MB) || want.Step != step {
			t.Errorf("rank %d op %d%s: got %s dir %d mb %d (global %d) stage %d step %d, want %+v",
				r, i, what, kind, got.Dir, got.MB, s.GlobalMB(got.Dir, got.MB), got.Stage, step, want)
		}
		if kind == "B" && (want.DeferredW == nil || *want.DeferredW != deferW) {
			t.Errorf("rank %d op %d%s: deferred_w %v, want %v", r, i, what, deferW, want.DeferredW)
		}
	}
	for r, fr := range fx.Ranks {
		if fr.Rank != r || !reflect.DeepEqual(fr.ModuleStages, s.Held(r)) {
			t.Errorf("rank %d: module stages %v, fixture %v", r, s.Held(r), fr.ModuleStages)
		}
		if got := s.Labels(r); !reflect.DeepEqual(got, fr.Labels) {
			t.Errorf("rank %d labels:\n got %v\nwant %v", r, got, fr.Labels)
		}
		ops := s.Ops[r]
		if len(ops) != len(fr.Ops) {
			t.Fatalf("rank %d: %d ops, fixture %d", r, len(ops), len(fr.Ops))
		}
		for i, want := range fr.Ops {
			o := ops[i]
			if want.Op == "FB" {
				if o.Kind != ForwardBackward || want.F == nil || want.B == nil || want.Step != o.Step {
					t.Errorf("rank %d op %d: got %v (step %d), fixture has an FB pair at step %d", r, i, o, o.Step, want.Step)
					continue
				}
				check(r, i, " (f)", *want.F, o.Task, "F", false, o.Step)
				check(r, i, " (b)", *want.B, o.Back, "B", false, o.Step)
				continue
			}
			check(r, i, "", want.fixtureTask, o.Task, o.Kind.String(), o.DeferW, o.Step)
		}
	}
	if err := Validate(s); err != nil {
		t.Fatal(err)
	}
	tl, err := Simulate(s, UnitCosts())
	if err != nil {
		t.Fatal(err)
	}
	if tl.Makespan != fx.CostModel.Makespan || !reflect.DeepEqual(tl.Busy, fx.CostModel.BusyPerRank) || !reflect.DeepEqual(tl.Bubble, fx.CostModel.BubblePerRank) {
		t.Errorf("unit costs: makespan %v busy %v bubble %v, fixture %v %v %v",
			tl.Makespan, tl.Busy, tl.Bubble, fx.CostModel.Makespan, fx.CostModel.BusyPerRank, fx.CostModel.BubblePerRank)
	}
	for r, fr := range fx.Ranks {
		if !reflect.DeepEqual(tl.Start[r], fr.StartTimes) {
			t.Errorf("rank %d unit-cost start times\n got %v\nwant %v", r, tl.Start[r], fr.StartTimes)
		}
	}

	// The fixture, read through ParseJSON, is the same schedule, and our
	// JSON form of it round-trips.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parsed, s) {
		t.Errorf("ParseJSON(fixture) differs from the generated schedule")
	}
	ours, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var again fixtureSchedule
	if err := json.Unmarshal(ours, &again); err != nil {
		t.Fatal(err)
	}
	for r := range again.Ranks {
		if !reflect.DeepEqual(again.Ranks[r].Ops, fx.Ranks[r].Ops) || !reflect.DeepEqual(again.Ranks[r].StartTimes, fx.Ranks[r].StartTimes) {
			t.Errorf("rank %d: our JSON ops differ from the fixture's", r)
		}
	}
}

// TestGeneratedSchedulesValidate generates every variant over a range of
// sizes (the rules that reproduce the fixture, generalised) and checks them
// with the validator, plus structural facts of each family.
func TestGeneratedSchedulesValidate(t *testing.T) {
	for _, v := range Variants {
		for _, p := range []int{1, 2, 3, 4, 6, 8, 16} {
			for _, n := range []int{1, 2, p, 2*p - 1, 2 * p, 2*p + 1, 2*p + 2, 3 * p, 20, 40} {
				s, err := Generate(v, p, n)
				if err != nil {
					continue
				}
				if err := Validate(s); err != nil {
					t.Fatalf("%v P=%d N=%d: %v", v, p, n, err)
				}
				for r, ops := range s.Ops {
					if v == DualPipe || v == DualPipeV {
						// Every rank runs each of its two chunks' N/Dirs()
						// forwards and backwards, as in the reference.
						nf := 0
						for _, o := range ops {
							if o.Kind == Forward || o.Kind == ForwardBackward {
								nf++
							}
						}
						if want := 2 * s.DirMicroBatches(); nf != want {
							t.Errorf("%v P=%d N=%d rank %d: %d forwards, want %d", v, p, n, r, nf, want)
						}
					}
					// Deferred weight gradients run in FIFO order, as the
					// reference's WeightGradStore assumes.
					var queue []Task
					for _, o := range ops {
						if o.Kind == Backward && o.DeferW {
							queue = append(queue, o.Task)
						}
						if o.Kind == WeightGrad {
							if len(queue) == 0 || queue[0] != o.Task {
								t.Fatalf("%v P=%d N=%d rank %d: W %v out of FIFO order", v, p, n, r, o)
							}
							queue = queue[1:]
						}
					}
				}
			}
		}
	}
}

func TestBadParameters(t *testing.T) {
	for _, c := range []struct {
		v    Variant
		p, n int
		want string
	}{
		{DualPipe, 3, 12, "even number of ranks"},
		{DualPipe, 5, 20, "even number of ranks"},
		{DualPipe, 0, 8, "even number of ranks"},
		{DualPipe, 4, 6, "N >= 2P"},
		{DualPipe, 8, 14, "N >= 2P"},
		{DualPipe, 4, 9, "even number of micro-batches"},
		{DualPipe, 4, 11, "even number of micro-batches"},
		{DualPipeV, 4, 7, "N >= 2·ranks"},
		{DualPipeV, 0, 7, "at least 1 rank"},
		{OneFOneB, 0, 4, "at least 1 rank"},
		{OneFOneB, 4, 0, "at least 1 micro-batch"},
		{ZB1P, -1, 4, "at least 1 rank"},
		{ZB1P, 4, -2, "at least 1 micro-batch"},
	} {
		s, err := Generate(c.v, c.p, c.n)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Generate(%v, P=%d, N=%d) = %v, %v; want an error containing %q", c.v, c.p, c.n, s, err, c.want)
		}
	}
	if _, err := Compare(5, 20, UnitCosts()); err == nil {
		t.Errorf("Compare with odd PP: no error")
	}
	if _, err := ParseVariant("gpipe"); err == nil {
		t.Errorf("ParseVariant(gpipe): no error")
	}
	for _, c := range []Costs{{F: -1, B: 2, W: 1}, {F: 1, B: 1, W: 2}, {F: 1, B: 2, W: 1, Comm: -0.5}} {
		s, _ := NewOneFOneB(2, 4)
		if _, err := Simulate(s, c); err == nil {
			t.Errorf("Simulate with costs %+v: no error", c)
		}
	}
}

// TestValidatorCatchesBrokenSchedules breaks valid schedules in the ways
// the validator must notice.
func TestValidatorCatchesBrokenSchedules(t *testing.T) {
	base := func() *Schedule {
		s, err := NewDualPipe(4, 8)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	find := func(s *Schedule, r int, label string) int {
		for i, o := range s.Ops[r] {
			if o.Label() == label {
				return i
			}
		}
		t.Fatalf("rank %d has no op %s", r, label)
		return -1
	}
	cases := []struct {
		name   string
		break_ func(s *Schedule)
		want   string
	}{
		{"missing forward", func(s *Schedule) {
			i := find(s, 1, "F0.1")
			s.Ops[1] = append(s.Ops[1][:i:i], s.Ops[1][i+1:]...)
		}, "no matching receive"},
		{"duplicated backward", func(s *Schedule) {
			i := find(s, 1, "B1.2")
			s.Ops[1] = append(s.Ops[1], s.Ops[1][i])
		}, "runs 2 times"},
		{"backward before forward", func(s *Schedule) {
			// Rank 3 holds the last stage of direction 0: swap its
			// forward of micro-batch 0 with the backward that follows.
			i, j := find(s, 3, "F0.0"), find(s, 3, "Bi0.0")
			s.Ops[3][i], s.Ops[3][j] = s.Ops[3][j], s.Ops[3][i]
		}, "before its forward"},
		{"W without deferral", func(s *Schedule) {
			i := find(s, 0, "Bi1.0")
			s.Ops[0][i].DeferW = false
		}, "no deferring input-only backward"},
		{"W before its B", func(s *Schedule) {
			i, j := find(s, 0, "Bi0.3"), find(s, 0, "W0.3")
			s.Ops[0][i], s.Ops[0][j] = s.Ops[0][j], s.Ops[0][i]
		}, "before its input-only backward"},
		{"op on the wrong rank", func(s *Schedule) {
			i := find(s, 0, "F0.0")
			s.Ops[0][i].Stage = 1
		}, "lives on rank 1"},
		{"micro-batch out of range", func(s *Schedule) {
			s.Ops[2][0].MB = 9
		}, "micro-batch 9"},
		{"FB on one chunk", func(s *Schedule) {
			i := find(s, 0, "F0.3&B1.1")
			s.Ops[0][i].Back = Task{Dir: 0, MB: 3, Stage: 0}
		}, "two different chunks"},
		{"deadlock", func(s *Schedule) {
			// Rank 0 waits for the gradient of micro-batch 0 before
			// sending micro-batch 1's activation, which rank 1 needs
			// before it can produce that gradient.
			i, j := find(s, 0, "F0.1"), find(s, 0, "F1.2&B0.0")
			op := s.Ops[0][i]
			s.Ops[0] = append(s.Ops[0][:i:i], s.Ops[0][i+1:]...)
			j--
			s.Ops[0] = append(s.Ops[0][:j+1:j+1], append([]Op{op}, s.Ops[0][j+1:]...)...)
		}, "deadlock"},
		{"odd ranks", func(s *Schedule) { s.Ranks = 3; s.Ops = s.Ops[:3] }, "even number of ranks"},
		{"missing rank", func(s *Schedule) { s.Ops = s.Ops[:3] }, "programs for 3 ranks"},
	}
	for _, c := range cases {
		s := base()
		c.break_(s)
		err := Validate(s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error containing %q", c.name, err, c.want)
		}
	}
	if err := Validate(nil); err == nil {
		t.Errorf("Validate(nil): no error")
	}
	// A deadlock across ranks in 1F1B: rank 1 runs F1 before B0 while
	// rank 0 waits for B0 before running F1.
	s := &Schedule{Variant: OneFOneB, Ranks: 2, MicroBatches: 2, Ops: [][]Op{
		{{Kind: Forward, Task: Task{MB: 0}}, {Kind: Backward, Task: Task{MB: 0}}, {Kind: Forward, Task: Task{MB: 1}}, {Kind: Backward, Task: Task{MB: 1}}},
		{{Kind: Forward, Task: Task{MB: 0, Stage: 1}}, {Kind: Forward, Task: Task{MB: 1, Stage: 1}}, {Kind: Backward, Task: Task{MB: 0, Stage: 1}}, {Kind: Backward, Task: Task{MB: 1, Stage: 1}}},
	}}
	if err := Validate(s); err == nil || !strings.Contains(err.Error(), "deadlock") {
		t.Errorf("crossed 1F1B: Validate = %v, want a deadlock", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, v := range Variants {
		s, err := Generate(v, 4, 10)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJSON(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, s) {
			t.Errorf("%v: JSON round trip changed the schedule", v)
		}
	}
	for _, bad := range []string{
		`{"variant":"dualpipe","num_ranks":1,"num_chunks":2,"ranks":[{"rank":0,"ops":[{"op":"X","dir":0,"mb":0,"stage":0}]}]}`,
		`{"variant":"dualpipe","num_ranks":1,"num_chunks":2,"ranks":[{"rank":0,"ops":[{"op":"F","mb":0}]}]}`,
		`{"variant":"dualpipe","num_ranks":2,"num_chunks":2,"ranks":[{"rank":0,"ops":[]}]}`,
		`{"variant":"gpipe","num_ranks":1,"num_chunks":2,"ranks":[{"rank":0,"ops":[]}]}`,
		`{"variant":"dualpipe","num_ranks":1,"num_chunks":2,"ranks":[{"rank":0,"ops":[{"op":"FB","f":{"op":"F"}}]}]}`,
		`not json`,
	} {
		if _, err := ParseJSON([]byte(bad)); err == nil {
			t.Errorf("ParseJSON(%s): no error", bad)
		}
	}
}

// TestTransfersMatchReferenceComm derives every activation and gradient
// transfer from the generated P=4, N=8 DualPipe schedule and the placement
// of its stages, and compares them with the sends and receives the
// reference posts (the fixture's program_with_comm): the same messages
// between the same ranks, each send matched by one receive.
func TestTransfersMatchReferenceComm(t *testing.T) {
	var fx struct {
		Ranks []struct {
			Program []struct {
				Comm []string `json:"comm_batch"`
			} `json:"program_with_comm"`
		} `json:"ranks"`
	}
	testutil.ReadJSON(t, testutil.Fixture(t, "dualpipe", fixtureName), &fx)
	type msg struct {
		from, to int
		kind     string // act or grad
		dir, mb  int
	}
	refSends, refRecvs := map[msg]int{}, map[msg]int{}
	for r, fr := range fx.Ranks {
		for _, step := range fr.Program {
			for _, c := range step.Comm {
				f := strings.Fields(c) // "send act0.3 to rank 1"
				if len(f) != 5 || f[3] != "rank" {
					t.Fatalf("fixture comm %q", c)
				}
				verb, what := f[0], f[1]
				kind := strings.TrimRight(what, "0123456789.")
				var peer, dir, mb int
				if _, err := fmt.Sscanf(f[4], "%d", &peer); err != nil {
					t.Fatalf("fixture comm %q: %v", c, err)
				}
				if _, err := fmt.Sscanf(strings.TrimPrefix(what, kind), "%d.%d", &dir, &mb); err != nil {
					t.Fatalf("fixture comm %q: %v", c, err)
				}
				switch verb {
				case "send":
					refSends[msg{r, peer, kind, dir, mb}]++
				case "recv":
					refRecvs[msg{peer, r, kind, dir, mb}]++
				default:
					t.Fatalf("fixture comm %q", c)
				}
			}
		}
	}
	if len(refSends) == 0 {
		t.Fatal("the fixture lists no sends")
	}
	s, err := NewDualPipe(4, 8)
	if err != nil {
		t.Fatal(err)
	}
	ours := map[msg]int{}
	for r, ops := range s.Ops {
		for _, o := range ops {
			for _, w := range o.parts() {
				t0 := w.t
				switch {
				case w.p == partF && t0.Stage < s.Stages()-1:
					if to := s.RankOf(t0.Dir, t0.Stage+1); to != r {
						ours[msg{r, to, "act", t0.Dir, t0.MB}]++
					}
				case w.p == partB && t0.Stage > 0:
					if to := s.RankOf(t0.Dir, t0.Stage-1); to != r {
						ours[msg{r, to, "grad", t0.Dir, t0.MB}]++
					}
				}
			}
		}
	}
	if !reflect.DeepEqual(ours, refSends) {
		t.Errorf("transfers of the generated schedule differ from the reference's sends:\n ours %v\n ref  %v", ours, refSends)
	}
	if !reflect.DeepEqual(refSends, refRecvs) {
		t.Errorf("the reference's sends and receives do not pair up")
	}
	for m, k := range ours {
		if k != 1 {
			t.Errorf("message %+v sent %d times", m, k)
		}
	}
}
