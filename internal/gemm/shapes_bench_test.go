package gemm

import (
	"math/rand/v2"
	"testing"
)

// stepShapes are the products of finetune's BERT-S training step (hidden
// 256, 512 tokens, vocabulary 30,522, 80 masked positions) plus the 2048³
// peak, each as finetune calls it. Goal: within 0.8–0.9 of OpenBLAS on the
// same shape (examples/benchmark -only torch prints both).
var stepShapes = []struct {
	name    string
	ta, tb  bool
	m, n, k int
	packed  bool // B packed once (PackB), product by GemmPacked
	bias    bool // packed, product by GemmPackedBias (the Predictor's logits)
}{
	{name: "xWt-512x256x256-packed", tb: true, m: 512, n: 256, k: 256, packed: true},
	{name: "xWt-512x1024x256-packed", tb: true, m: 512, n: 1024, k: 256, packed: true},
	{name: "xWt-512x256x1024-packed", tb: true, m: 512, n: 256, k: 1024, packed: true},
	{name: "gW-512x256x1024", m: 512, n: 256, k: 1024},
	{name: "gW-512x256x256", m: 512, n: 256, k: 256},
	{name: "gW-512x1024x256", m: 512, n: 1024, k: 256},
	{name: "Wh-30522x80x256", m: 30522, n: 80, k: 256},
	{name: "WtG-256x80x30522", ta: true, m: 256, n: 80, k: 30522},
	{name: "NN-2048x2048x2048", m: 2048, n: 2048, k: 2048},
	// The vocabulary head at V = 30,522 and 250,000, hidden 256 and 768,
	// 80 masked positions: the tied logits W·h, their input gradient Wᵀ·g
	// and inference's y·Wᵀ with Wᵀ packed once and the bias.
	{name: "Wh-30522x80x768", m: 30522, n: 80, k: 768},
	{name: "Wh-250000x80x256", m: 250000, n: 80, k: 256},
	{name: "Wh-250000x80x768", m: 250000, n: 80, k: 768},
	{name: "WtG-768x80x30522", ta: true, m: 768, n: 80, k: 30522},
	{name: "WtG-256x80x250000", ta: true, m: 256, n: 80, k: 250000},
	{name: "WtG-768x80x250000", ta: true, m: 768, n: 80, k: 250000},
	{name: "yWt-80x30522x256-bias", tb: true, m: 80, n: 30522, k: 256, bias: true},
	{name: "yWt-80x30522x768-bias", tb: true, m: 80, n: 30522, k: 768, bias: true},
	{name: "yWt-80x250000x256-bias", tb: true, m: 80, n: 250000, k: 256, bias: true},
	{name: "yWt-80x250000x768-bias", tb: true, m: 80, n: 250000, k: 768, bias: true},
}

// BenchmarkShapes times the active path on stepShapes and reports GFLOP/s
// and CPU time per product:
//
//	flock /work/bench.lock go test -run XXX -bench Shapes -count 5 ./internal/gemm
func BenchmarkShapes(b *testing.B) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, s := range stepShapes {
		// Operands are made inside the sub-benchmark, so that a -bench
		// filter skips the large ones.
		setup := func() func() {
			lda, ldb := s.k, s.n
			rowsA, rowsB := s.m, s.k
			if s.ta {
				lda, rowsA = s.m, s.k
			}
			if s.tb {
				ldb, rowsB = s.k, s.n
			}
			a := randSlice[float32](rng, rowsA*lda)
			bb := randSlice[float32](rng, rowsB*ldb)
			c := make([]float32, s.m*s.n)
			switch {
			case s.bias:
				pk := PackB(s.tb, s.k, s.n, bb, ldb)
				bias := randSlice[float32](rng, s.n)
				return func() { GemmPackedBias(s.ta, s.m, a, lda, pk, bias, c, s.n) }
			case s.packed:
				pk := PackB(s.tb, s.k, s.n, bb, ldb)
				return func() { GemmPacked(s.ta, s.m, a, lda, pk, c, s.n, false) }
			}
			return func() { Gemm(s.ta, s.tb, s.m, s.n, s.k, a, lda, bb, ldb, c, s.n, false) }
		}
		var run func() // made once, at the first call of the sub-benchmark
		b.Run(s.name, func(b *testing.B) {
			if run == nil {
				run = setup()
			}
			cpu0, ok := cpuTime()
			for b.Loop() {
				run()
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			// CPU time per product: the work done (packing, spinning at
			// barriers included), which other load on the machine
			// disturbs less than the elapsed time.
			if cpu1, ok1 := cpuTime(); ok && ok1 {
				b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			}
		})
	}
}

// BenchmarkPack times packing one mc×kc block of a row-major A and one
// kc×nc block of a transposed B (the assembly, when the path has it, and
// the Go loops), in GB/s of panel written.
func BenchmarkPack(b *testing.B) {
	rng := rand.New(rand.NewPCG(23, 24))
	src := randSlice[float32](rng, nc*(kc+8))
	dst := make([]float32, nc*kc)
	for _, p := range supported() {
		g := *p
		g.name, g.packA, g.packBT = p.name+"-go", nil, nil
		for _, q := range []*path{p, &g} {
			if q.packA == nil && q.packBT == nil && q != &g {
				continue
			}
			b.Run("A/"+q.name, func(b *testing.B) {
				for b.Loop() {
					packA(q, false, src, kc+8, 0, 0, mc, kc, dst)
				}
				b.ReportMetric(float64(4*mc*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
			// The head's input gradient: g's rows into 32+32+16 columns,
			// and the ragged 4-row panel of a transposed A.
			b.Run("B-n80/"+q.name, func(b *testing.B) {
				for b.Loop() {
					packB(q, false, src, 80, 0, 0, kc, 80, dst)
				}
				b.ReportMetric(float64(4*96*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
			b.Run("AT-h4/"+q.name, func(b *testing.B) {
				for b.Loop() {
					packA(q, true, src, 256, 252, 0, 4, kc, dst)
				}
				b.ReportMetric(float64(4*12*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
			b.Run("BT/"+q.name, func(b *testing.B) {
				for b.Loop() {
					packB(q, true, src, kc+8, 0, 0, kc, nc, dst)
				}
				b.ReportMetric(float64(4*nc*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
		break // the best path only
	}
}
