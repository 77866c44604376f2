package safetensors_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dsv3go/dsv3/internal/safetensors"
)

// A trainer saves a float32 weight and a BF16 optimizer state atomically,
// then reads them back memory-mapped.
func ExampleWriteFile() {
	dir, _ := os.MkdirTemp("", "ckpt")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	w, _ := safetensors.NewTensor("q_a_proj.weight", safetensors.F32, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	m, _ := safetensors.NewTensor("q_a_proj.weight.exp_avg", safetensors.BF16, []int{2, 3}, []float32{0.1, 0.2, 0.3, 0.4, 0.5, 0.6})
	if err := safetensors.WriteFile(path, []*safetensors.Tensor{w, m}, map[string]string{"format": "pt"}); err != nil {
		fmt.Println(err)
		return
	}

	f, err := safetensors.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	for _, name := range f.Names() {
		t, _ := f.Tensor(name)
		v, _ := t.Float32s()
		fmt.Println(name, t.DType, t.Shape, v)
	}
	fmt.Println(f.Metadata)
	// Output:
	// q_a_proj.weight F32 [2 3] [1 2 3 4 5 6]
	// q_a_proj.weight.exp_avg BF16 [2 3] [0.100097656 0.20019531 0.30078125 0.40039062 0.5 0.6015625]
	// map[format:pt]
}

// Malformed files are rejected with an error naming the tensor.
func ExampleParse() {
	header := `{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}`
	data := append([]byte{byte(len(header)), 0, 0, 0, 0, 0, 0, 0}, header...)
	data = append(data, make([]byte, 20)...)
	_, err := safetensors.Parse("bad.safetensors", data)
	fmt.Println(err)
	// Output:
	// safetensors: bad.safetensors: tensor "w": F32 [2 3] needs 24 bytes, data_offsets [0, 20] give 20
}
