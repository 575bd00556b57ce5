package finetune

import (
	"fmt"
	"testing"
)

// BenchmarkHashValues measures the pack cache's weight hash (parallel
// chunks, all cores) over a BERT-S-sized vocabulary projection (31 MB) and
// one at vocabulary 250,000 (256 MB). The goal: memory speed (GB/s is
// printed as MB/s by -bench; "GB/s" reports it directly).
func BenchmarkHashValues(b *testing.B) {
	for _, mb := range []int{31, 256} {
		s := make([]float32, mb<<20/4)
		for i := range s {
			s[i] = float32(i%4093) * 0.25
		}
		b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
			b.SetBytes(int64(len(s) * 4))
			var h uint64
			for b.Loop() {
				h ^= hashValues(s)
			}
			b.ReportMetric(float64(len(s)*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			sink = h
		})
	}
}

var sink uint64
