package testutil

import (
	"encoding/json"
	"math"
	"testing"
)

// TestE4M3DecoderMatchesTable checks the test oracle itself against the
// fixture's table of all 256 codes.
func TestE4M3DecoderMatchesTable(t *testing.T) {
	var tab struct {
		Codes []struct {
			Code  int             `json:"code"`
			Value json.RawMessage `json:"value"`
		} `json:"codes"`
	}
	ReadJSON(t, Fixture(t, "common", "e4m3_decode_table.json"), &tab)
	if len(tab.Codes) != 256 {
		t.Fatalf("table has %d codes", len(tab.Codes))
	}
	for _, c := range tab.Codes {
		got := E4M3(byte(c.Code))
		var want float64
		if err := json.Unmarshal(c.Value, &want); err != nil {
			// NaN is written as a string or a bare NaN token.
			if !math.IsNaN(float64(got)) {
				t.Errorf("code %#02x: table value %s, decoder %v", c.Code, c.Value, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Errorf("code %#02x: decoder %v, table %v", c.Code, got, want)
		}
	}
}

func TestTinyCheckpointDequantises(t *testing.T) {
	s := Checkpoint(t)
	w := TensorF32(t, s, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight")
	if w.Rows != 144 || w.Cols != 256 {
		t.Fatalf("shape %dx%d", w.Rows, w.Cols)
	}
	for _, v := range w.Data {
		if math.IsNaN(float64(v)) {
			t.Fatal("NaN in dequantised weight")
		}
	}
}
