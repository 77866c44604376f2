package dualpipe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsv3go/dsv3"
)

// tanhLayer is y = tanh(x), the MLP's activation.
type tanhLayer struct{}

func (tanhLayer) Forward(x dsv3.Matrix, train bool) (dsv3.Matrix, dsv3.Record) {
	y := dsv3.NewMatrix(x.Rows, x.Cols)
	for i := 0; i < x.Rows; i++ {
		for j, v := range x.Row(i) {
			y.Set(i, j, float32(math.Tanh(float64(v))))
		}
	}
	if !train {
		return y, nil
	}
	return y, y
}

func (tanhLayer) Backward(rec dsv3.Record, dy dsv3.Matrix) dsv3.Matrix {
	y := rec.(dsv3.Matrix)
	dx := dsv3.NewMatrix(dy.Rows, dy.Cols)
	for i := 0; i < dy.Rows; i++ {
		for j, g := range dy.Row(i) {
			v := y.At(i, j)
			dx.Set(i, j, g*(1-v*v))
		}
	}
	return dx
}

func (tanhLayer) Params() []dsv3.Param { return nil }

func randMatrix(rng *rand.Rand, rows, cols int, scale float64) dsv3.Matrix {
	m := dsv3.NewMatrix(rows, cols)
	for i := range m.Data {
		m.Data[i] = float32(rng.NormFloat64() * scale)
	}
	return m
}

// mlpStage is one stage of the test model: Linear(d→h), tanh, Linear(h→d).
func mlpStage(rng *rand.Rand, d, h int) *LayerStage {
	l1, l2 := dsv3.NewLinear(h, d, true), dsv3.NewLinear(d, h, true)
	l1.W = randMatrix(rng, h, d, 1/math.Sqrt(float64(d)))
	l2.W = randMatrix(rng, d, h, 1/math.Sqrt(float64(h)))
	return Layers(l1, tanhLayer{}, l2)
}

// clone copies a stage's weights into a new stage with zero gradients.
func clone(s *LayerStage) *LayerStage {
	l1, l2 := s.Layers[0].(*dsv3.Linear), s.Layers[2].(*dsv3.Linear)
	c1, c2 := dsv3.NewLinear(0, 0, true), dsv3.NewLinear(0, 0, true)
	c1.W, c1.Grad = l1.W.(dsv3.Matrix).Clone(), dsv3.NewMatrix(l1.Grad.Rows, l1.Grad.Cols)
	c2.W, c2.Grad = l2.W.(dsv3.Matrix).Clone(), dsv3.NewMatrix(l2.Grad.Rows, l2.Grad.Cols)
	return Layers(c1, tanhLayer{}, c2)
}

// overlapStage runs an F&B pair's forward and backward on two goroutines.
type overlapStage struct{ *LayerStage }

func (s overlapStage) ForwardBackward(x dsv3.Matrix, back Stage, rec dsv3.Record, dy dsv3.Matrix) (dsv3.Matrix, dsv3.Record, dsv3.Matrix, error) {
	var (
		dx   dsv3.Matrix
		berr error
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			if p := recover(); p != nil {
				berr = fmt.Errorf("backward: %v", p)
			}
		}()
		dx, _, berr = back.Backward(rec, dy, false)
	}()
	y, frec, ferr := s.Forward(x)
	wg.Wait()
	return y, frec, dx, errors.Join(ferr, berr)
}

// mseLoss is mean((y - target)²) with its gradient.
func mseLoss(targets []dsv3.Matrix) LossFunc {
	return func(mb int, y dsv3.Matrix) (float64, dsv3.Matrix, error) {
		t := targets[mb]
		if y.Rows != t.Rows || y.Cols != t.Cols {
			return 0, dsv3.Matrix{}, fmt.Errorf("output %dx%d, target %dx%d", y.Rows, y.Cols, t.Rows, t.Cols)
		}
		n := float64(y.Rows * y.Cols)
		dy := dsv3.NewMatrix(y.Rows, y.Cols)
		var loss float64
		for i := 0; i < y.Rows; i++ {
			for j, v := range y.Row(i) {
				d := float64(v) - float64(t.At(i, j))
				loss += d * d
				dy.Set(i, j, float32(2*d/n))
			}
		}
		return loss / n, dy, nil
	}
}

