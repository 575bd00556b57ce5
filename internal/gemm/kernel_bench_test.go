package gemm

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkKernel times each micro-kernel alone on packed panels that stay
// in L1: the ceiling of the blocked product.
func BenchmarkKernel(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, p := range supported() {
		kb := kc
		ap := randSlice[float32](rng, p.mr*kb)
		bp := randSlice[float32](rng, p.nr*kb)
		c := make([]float32, p.mr*p.nr)
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				kernel(p, kb, opnd[float32]{d: ap, sp: p.mr, si: 1}, opnd[float32]{d: bp, sp: p.nr, si: 1}, c, p.nr)
			}
			b.ReportMetric(2*float64(p.mr*p.nr*kb)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
