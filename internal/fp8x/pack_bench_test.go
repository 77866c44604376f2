package fp8x

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkPack times packing 128 rows × 512 codes of B into 32-wide
// panels, the per-weight overhead of the blocked GEMM.
func BenchmarkPack(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const rows, k = 128, 512
	codes := make([]byte, rows*k)
	for i := range codes {
		codes[i] = byte(r.Uint32()) & 0x7E
	}
	for _, s := range Sets {
		b.Run("pairs-"+s.Name, func(b *testing.B) {
			dst := make([]uint32, rows*k/2)
			for b.Loop() {
				for j := 0; j < rows; j += 16 {
					for q := 0; q < k/Block; q++ {
						s.PackPairs(dst[(j/32*(k/Block)+q)*64*32+j%32:], 32, codes[j*k+q*Block:], k, 16)
					}
				}
			}
			b.ReportMetric(float64(rows*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gcodes/s")
		})
		b.Run("f32-"+s.Name, func(b *testing.B) {
			dst := make([]float32, rows*k)
			for b.Loop() {
				for j := 0; j < rows; j += 16 {
					for q := 0; q < k/Block; q++ {
						s.PackF32(dst[(j/32*(k/Block)+q)*Block*32+j%32:], 32, codes[j*k+q*Block:], k, 16)
					}
				}
			}
			b.ReportMetric(float64(rows*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gcodes/s")
		})
	}
}