type pipeCase struct {
	v           Variant
	ranks, n    int
	overlap     bool
	d, h, rows  int
	seed        int64
	stages      []*LayerStage // the whole model, for the reference
	loss64      []float64     // float64 reference losses
	inputs, tgt []dsv3.Matrix
}

func newPipeCase(v Variant, ranks, n int, overlap bool, seed int64) *pipeCase {
	c := &pipeCase{v: v, ranks: ranks, n: n, overlap: overlap, d: 6, h: 10, rows: 3, seed: seed}
	rng := rand.New(rand.NewSource(seed))
	nStages := ranks
	if v == DualPipeV {
		nStages = 2 * ranks
	}
	for range nStages {
		c.stages = append(c.stages, mlpStage(rng, c.d, c.h))
	}
	for range n {
		c.inputs = append(c.inputs, randMatrix(rng, c.rows, c.d, 1))
		c.tgt = append(c.tgt, randMatrix(rng, c.rows, c.d, 1))
	}
	return c
}

// reference runs the micro-batches one by one through the whole model on
// one goroutine, with full backwards, and returns the losses; the
// gradients accumulate in ref.
func (c *pipeCase) reference(t *testing.T) (ref []*LayerStage, losses []float64) {
	t.Helper()
	loss := mseLoss(c.tgt)
	for _, s := range c.stages {
		ref = append(ref, clone(s))
	}
	for mb, x := range c.inputs {
		recs := make([]dsv3.Record, len(ref))
		var err error
		for i, s := range ref {
			if x, recs[i], err = s.Forward(x); err != nil {
				t.Fatal(err)
			}
		}
		l, dy, err := loss(mb, x)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, l)
		for i := len(ref) - 1; i >= 0; i-- {
			if dy, _, err = ref[i].Backward(recs[i], dy, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ref, losses
}

// executor places fresh copies of the model's stages on the ranks.
func (c *pipeCase) executor(t testing.TB) *Executor {
	t.Helper()
	s, err := Generate(c.v, c.ranks, c.n)
	if err != nil {
		t.Fatal(err)
	}
	e := &Executor{Schedule: s, Loss: mseLoss(c.tgt), Chunks: make([][]Stage, s.Ranks)}
	for r := range s.Ranks {
		for _, st := range s.Held(r) {
			var stage Stage = clone(c.stages[st])
			if c.overlap {
				stage = overlapStage{clone(c.stages[st])}
			}
			e.Chunks[r] = append(e.Chunks[r], stage)
		}
	}
	return e
}

// copies returns the executor's copies of stage st.
func copiesOf(e *Executor, st int) []Stage {
	s := e.Schedule
	var out []Stage
	for r := range s.Ranks {
		for j, h := range s.Held(r) {
			if h == st {
				out = append(out, e.Chunks[r][j])
			}
		}
	}
	return out
}

// maxRelDiff returns max |a-b| / max |b|.
func maxRelDiff(a, b dsv3.Matrix) float64 {
	var num, den float64
	for i := 0; i < b.Rows; i++ {
		for j := 0; j < b.Cols; j++ {
			num = max(num, math.Abs(float64(a.At(i, j))-float64(b.At(i, j))))
			den = max(den, math.Abs(float64(b.At(i, j))))
		}
	}
	return num / den
}

// TestExecutorMatchesSequential runs DualPipe and DualPipeV (and the
// baselines) on the executor with an MLP built from dsv3.Linear layers:
// the losses must be bit-identical to running the micro-batches one by one
// through the whole model, and the gradients (for DualPipe the sum of the
// two copies, which both hold) within 1e-6 of that single-process
// reference; both are also checked against a float64 reference written
// out here.
func TestExecutorMatchesSequential(t *testing.T) {
	cases := []*pipeCase{
		newPipeCase(DualPipe, 4, 8, false, 1),
		newPipeCase(DualPipe, 4, 12, true, 2),
		newPipeCase(DualPipe, 2, 4, true, 3),
		newPipeCase(DualPipe, 6, 14, false, 4),
		newPipeCase(DualPipe, 8, 20, true, 5),
		newPipeCase(DualPipeV, 4, 8, false, 6),
		newPipeCase(DualPipeV, 4, 10, true, 7),
		newPipeCase(DualPipeV, 3, 7, true, 8),
		newPipeCase(DualPipeV, 1, 3, false, 9),
		newPipeCase(OneFOneB, 4, 6, false, 10),
		newPipeCase(ZB1P, 4, 6, false, 11),
		newPipeCase(ZB1P, 3, 2, false, 12),
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v/P=%d/N=%d/overlap=%v", c.v, c.ranks, c.n, c.overlap), func(t *testing.T) {
			ref, refLosses := c.reference(t)
			e := c.executor(t)
			losses, err := e.Step(context.Background(), c.inputs)
			if err != nil {
				t.Fatal(err)
			}
			for mb := range losses {
				if math.Float64bits(losses[mb]) != math.Float64bits(refLosses[mb]) {
					t.Errorf("micro-batch %d: loss %v, sequential %v (not bit-identical)", mb, losses[mb], refLosses[mb])
				}
			}
			want64 := c.float64Reference()
			for st := range c.stages {
				copies := copiesOf(e, st)
				if want := e.Schedule.ParamCopies(); len(copies) != want {
					t.Fatalf("stage %d has %d copies, want %d", st, len(copies), want)
				}
				refPs := ref[st].Params()
				for ci, cp := range copies {
					ps := cp.Params()
					for i, p := range ps {
						if d := maxRelDiff(p.Grad, refPs[i].Grad); d > 1e-6 {
							t.Errorf("stage %d copy %d %s: gradient differs from the sequential run by %.3g (relative)", st, ci, p.Name, d)
						}
						if d := maxRel64(p.Grad, want64[st][i]); d > 1e-4 {
							t.Errorf("stage %d copy %d %s: gradient differs from the float64 reference by %.3g", st, ci, p.Name, d)
						}
						if ci > 0 {
							if d := maxRelDiff(p.Grad, copies[0].Params()[i].Grad); d != 0 {
								t.Errorf("stage %d %s: the two copies' gradients differ by %.3g after the sum", st, p.Name, d)
							}
						}
					}
				}
			}
			for mb, l := range losses {
				if math.Abs(l-c.loss64[mb]) > 1e-5*math.Abs(c.loss64[mb]) {
					t.Errorf("micro-batch %d: loss %v, float64 reference %v", mb, l, c.loss64[mb])
				}
			}
		})
	}
}

