package deepseekv3

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dsv3go/dsv3"
	"github.com/dsv3go/dsv3/internal/safetensors"
)

// A training checkpoint is a directory in the Hugging Face DeepSeek-V3
// layout (config.json and model.safetensors, float32, with the MTP modules
// as layers num_hidden_layers and up, so Load and examples/generate read
// it), plus the trainer's state beside it: trainer_state.safetensors (the
// AdamW moments) and trainer_state.json (step, sampler state, recipe).
// SaveCheckpoint writes it under out as step-N, atomically: into a hidden
// temporary directory first, renamed into place, and only then is the file
// out/latest switched to it; a crash at any point leaves the previous
// checkpoint complete and named by latest.
const (
	latestFile     = "latest"
	stateJSON      = "trainer_state.json"
	stateTensors   = "trainer_state.safetensors"
	keepCheckpoint = 2
)

// saveHook, when set (by tests), is called at each stage of a save, so a
// test can kill the process mid-way.
var saveHook func(stage string)

func hook(stage string) {
	if saveHook != nil {
		saveHook(stage)
	}
}

type trainerState struct {
	Step      int         `json:"step"`
	AdamSteps int         `json:"adam_steps"`
	Sampler   string      `json:"sampler_pcg"`
	Recipe    TrainConfig `json:"recipe"`
}

// SaveCheckpoint writes the trainer's state as out/step-N and points
// out/latest at it; it returns the checkpoint's directory. Older
// checkpoints beyond the last two are removed.
func (t *Trainer) SaveCheckpoint(out string) (string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("step-%d", t.Step)
	final := filepath.Join(out, name)
	tmp, err := os.MkdirTemp(out, ".tmp-"+name+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	cfg, err := json.MarshalIndent(t.Model.Cfg, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(tmp, "config.json"), cfg); err != nil {
		return "", err
	}
	var model []*safetensors.Tensor
	for _, p := range t.Model.Params() {
		tn, err := paramTensor(p.Name, p.Value)
		if err != nil {
			return "", err
		}
		model = append(model, tn)
	}
	hook("config")
	if err := safetensors.WriteFile(filepath.Join(tmp, "model.safetensors"), model, map[string]string{"format": "pt"}); err != nil {
		return "", err
	}
	hook("model")
	st, err := t.Opt.tensors()
	if err != nil {
		return "", err
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, stateTensors), st, nil); err != nil {
		return "", err
	}
	pcg, err := t.src.MarshalBinary()
	if err != nil {
		return "", err
	}
	js, err := json.MarshalIndent(trainerState{Step: t.Step, AdamSteps: t.Opt.step, Sampler: base64.StdEncoding.EncodeToString(pcg), Recipe: t.Cfg}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(tmp, stateJSON), js); err != nil {
		return "", err
	}
	if err := os.RemoveAll(final); err != nil {
		return "", err
	}
	hook("state")
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	hook("renamed")
	if err := writeAtomic(filepath.Join(out, latestFile), []byte(name+"\n")); err != nil {
		return "", err
	}
	pruneCheckpoints(out, name)
	return final, nil
}

// pruneCheckpoints removes step-N directories older than the last
// keepCheckpoint, never the current one, and stale temporary directories.
func pruneCheckpoints(out, current string) {
	ents, err := os.ReadDir(out)
	if err != nil {
		return
	}
	var steps []int
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-step-") {
			os.RemoveAll(filepath.Join(out, e.Name()))
			continue
		}
		if n, ok := strings.CutPrefix(e.Name(), "step-"); ok && e.IsDir() {
			if v, err := strconv.Atoi(n); err == nil {
				steps = append(steps, v)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(steps)))
	for i, s := range steps {
		name := fmt.Sprintf("step-%d", s)
		if i >= keepCheckpoint && name != current {
			os.RemoveAll(filepath.Join(out, name))
		}
	}
}

// CheckpointDir resolves dir to a checkpoint: dir itself when it holds
// trainer_state.json, else the one dir/latest names.
func CheckpointDir(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, stateJSON)); err == nil {
		return dir, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, latestFile))
	if err != nil {
		return "", fmt.Errorf("deepseekv3: %s is not a training checkpoint and has no %s file", dir, latestFile)
	}
	name := strings.TrimSpace(string(b))
	if name == "" || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("deepseekv3: %s names %q, not a checkpoint directory", filepath.Join(dir, latestFile), name)
	}
	return filepath.Join(dir, name), nil
}

