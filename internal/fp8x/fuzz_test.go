package fp8x

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzSets feeds arbitrary bytes, read as float32 values and as codes, to
// every set's conversions and compares them with the Go set.
func FuzzSets(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 0, 255, 255, 255, 127}, float32(1))
	f.Add(make([]byte, 200), float32(3e-7))
	f.Fuzz(func(t *testing.T, data []byte, s float32) {
		x := make([]float32, len(data)/4)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		want := make([]byte, len(x))
		encodeScaledGo(want, x, s)
		wantF := make([]float32, len(data))
		decodeGo(wantF, data)
		for _, set := range Sets {
			got := make([]byte, len(x))
			set.EncodeScaled(got, x, s)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: %g/%g -> %#02x, want %#02x", set.Name, x[i], s, got[i], want[i])
				}
			}
			if a, b := set.Amax(x), amax(x); !sameBits(a, b) {
				t.Fatalf("%s: amax %v, want %v", set.Name, a, b)
			}
			gotF := make([]float32, len(data))
			set.Decode(gotF, data)
			for i := range wantF {
				if !sameBits(gotF[i], wantF[i]) {
					t.Fatalf("%s: decode %#02x -> %v, want %v", set.Name, data[i], gotF[i], wantF[i])
				}
			}
		}
	})
}