// float64Reference computes the model's losses (into c.loss64) and the
// gradients of every stage's two weights [W1, W2] in float64 with plain
// loops, independently of dsv3's GEMM and of the stages' backward code.
func (c *pipeCase) float64Reference() [][][]float64 {
	type w64 struct{ w1, w2 []float64 } // [h, d], [d, h]
	conv := func(m dsv3.Matrix) []float64 {
		out := make([]float64, 0, m.Rows*m.Cols)
		for i := 0; i < m.Rows; i++ {
			for _, v := range m.Row(i) {
				out = append(out, float64(v))
			}
		}
		return out
	}
	d, h, rows := c.d, c.h, c.rows
	ws := make([]w64, len(c.stages))
	grads := make([][][]float64, len(c.stages))
	for i, s := range c.stages {
		ws[i] = w64{conv(s.Layers[0].(*dsv3.Linear).W.(dsv3.Matrix)), conv(s.Layers[2].(*dsv3.Linear).W.(dsv3.Matrix))}
		grads[i] = [][]float64{make([]float64, h*d), make([]float64, d*h)}
	}
	c.loss64 = nil
	for mb := range c.inputs {
		x := conv(c.inputs[mb])
		xs := make([][]float64, len(ws))
		as := make([][]float64, len(ws))
		for si, w := range ws {
			xs[si] = x
			a := make([]float64, rows*h)
			for r := 0; r < rows; r++ {
				for k := 0; k < h; k++ {
					var s float64
					for j := 0; j < d; j++ {
						s += x[r*d+j] * w.w1[k*d+j]
					}
					a[r*h+k] = math.Tanh(s)
				}
			}
			as[si] = a
			y := make([]float64, rows*d)
			for r := 0; r < rows; r++ {
				for j := 0; j < d; j++ {
					var s float64
					for k := 0; k < h; k++ {
						s += a[r*h+k] * w.w2[j*h+k]
					}
					y[r*d+j] = s
				}
			}
			x = y
		}
		tg := conv(c.tgt[mb])
		n := float64(rows * d)
		var loss float64
		dy := make([]float64, rows*d)
		for i := range x {
			loss += (x[i] - tg[i]) * (x[i] - tg[i])
			dy[i] = 2 * (x[i] - tg[i]) / n
		}
		c.loss64 = append(c.loss64, loss/n)
		for si := len(ws) - 1; si >= 0; si-- {
			w, a, xin := ws[si], as[si], xs[si]
			g1, g2 := grads[si][0], grads[si][1]
			dh := make([]float64, rows*h)
			for r := 0; r < rows; r++ {
				for k := 0; k < h; k++ {
					var s float64
					for j := 0; j < d; j++ {
						g2[j*h+k] += dy[r*d+j] * a[r*h+k]
						s += dy[r*d+j] * w.w2[j*h+k]
					}
					dh[r*h+k] = s * (1 - a[r*h+k]*a[r*h+k])
				}
			}
			dx := make([]float64, rows*d)
			for r := 0; r < rows; r++ {
				for j := 0; j < d; j++ {
					var s float64
					for k := 0; k < h; k++ {
						g1[k*d+j] += dh[r*h+k] * xin[r*d+j]
						s += dh[r*h+k] * w.w1[k*d+j]
					}
					dx[r*d+j] = s
				}
			}
			dy = dx
		}
	}
	return grads
}