// ResumeTrainer rebuilds a trainer from a checkpoint (or an output
// directory with a latest file): weights, router biases, optimizer
// moments, step and sampler state, so that training continues exactly as
// if it had not stopped.
func ResumeTrainer(dir string) (*Trainer, error) {
	ck, err := CheckpointDir(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(filepath.Join(ck, "config.json"))
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(ck, stateJSON))
	if err != nil {
		return nil, fmt.Errorf("deepseekv3: %w", err)
	}
	var st trainerState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("deepseekv3: %s: %v", filepath.Join(ck, stateJSON), err)
	}
	t, err := NewTrainer(cfg, st.Recipe)
	if err != nil {
		return nil, err
	}
	if _, err := t.Model.LoadWeights(ck); err != nil {
		return nil, err
	}
	set, err := safetensors.Open(filepath.Join(ck, stateTensors))
	if err != nil {
		return nil, fmt.Errorf("deepseekv3: %w", err)
	}
	defer set.Close()
	if err := t.Opt.load(set, t.Model.Params()); err != nil {
		return nil, err
	}
	t.Opt.step = st.AdamSteps
	pcg, err := base64.StdEncoding.DecodeString(st.Sampler)
	if err != nil {
		return nil, fmt.Errorf("deepseekv3: sampler state: %v", err)
	}
	if err := t.src.UnmarshalBinary(pcg); err != nil {
		return nil, fmt.Errorf("deepseekv3: sampler state: %v", err)
	}
	t.rng = rand.New(t.src)
	t.Step = st.Step
	return t, nil
}

// paramTensor encodes a float32 parameter (1×n as a vector).
func paramTensor(name string, v dsv3.Matrix) (*safetensors.Tensor, error) {
	shape := []int{v.Rows, v.Cols}
	if v.Rows == 1 {
		shape = []int{v.Cols}
	}
	data := make([]float32, 0, v.Rows*v.Cols)
	for i := 0; i < v.Rows; i++ {
		data = append(data, v.Row(i)...)
	}
	return safetensors.NewTensor(name, safetensors.F32, shape, data)
}

// tensors returns the optimizer moments as tensors "adam.m.NAME" and
// "adam.v.NAME" (BF16 when the moments are kept in bfloat16).
func (o *AdamW) tensors() ([]*safetensors.Tensor, error) {
	names := make([]string, 0, len(o.state))
	for n := range o.state {
		names = append(names, n)
	}
	sort.Strings(names)
	var ts []*safetensors.Tensor
	for _, n := range names {
		st := o.state[n]
		for _, k := range []string{"m", "v"} {
			var t *safetensors.Tensor
			if o.BF16Moments {
				src := st.mb
				if k == "v" {
					src = st.vb
				}
				raw := make([]byte, 2*len(src))
				for i, h := range src {
					raw[2*i], raw[2*i+1] = byte(h), byte(h>>8)
				}
				t = &safetensors.Tensor{Name: "adam." + k + "." + n, DType: safetensors.BF16, Shape: []int{len(src)}, Data: raw}
			} else {
				src := st.m
				if k == "v" {
					src = st.v
				}
				var err error
				if t, err = safetensors.NewTensor("adam."+k+"."+n, safetensors.F32, []int{len(src)}, src); err != nil {
					return nil, err
				}
			}
			ts = append(ts, t)
		}
	}
	return ts, nil
}

// load restores the moments written by tensors.
func (o *AdamW) load(f *safetensors.File, params []dsv3.Param) error {
	o.state = map[string]*adamState{}
	for _, p := range params {
		if p.Grad.Empty() {
			continue
		}
		n := p.Value.Rows * p.Value.Cols
		mt, err1 := f.Tensor("adam.m." + p.Name)
		vt, err2 := f.Tensor("adam.v." + p.Name)
		if err1 != nil || err2 != nil {
			if o.step == 0 {
				continue
			}
			return errors.Join(err1, err2)
		}
		if mt.NumElements() != n || vt.NumElements() != n {
			return fmt.Errorf("deepseekv3: optimizer state of %s has %d values, want %d", p.Name, mt.NumElements(), n)
		}
		st := &adamState{numValue: n}
		if o.BF16Moments {
			if mt.DType != safetensors.BF16 || vt.DType != safetensors.BF16 {
				return fmt.Errorf("deepseekv3: optimizer state of %s is %s, want BF16", p.Name, mt.DType)
			}
			st.mb, st.vb = make([]dsv3.BF16, n), make([]dsv3.BF16, n)
			for i := 0; i < n; i++ {
				st.mb[i] = dsv3.BF16(uint16(mt.Data[2*i]) | uint16(mt.Data[2*i+1])<<8)
				st.vb[i] = dsv3.BF16(uint16(vt.Data[2*i]) | uint16(vt.Data[2*i+1])<<8)
			}
		} else {
			if st.m, err1 = mt.Float32s(); err1 != nil {
				return err1
			}
			if st.v, err1 = vt.Float32s(); err1 != nil {
				return err1
			}
		}
		o.state[p.Name] = st
	}
	return nil
}

// writeFileSync writes a file and syncs it to disk.
func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeAtomic replaces path with b: a temporary file in the same
// directory, synced, renamed over path, and the directory synced.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
