package yarn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/testutil"
)

// ropeFixture is one configuration of common/rope_yarn.json.
type ropeFixture struct {
	MaxSeqLen int         `json:"max_seq_len"`
	Positions []int       `json:"positions"`
	Cos       [][]float64 `json:"cos"`
	Sin       [][]float64 `json:"sin"`
	InvFreq64 []float64   `json:"inv_freq_yarn_float64_own"`
	InvFreq32 []float64   `json:"inv_freq_float32"`
	Range     []int       `json:"correction_range_low_high"`
	Smooth    []float64   `json:"-"` // key "smooth (1=keep original freq, 0=fully divided by factor)"
	Active    bool        `json:"yarn_active"`
	Softmax   float64     `json:"softmax_scale"`
}

func loadRopeFixtures(t *testing.T) map[string]ropeFixture {
	t.Helper()
	path := testutil.Fixture(t, "common", "rope_yarn.json")
	var raw map[string]ropeFixture
	testutil.ReadJSON(t, path, &raw)
	// The smooth values sit under a key with a comma, which a struct tag
	// cannot name.
	var loose map[string]map[string]any
	testutil.ReadJSON(t, path, &loose)
	out := map[string]ropeFixture{}
	for k, v := range raw {
		for kk, vv := range loose[k] {
			if strings.HasPrefix(kk, "smooth") {
				for _, x := range vv.([]any) {
					v.Smooth = append(v.Smooth, x.(float64))
				}
			}
		}
		switch {
		case k == "tiny":
			out["tiny"] = v
		case strings.HasPrefix(k, "config_671B"):
			out["671B"] = v
		}
	}
	if len(out) != 2 {
		t.Fatalf("rope_yarn.json: found configurations %v, want tiny and 671B", keys(raw))
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// tinyConfig is the tiny fixture checkpoint's rotary configuration
// (tiny/config.json).
func tinyConfig() Config {
	return Config{
		Theta: 10000, Dim: 16, MaxPositionEmbeddings: 512,
		Scaling: &Scaling{Type: "yarn", Factor: 4, OriginalMaxPositionEmbeddings: 128, BetaFast: 32, BetaSlow: 1, Mscale: 1, MscaleAllDim: 1},
	}
}

func relDiff(a, b float64) float64 {
	return math.Abs(a-b) / math.Max(math.Abs(b), 1e-300)
}

// TestFixtureFrequencies checks the correction range, the ramp, the
// frequencies and the softmax scale against the reference's values for the
// tiny and the 671B configuration.
func TestFixtureFrequencies(t *testing.T) {
	fx := loadRopeFixtures(t)
	v3 := DeepSeekV3()
	v3ref := DeepSeekV3()
	v3ref.MaxPositionEmbeddings = fx["671B"].MaxSeqLen // the reference's max_seq_len 16384
	cases := []struct {
		name, fixture string
		cfg           Config
		qkHeadDim     int
	}{
		{"tiny", "tiny", tinyConfig(), 32 + 16},
		{"671B max_seq_len 16384", "671B", v3ref, 128 + 64},
		{"671B config.json", "671B", v3, 128 + 64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := fx[c.fixture]
			r, err := New(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.YaRN() != f.Active {
				t.Errorf("YaRN() = %v, fixture %v", r.YaRN(), f.Active)
			}
			lo, hi := r.CorrectionRange()
			if lo != f.Range[0] || hi != f.Range[1] {
				t.Errorf("correction range [%d, %d], fixture %v", lo, hi, f.Range)
			}
			ramp := r.Ramp()
			if len(ramp) != len(f.Smooth) {
				t.Fatalf("%d ramp values, fixture %d", len(ramp), len(f.Smooth))
			}
			for i, g := range ramp {
				if d := math.Abs((1 - g) - f.Smooth[i]); d > 1e-12 {
					t.Errorf("pair %d: 1-ramp = %v, fixture smooth %v", i, 1-g, f.Smooth[i])
				}
			}
			for i, w := range r.Frequencies() {
				if d := relDiff(w, f.InvFreq64[i]); d > 1e-12 {
					t.Errorf("pair %d: frequency %v, fixture float64 %v (rel %.2g)", i, w, f.InvFreq64[i], d)
				}
				// The reference's float32 frequencies agree to float32
				// precision.
				if d := relDiff(w, f.InvFreq32[i]); d > 1.5e-7 {
					t.Errorf("pair %d: frequency %v, reference float32 %v (rel %.2g)", i, w, f.InvFreq32[i], d)
				}
			}
			if got := r.SoftmaxScale(c.qkHeadDim); relDiff(got, f.Softmax) > 1e-12 {
				t.Errorf("SoftmaxScale(%d) = %v, fixture %v", c.qkHeadDim, got, f.Softmax)
			}
			if r.Magnitude() != 1 {
				t.Errorf("Magnitude = %v, want 1 (mscale = mscale_all_dim)", r.Magnitude())
			}
		})
	}
}

// TestFixtureTables checks cos and sin at every listed position. Against
// the float64 angle of the fixture's float64 frequencies the tables agree
// within 1e-6 everywhere. Against the reference's own table, which forms
// the angle p·ω in float32 (and evaluates cos and sin in float32), they
// agree within 1e-6 plus the reference's float32 angle error (a few ulps of
// p·ω: about 2e-4 at position 16383); at positions 0, 1, 2 that is 1e-6.
func TestFixtureTables(t *testing.T) {
	fx := loadRopeFixtures(t)
	for name, cfg := range map[string]Config{"tiny": tinyConfig(), "671B": DeepSeekV3()} {
		f := fx[name]
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var worstRef, worst64 float64
		for k, p := range f.Positions {
			tab, err := r.Table(p, 1) // a one-position table at p
			if err != nil {
				t.Fatal(err)
			}
			c, s := tab.At(p)
			for i := range c {
				ang := float64(p) * f.InvFreq64[i]
				for _, v := range []struct {
					what      string
					got       float32
					ref, want float64
				}{{"cos", c[i], f.Cos[k][i], math.Cos(ang)}, {"sin", s[i], f.Sin[k][i], math.Sin(ang)}} {
					d64 := math.Abs(float64(v.got) - v.want)
					worst64 = math.Max(worst64, d64)
					if d64 > 1e-6 {
						t.Errorf("%s: %s(p=%d, i=%d) = %v, float64 angle gives %v", name, v.what, p, i, v.got, v.want)
					}
					dref := math.Abs(float64(v.got) - v.ref)
					worstRef = math.Max(worstRef, dref)
					tol := 1e-6 + 4*math.Ldexp(math.Abs(ang), -24)
					if dref > tol {
						t.Errorf("%s: %s(p=%d, i=%d) = %v, reference %v (diff %.3g > %.3g)", name, v.what, p, i, v.got, v.ref, dref, tol)
					}
					if p <= 2 && dref > 1e-6 {
						t.Errorf("%s: %s(p=%d, i=%d) = %v, reference %v", name, v.what, p, i, v.got, v.ref)
					}
				}
			}
		}
		t.Logf("%s: max |table - float64 angle| %.3g, max |table - reference float32 table| %.3g", name, worst64, worstRef)
	}
	// One table over a range equals the one-position tables.
	r, _ := New(DeepSeekV3())
	all, err := r.Table(4090, 10)
	if err != nil {
		t.Fatal(err)
	}
	one, _ := r.Table(4096, 1)
	c1, s1 := one.At(4096)
	c, s := all.At(4096)
	for i := range c {
		if c[i] != c1[i] || s[i] != s1[i] {
			t.Fatalf("table over [4090, 4100) differs at 4096 from a table starting there")
		}
	}
}

func TestPlainRoPE(t *testing.T) {
	c := Config{Theta: 10000, Dim: 8}
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if r.YaRN() || r.Ramp() != nil {
		t.Fatalf("plain RoPE: YaRN %v, ramp %v", r.YaRN(), r.Ramp())
	}
	want := []float64{1, 0.1, 0.01, 0.001} // 10000^(-2i/8)
	for i, w := range r.Frequencies() {
		if relDiff(w, want[i]) > 1e-15 {
			t.Errorf("frequency %d = %v, want %v", i, w, want[i])
		}
	}
	if got, want := r.SoftmaxScale(64), 0.125; got != want {
		t.Errorf("SoftmaxScale(64) = %v, want %v", got, want)
	}
	// rope_scaling given, but max_position_embeddings does not exceed the
	// original length: the reference keeps plain frequencies and scale.
	c = tinyConfig()
	c.MaxPositionEmbeddings = 128
	r, err = New(c)
	if err != nil {
		t.Fatal(err)
	}
	if r.YaRN() {
		t.Fatal("YaRN on with max_position_embeddings = original")
	}
	for i, w := range r.Frequencies() {
		if want := math.Pow(10000, -float64(2*i)/16); relDiff(w, want) > 1e-14 {
			t.Errorf("inactive YaRN: frequency %d = %v, want %v", i, w, want)
		}
	}
	if got, want := r.SoftmaxScale(48), 1/math.Sqrt(48); relDiff(got, want) > 1e-15 {
		t.Errorf("inactive YaRN: SoftmaxScale = %v, want %v", got, want)
	}
	if !math.IsNaN(r.SoftmaxScale(0)) {
		t.Error("SoftmaxScale(0) is not NaN")
	}
}

// TestMscale checks the correction formula, the paper's √t = 0.1 ln s + 1,
// and the Hugging Face table magnitude when mscale ≠ mscale_all_dim.
func TestMscale(t *testing.T) {
	if got, want := Mscale(40, 1), 0.1*math.Log(40)+1; got != want {
		t.Errorf("Mscale(40, 1) = %v, want %v", got, want)
	}
	if Mscale(1, 1) != 1 || Mscale(0.5, 1) != 1 {
		t.Error("Mscale of a factor <= 1 is not 1")
	}
	c := tinyConfig()
	c.Scaling.Mscale, c.Scaling.MscaleAllDim = 0.707, 0.5
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	m, mAll := 0.1*0.707*math.Log(4)+1, 0.1*0.5*math.Log(4)+1
	if relDiff(r.Magnitude(), m/mAll) > 1e-15 {
		t.Errorf("Magnitude = %v, want %v", r.Magnitude(), m/mAll)
	}
	if got, want := r.SoftmaxScale(48), mAll*mAll/math.Sqrt(48); relDiff(got, want) > 1e-15 {
		t.Errorf("SoftmaxScale = %v, want %v", got, want)
	}
	tab, _ := r.Table(3, 1)
	c3, s3 := tab.At(3)
	f := r.Frequencies()
	for i := range c3 {
		if d := math.Abs(float64(c3[i]) - m/mAll*math.Cos(3*f[i])); d > 1e-6 {
			t.Errorf("scaled cos %d off by %v", i, d)
		}
		if d := math.Abs(float64(s3[i]) - m/mAll*math.Sin(3*f[i])); d > 1e-6 {
			t.Errorf("scaled sin %d off by %v", i, d)
		}
	}
	// mscale_all_dim absent: no softmax correction.
	c.Scaling.MscaleAllDim = 0
	r, _ = New(c)
	if got, want := r.SoftmaxScale(48), 1/math.Sqrt(48); relDiff(got, want) > 1e-15 {
		t.Errorf("without mscale_all_dim: SoftmaxScale = %v, want %v", got, want)
	}
}

func TestValidate(t *testing.T) {
	mod := func(f func(*Config)) Config {
		c := tinyConfig()
		f(&c)
		return c
	}
	cases := []struct {
		cfg   Config
		field string
	}{
		{mod(func(c *Config) { c.Scaling.Factor = 0.5 }), "rope_scaling.factor"},
		{mod(func(c *Config) { c.Scaling.Factor = math.NaN() }), "rope_scaling.factor"},
		{mod(func(c *Config) { c.Scaling.BetaFast = 1 }), "rope_scaling.beta_fast"},
		{mod(func(c *Config) { c.Scaling.BetaFast = 0.5 }), "rope_scaling.beta_fast"},
		{mod(func(c *Config) { c.Scaling.BetaSlow = 0 }), "rope_scaling.beta_slow"},
		{mod(func(c *Config) { c.Dim = 15 }), "qk_rope_head_dim"},
		{mod(func(c *Config) { c.Dim = 0 }), "qk_rope_head_dim"},
		{mod(func(c *Config) { c.Scaling.Type = "linear" }), "rope_scaling.type"},
		{mod(func(c *Config) { c.Scaling.Type = "" }), "rope_scaling.type"},
		{mod(func(c *Config) { c.Theta = 1 }), "rope_theta"},
		{mod(func(c *Config) { c.Scaling.OriginalMaxPositionEmbeddings = 0 }), "rope_scaling.original_max_position_embeddings"},
		{mod(func(c *Config) { c.MaxPositionEmbeddings = 0 }), "max_position_embeddings"},
		{mod(func(c *Config) { c.MaxPositionEmbeddings = -1 }), "max_position_embeddings"},
		{mod(func(c *Config) { c.Scaling.Mscale = -1 }), "rope_scaling.mscale"},
		{mod(func(c *Config) { c.Scaling.MscaleAllDim = math.Inf(1) }), "rope_scaling.mscale_all_dim"},
	}
	for _, c := range cases {
		_, err := New(c.cfg)
		if err == nil {
			t.Errorf("%s: no error", c.field)
			continue
		}
		if !strings.Contains(err.Error(), c.field+" =") {
			t.Errorf("error %q does not name %s", err, c.field)
		}
	}
	if err := DeepSeekV3().Validate(); err != nil {
		t.Errorf("DeepSeekV3(): %v", err)
	}
}

// randMatrix returns a rows×cols matrix with values in [-1, 1).
func randMatrix(rng *rand.Rand, rows, cols int) dsv3.Matrix {
	m := dsv3.NewMatrix(rows, cols)
	for i := range m.Data {
		m.Data[i] = float32(2*rng.Float64() - 1)
	}
	return m
}

// blockCase is a strided block inside a wider matrix, as MLA's queries are:
// heads of nope+rope columns with the rotary part last.
type blockCase struct {
	seq               dsv3.Seq
	heads, nope, rope int
	full, view        dsv3.Matrix
	block             Block
}

func newBlockCase(rng *rand.Rand, s dsv3.Seq, heads, nope, rope int, layout Layout) *blockCase {
	full := randMatrix(rng, s.Count*s.Len, heads*(nope+rope))
	b := &blockCase{seq: s, heads: heads, nope: nope, rope: rope, full: full}
	b.view = full.View(0, nope, full.Rows, full.Cols-nope)
	b.block = Block{Heads: heads, Stride: nope + rope, Layout: layout}
	return b
}

// TestRotateMatchesFloat64 compares the strided in-place rotation with a
// float64 loop written here, over several sequences at a start position,
// and checks that the no-RoPE columns are left alone.
func TestRotateMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r, err := New(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	freq := r.Frequencies()
	s := dsv3.Seq{Count: 3, Len: 7, Start: 120}
	tab, err := r.Table(100, 40)
	if err != nil {
		t.Fatal(err)
	}
	bc := newBlockCase(rng, s, 4, 6, 16, Interleaved)
	orig := bc.full.Clone()
	if err := tab.Rotate(bc.view, s, bc.block); err != nil {
		t.Fatal(err)
	}
	var worst float64
	for row := 0; row < orig.Rows; row++ {
		p := float64(s.Start + row%s.Len)
		for h := 0; h < 4; h++ {
			base := h * 22
			for j := 0; j < 6; j++ {
				if bc.full.At(row, base+j) != orig.At(row, base+j) {
					t.Fatalf("row %d head %d: no-RoPE column %d changed", row, h, j)
				}
			}
			for i := 0; i < 8; i++ {
				a, b := float64(orig.At(row, base+6+2*i)), float64(orig.At(row, base+6+2*i+1))
				cs, sn := math.Cos(p*freq[i]), math.Sin(p*freq[i])
				y0, y1 := a*cs-b*sn, a*sn+b*cs
				worst = math.Max(worst, math.Abs(float64(bc.full.At(row, base+6+2*i))-y0))
				worst = math.Max(worst, math.Abs(float64(bc.full.At(row, base+6+2*i+1))-y1))
			}
		}
	}
	if worst > 1e-6 {
		t.Errorf("rotation differs from the float64 loop by %v", worst)
	}
}

// TestRotateAtMatchesSeq checks the per-row position form against the
// sequence form.
func TestRotateAtMatchesSeq(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	r, _ := New(DeepSeekV3())
	s := dsv3.Seq{Count: 2, Len: 5, Start: 4093}
	tab, err := r.Table(4093, 5)
	if err != nil {
		t.Fatal(err)
	}
	x := randMatrix(rng, 10, 3*64)
	y := x.Clone()
	if err := tab.Rotate(x, s, Block{Heads: 3}); err != nil {
		t.Fatal(err)
	}
	pos := make([]int, 10)
	for i := range pos {
		pos[i] = 4093 + i%5
	}
	if err := tab.RotateAt(y, pos, Block{Heads: 3}); err != nil {
		t.Fatal(err)
	}
	for i := range x.Data {
		if x.Data[i] != y.Data[i] {
			t.Fatalf("RotateAt differs from Rotate at %d", i)
		}
	}
	pos[3] = 4098
	if err := tab.RotateAt(y, pos, Block{Heads: 3}); err == nil || !strings.Contains(err.Error(), "4098") {
		t.Errorf("position outside the table: error %v", err)
	}
}

// TestInverse checks that Unrotate undoes Rotate within 1e-6, also with a
// table magnitude ≠ 1, in both layouts.
func TestInverse(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	scaled := tinyConfig()
	scaled.Scaling.Mscale, scaled.Scaling.MscaleAllDim = 1, 0.5
	for _, cfg := range []Config{DeepSeekV3(), scaled} {
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, layout := range []Layout{Interleaved, RotateHalf} {
			s := dsv3.Seq{Count: 2, Len: 9, Start: 160000}
			tab, _ := r.Table(s.Start, s.Len)
			bc := newBlockCase(rng, s, 3, 5, r.Dim(), layout)
			orig := bc.full.Clone()
			if err := tab.Rotate(bc.view, s, bc.block); err != nil {
				t.Fatal(err)
			}
			if err := tab.Unrotate(bc.view, s, bc.block); err != nil {
				t.Fatal(err)
			}
			var worst float64
			for i := range orig.Data {
				worst = math.Max(worst, math.Abs(float64(orig.Data[i]-bc.full.Data[i])))
			}
			if worst > 1e-6 {
				t.Errorf("magnitude %v, %v: |Unrotate(Rotate(x)) - x| = %v", r.Magnitude(), layout, worst)
			}
		}
	}
}

// TestBackwardFiniteDifference checks RotateBackward as the gradient of
// loss = Σ R ⊙ Rotate(x) by central differences, for both layouts and a
// table magnitude ≠ 1.
func TestBackwardFiniteDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	scaled := tinyConfig()
	scaled.Scaling.Mscale, scaled.Scaling.MscaleAllDim = 1.2, 1
	for _, cfg := range []Config{tinyConfig(), scaled} {
		r, _ := New(cfg)
		for _, layout := range []Layout{Interleaved, RotateHalf} {
			s := dsv3.Seq{Count: 2, Len: 3, Start: 250}
			tab, _ := r.Table(250, 3)
			bc := newBlockCase(rng, s, 2, 4, 16, layout)
			rw := randMatrix(rng, bc.view.Rows, bc.view.Cols)
			loss := func() float64 {
				y := bc.full.Clone()
				v := y.View(0, bc.nope, y.Rows, y.Cols-bc.nope)
				if err := tab.Rotate(v, s, bc.block); err != nil {
					t.Fatal(err)
				}
				var l float64
				for i := 0; i < v.Rows; i++ {
					for j, yv := range v.Row(i) {
						l += float64(yv) * float64(rw.At(i, j))
					}
				}
				return l
			}
			grad := rw.Clone()
			if err := tab.RotateBackward(grad, s, bc.block); err != nil {
				t.Fatal(err)
			}
			const h = 1e-2
			var num, den float64
			for i := 0; i < bc.view.Rows; i++ {
				for j := 0; j < bc.view.Cols; j++ {
					x0 := bc.view.At(i, j)
					bc.view.Set(i, j, x0+h)
					lp := loss()
					bc.view.Set(i, j, x0-h)
					lm := loss()
					bc.view.Set(i, j, x0)
					fd := (lp - lm) / (2 * h)
					num = math.Max(num, math.Abs(fd-float64(grad.At(i, j))))
					den = math.Max(den, math.Abs(fd))
				}
			}
			if num/den > 1e-4 {
				t.Errorf("magnitude %v, %v: backward vs finite differences: rel err %.3g", r.Magnitude(), layout, num/den)
			}
		}
	}
}

// TestLayoutsAgree: de-interleave each head, rotate in the rotate-half
// layout, interleave back: the interleaved rotation, bit for bit.
func TestLayoutsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	r, _ := New(DeepSeekV3())
	s := dsv3.Seq{Count: 1, Len: 6, Start: 5000}
	tab, _ := r.Table(5000, 6)
	x := randMatrix(rng, 6, 2*64)
	half := dsv3.NewMatrix(6, 2*64)
	for i := 0; i < 6; i++ {
		for h := 0; h < 2; h++ {
			if err := Deinterleave(half.Row(i)[h*64:(h+1)*64], x.Row(i)[h*64:(h+1)*64]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tab.Rotate(x, s, Block{Heads: 2}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Rotate(half, s, Block{Heads: 2, Layout: RotateHalf}); err != nil {
		t.Fatal(err)
	}
	back := make([]float32, 64)
	for i := 0; i < 6; i++ {
		for h := 0; h < 2; h++ {
			if err := Interleave(back, half.Row(i)[h*64:(h+1)*64]); err != nil {
				t.Fatal(err)
			}
			for j, v := range back {
				if v != x.At(i, h*64+j) {
					t.Fatalf("row %d head %d value %d: rotate-half %v, interleaved %v", i, h, j, v, x.At(i, h*64+j))
				}
			}
		}
	}
	// The permutation itself: half[i] = inter[2i], half[n+i] = inter[2i+1].
	src := []float32{0, 1, 2, 3, 4, 5}
	dst := make([]float32, 6)
	if err := Deinterleave(dst, src); err != nil {
		t.Fatal(err)
	}
	if want := []float32{0, 2, 4, 1, 3, 5}; !equal(dst, want) {
		t.Errorf("Deinterleave = %v, want %v", dst, want)
	}
	if Deinterleave(make([]float32, 4), make([]float32, 5)) == nil || Interleave(make([]float32, 3), make([]float32, 3)) == nil {
		t.Error("odd or unequal lengths accepted")
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestParallelRotation runs a block large enough to be split over
// goroutines (for the race detector) and compares it with row-at-a-time
// rotation.
func TestParallelRotation(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	r, _ := New(DeepSeekV3())
	s := dsv3.Seq{Count: 4, Len: 256, Start: 7}
	tab, _ := r.Table(7, 256)
	x := randMatrix(rng, 1024, 4*64)
	y := x.Clone()
	if err := tab.Rotate(x, s, Block{Heads: 4}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < y.Rows; i++ {
		if err := tab.Rotate(y.Slice(i, i+1), dsv3.Seq{Count: 1, Len: 1, Start: 7 + i%256}, Block{Heads: 4}); err != nil {
			t.Fatal(err)
		}
	}
	if !equal(x.Data, y.Data) {
		t.Error("parallel rotation differs from row-at-a-time rotation")
	}
}

func TestRotateErrors(t *testing.T) {
	r, _ := New(tinyConfig())
	tab, _ := r.Table(10, 5)
	x := dsv3.NewMatrix(4, 3*16)
	s := dsv3.Seq{Count: 1, Len: 4, Start: 10}
	cases := []struct {
		x    dsv3.Matrix
		s    dsv3.Seq
		b    Block
		want string
	}{
		{x, s, Block{Heads: 2}, "48 columns, want 32"},
		{x, s, Block{Heads: 0}, "heads"},
		{x, s, Block{Heads: 3, Stride: 8}, "stride"},
		{x, s, Block{Heads: 3, Layout: 7}, "layout"},
		{x, dsv3.Seq{Count: 2, Len: 4, Start: 10}, Block{Heads: 3}, "rows"},
		{x, dsv3.Seq{Count: 1, Len: 4, Start: 12}, Block{Heads: 3}, "outside the table"},
		{x, dsv3.Seq{Count: 1, Len: 4, Start: 9}, Block{Heads: 3}, "outside the table"},
		{x, dsv3.Seq{Count: -1, Len: -4, Start: 10}, Block{Heads: 3}, "negative"},
	}
	for _, c := range cases {
		err := tab.Rotate(c.x, c.s, c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v %+v: error %v, want one mentioning %q", c.s, c.b, err, c.want)
		}
	}
	if _, err := r.Table(-1, 3); err == nil {
		t.Error("negative table start accepted")
	}
	if _, err := r.Table(0, -3); err == nil {
		t.Error("negative table length accepted")
	}
}

func BenchmarkRotate(b *testing.B) {
	const tokens, heads, dim = 4096, 128, 64
	r, err := New(DeepSeekV3())
	if err != nil {
		b.Fatal(err)
	}
	tab, err := r.Table(0, tokens)
	if err != nil {
		b.Fatal(err)
	}
	x := randMatrix(rand.New(rand.NewPCG(1, 1)), tokens, heads*dim)
	s := dsv3.Seq{Count: 1, Len: tokens, Start: 0}
	b.SetBytes(int64(2 * 4 * tokens * heads * dim)) // read and write every value
	b.ResetTimer()
	for b.Loop() {
		if err := tab.Rotate(x, s, Block{Heads: heads}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/tokens, "ns/token")
}

func BenchmarkTable(b *testing.B) {
	r, err := New(DeepSeekV3())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := r.Table(0, 4096); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/4096, "ns/position")
}