// maxRel64 returns max |m - want| / max |want|.
func maxRel64(m dsv3.Matrix, want []float64) float64 {
	var num, den float64
	for i := 0; i < m.Rows; i++ {
		for j, v := range m.Row(i) {
			w := want[i*m.Cols+j]
			num = max(num, math.Abs(float64(v)-w))
			den = max(den, math.Abs(w))
		}
	}
	return num / den
}

// faultyStage wraps a stage and misbehaves on its k-th call of one method.
type faultyStage struct {
	Stage
	mu      sync.Mutex
	calls   int
	onCall  int
	method  string // "forward" or "backward"
	action  func() // called instead of (or before) the real work
	fail    bool   // return an error
	panics  bool
	wrongDX bool
}

func (f *faultyStage) hit(method string) bool {
	if method != f.method {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.calls == f.onCall
}

func (f *faultyStage) Forward(x dsv3.Matrix) (dsv3.Matrix, dsv3.Record, error) {
	if f.hit("forward") {
		if f.action != nil {
			f.action()
		}
		if f.panics {
			panic("injected panic")
		}
		if f.fail {
			return dsv3.Matrix{}, nil, errors.New("injected forward failure")
		}
	}
	return f.Stage.Forward(x)
}

func (f *faultyStage) Backward(rec dsv3.Record, dy dsv3.Matrix, deferW bool) (dsv3.Matrix, dsv3.Record, error) {
	if f.hit("backward") {
		if f.panics {
			panic("injected panic")
		}
		if f.fail {
			return dsv3.Matrix{}, nil, errors.New("injected backward failure")
		}
		if f.wrongDX {
			dx, w, err := f.Stage.Backward(rec, dy, deferW)
			return dsv3.NewMatrix(dx.Rows+1, dx.Cols), w, err
		}
	}
	return f.Stage.Backward(rec, dy, deferW)
}

// stepWithin runs e.Step and fails the test if it does not return in time
// (a hang).
func stepWithin(t *testing.T, ctx context.Context, e *Executor, inputs []dsv3.Matrix) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := e.Step(ctx, inputs)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Step did not return: the executor hangs")
		return nil
	}
}

func TestExecutorErrorsDoNotHang(t *testing.T) {
	for _, v := range []Variant{DualPipe, DualPipeV} {
		for _, fc := range []struct {
			name string
			f    func() *faultyStage
			want string
		}{
			{"forward error", func() *faultyStage { return &faultyStage{method: "forward", onCall: 2, fail: true} }, "injected forward failure"},
			{"backward error", func() *faultyStage { return &faultyStage{method: "backward", onCall: 1, fail: true} }, "injected backward failure"},
			{"panic", func() *faultyStage { return &faultyStage{method: "backward", onCall: 2, panics: true} }, "injected panic"},
			{"wrong dx", func() *faultyStage { return &faultyStage{method: "backward", onCall: 1, wrongDX: true} }, "backward returned dx"},
		} {
			c := newPipeCase(v, 4, 8, true, 20)
			e := c.executor(t)
			f := fc.f()
			f.Stage = e.Chunks[1][0]
			e.Chunks[1][0] = f
			err := stepWithin(t, context.Background(), e, c.inputs)
			if err == nil || !strings.Contains(err.Error(), fc.want) || !strings.Contains(err.Error(), "rank 1") {
				t.Errorf("%v %s: Step error %v, want one from rank 1 containing %q", v, fc.name, err, fc.want)
			}
		}

		// Cancelling the context mid-step stops every rank.
		c := newPipeCase(v, 4, 8, false, 21)
		e := c.executor(t)
		ctx, cancel := context.WithCancel(context.Background())
		e.Chunks[2][1] = &faultyStage{Stage: e.Chunks[2][1], method: "forward", onCall: 2, action: cancel}
		if err := stepWithin(t, ctx, e, c.inputs); !errors.Is(err, context.Canceled) {
			t.Errorf("%v cancelled mid-step: Step error %v, want context.Canceled", v, err)
		}
		cancel()
		if err := stepWithin(t, ctx, c.executor(t), c.inputs); !errors.Is(err, context.Canceled) {
			t.Errorf("%v cancelled before the step: Step error %v, want context.Canceled", v, err)
		}

		// A failing loss.
		c = newPipeCase(v, 4, 8, false, 22)
		e = c.executor(t)
		e.Loss = func(mb int, y dsv3.Matrix) (float64, dsv3.Matrix, error) {
			if mb == 5 {
				return 0, dsv3.Matrix{}, errors.New("bad label")
			}
			return 0, dsv3.NewMatrix(y.Rows, y.Cols), nil
		}
		if err := stepWithin(t, context.Background(), e, c.inputs); err == nil || !strings.Contains(err.Error(), "bad label") {
			t.Errorf("%v failing loss: Step error %v", v, err)
		}
		e = c.executor(t)
		e.Loss = func(mb int, y dsv3.Matrix) (float64, dsv3.Matrix, error) { return 0, dsv3.NewMatrix(1, 1), nil }
		if err := stepWithin(t, context.Background(), e, c.inputs); err == nil || !strings.Contains(err.Error(), "gradient is 1x1") {
			t.Errorf("%v loss gradient of the wrong shape: Step error %v", v, err)
		}
	}
}

func TestExecutorConfigErrors(t *testing.T) {
	c := newPipeCase(DualPipe, 4, 8, false, 30)
	for _, bc := range []struct {
		name   string
		modify func(e *Executor) []dsv3.Matrix
		want   string
	}{
		{"nil schedule", func(e *Executor) []dsv3.Matrix { e.Schedule = nil; return c.inputs }, "Schedule is nil"},
		{"nil loss", func(e *Executor) []dsv3.Matrix { e.Loss = nil; return c.inputs }, "Loss is nil"},
		{"few inputs", func(e *Executor) []dsv3.Matrix { return c.inputs[:7] }, "7 input micro-batches, the schedule has 8"},
		{"few ranks", func(e *Executor) []dsv3.Matrix { e.Chunks = e.Chunks[:3]; return c.inputs }, "Chunks has 3 ranks"},
		{"one chunk", func(e *Executor) []dsv3.Matrix { e.Chunks[2] = e.Chunks[2][:1]; return c.inputs }, "Chunks[2] has 1 stages, want 2"},
		{"nil chunk", func(e *Executor) []dsv3.Matrix { e.Chunks[0][1] = nil; return c.inputs }, "is nil"},
		{"shared copy", func(e *Executor) []dsv3.Matrix { e.Chunks[3][1] = e.Chunks[0][0]; return c.inputs }, "same Stage value"},
		{"mismatched copies", func(e *Executor) []dsv3.Matrix {
			e.Chunks[3][1] = Layers(dsv3.NewLinear(2, 6, true))
			return c.inputs
		}, "two copies of stage 0"},
		{"invalid schedule", func(e *Executor) []dsv3.Matrix {
			e.Schedule.Ops[0] = e.Schedule.Ops[0][1:]
			return c.inputs
		}, "runs 0 times"},
	} {
		e := c.executor(t)
		in := bc.modify(e)
		_, err := e.Step(context.Background(), in)
		if err == nil || !strings.Contains(err.Error(), bc.want) {
			t.Errorf("%s: Step error %v, want one containing %q", bc.name, err, bc.want)
		}
	}
}

// TestLayerStageGradients checks LayerStage's backward, full and with the
// Linear weight gradients deferred, against central finite differences of
// L = Σ y⊙R, and that both modes give identical gradients.
func TestLayerStageGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(40))
	s := mlpStage(rng, 5, 7)
	x := randMatrix(rng, 4, 5, 1)
	R := randMatrix(rng, 4, 5, 1)
	lossOf := func() float64 {
		y, _, err := s.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		var l float64
		for i := 0; i < y.Rows; i++ {
			for j, v := range y.Row(i) {
				l += float64(v) * float64(R.At(i, j))
			}
		}
		return l
	}
	grads := func(deferW bool) ([]dsv3.Matrix, dsv3.Matrix) {
		ps := s.Params()
		dsv3.ZeroGrads(ps)
		_, rec, err := s.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		dx, w, err := s.Backward(rec, R, deferW)
		if err != nil {
			t.Fatal(err)
		}
		if deferW {
			for _, p := range ps {
				for _, v := range p.Grad.Data {
					if v != 0 {
						t.Fatalf("deferred backward already wrote %s", p.Name)
					}
				}
			}
			if w == nil {
				t.Fatal("deferred backward returned no weight-gradient work")
			}
			if err := s.BackwardWeight(w); err != nil {
				t.Fatal(err)
			}
		} else if w != nil {
			t.Fatal("full backward returned deferred work")
		}
		out := make([]dsv3.Matrix, len(ps))
		for i, p := range ps {
			out[i] = p.Grad.Clone()
		}
		return out, dx
	}
	full, dxFull := grads(false)
	split, dxSplit := grads(true)
	for i := range full {
		if d := maxRelDiff(split[i], full[i]); d != 0 {
			t.Errorf("param %d: deferred and full gradients differ by %g", i, d)
		}
	}
	if d := maxRelDiff(dxSplit, dxFull); d != 0 {
		t.Errorf("dx: deferred and full differ by %g", d)
	}
	const eps = 1e-2
	fd := func(v *float32) float64 {
		old := *v
		*v = old + eps
		lp := lossOf()
		*v = old - eps
		lm := lossOf()
		*v = old
		return (lp - lm) / (2 * eps)
	}
	check := func(name string, vals []float32, analytic dsv3.Matrix) {
		var num, den float64
		for i := range vals {
			g := fd(&vals[i])
			num = max(num, math.Abs(g-float64(analytic.Data[i])))
			den = max(den, math.Abs(g))
		}
		if num > 2e-3*den {
			t.Errorf("%s: finite differences differ from the analytic gradient by %.3g (scale %.3g)", name, num, den)
		}
	}
	ps := s.Params()
	for i, p := range ps {
		check(p.Name, p.Value.Data, split[i])
	}
	check("x", x.Data, dxSplit)

	// Bad records and shapes are errors, not panics.
	if _, _, err := s.Backward("not a record", R, true); err == nil {
		t.Errorf("Backward with a foreign record: no error")
	}
	if err := s.BackwardWeight(42); err == nil {
		t.Errorf("BackwardWeight with a foreign record: no error")
	}
	if _, _, err := s.Forward(dsv3.NewMatrix(2, 3)); err == nil {
		t.Errorf("Forward with 3 features into a 5-feature stage: no error")
	}
}
