package gemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// nanPadded returns rows×ld values, the first cols of each row random and
// the rest NaN: a product that reads outside its operand shows NaN.
func nanPadded(rng *rand.Rand, rows, cols, ld int) []float32 {
	s := make([]float32, rows*ld)
	for i := range s {
		s[i] = float32(math.NaN())
		if i%ld < cols {
			s[i] = rng.Float32()*2 - 1
		}
	}
	return s[:(rows-1)*ld+cols] // nothing past the last value
}

// Small equals Gemm bit for bit on every path, for shapes with and without
// ragged row and column panels, each operand transposed or not, strided
// operands, with and without accumulation; it neither reads the gaps
// between rows (NaN) nor writes outside C.
func TestSmallEqualsGemm(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(31, 32))
		shapes := [][3]int{
			{64, 64, 64}, {12, 32, 1}, {13, 33, 5}, {64, 64, 256}, {23, 47, 64},
			{100, 17, 30}, {5, 64, 64}, {64, 5, 64}, {64, 64, 300}, {40, 130, 64}, {24, 96, 7},
			{20, 64, 64}, {17, 32, 9}, {30, 96, 16}, {18, 50, 33}, {21, 40, 12}, {16, 64, 64},
			{4, 7, 64}, {5, 5, 5}, {64, 64, 512}, {13, 40, 600}, {30, 33, 257}, {8, 64, 3}, {9, 20, 64}, {11, 31, 40}, {10, 10, 64}, {3, 40, 8}, {64, 10, 64}, {7, 64, 10},
		}
		for _, s := range shapes {
			m, n, k := s[0], s[1], s[2]
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					for _, acc := range []bool{false, true} {
						var a, b []float32
						var lda, ldb int
						if ta {
							lda = m + 3
							a = nanPadded(rng, k, m, lda)
						} else {
							lda = k + 5
							a = nanPadded(rng, m, k, lda)
						}
						if tb {
							ldb = k + 2
							b = nanPadded(rng, n, k, ldb)
						} else {
							ldb = n + 7
							b = nanPadded(rng, k, n, ldb)
						}
						ldc := n + 4
						c0 := make([]float32, (m+1)*ldc)
						for i := range c0 {
							c0[i] = rng.Float32()
						}
						want := append([]float32(nil), c0...)
						got := append([]float32(nil), c0...)
						Gemm(ta, tb, m, n, k, a, lda, b, ldb, want, ldc, acc)
						Small(ta, tb, m, n, k, a, lda, b, ldb, got, ldc, acc)
						for i := range got {
							if math.IsNaN(float64(got[i])) || math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("%v transA %v transB %v acc %v: element (%d, %d): Small %g, Gemm %g", s, ta, tb, acc, i/ldc, i%ldc, got[i], want[i])
							}
						}
					}
				}
			}
		}
	})
}

// Empty products: nothing written for n = 0; C set to 0 for k = 0 unless
// accumulating, as Gemm.
func TestSmallEmpty(t *testing.T) {
	a, b := make([]float32, 12*5), make([]float32, 5)
	c := []float32{7}
	Small(false, false, 12, 0, 5, a, 5, b, 0, c, 1, false)
	Small(false, true, 12, 0, 5, a, 5, nil, 5, c, 1, false)
	if c[0] != 7 {
		t.Fatalf("n = 0 wrote C: %v", c)
	}
	c = []float32{7, 7, 7, 7, 7, 7}
	Small(false, false, 6, 1, 0, nil, 0, nil, 1, c, 1, true)
	if c[5] != 7 {
		t.Fatalf("k = 0 with accumulate changed C: %v", c)
	}
	Small(false, false, 6, 1, 0, nil, 0, nil, 1, c, 1, false)
	for _, v := range c {
		if v != 0 {
			t.Fatalf("k = 0 did not clear C: %v", c)
		}
	}
}

func TestSmallFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	m, n, k := 20, 40, 16
	a, b := randSlice[float64](rng, m*k), randSlice[float64](rng, n*k)
	want, got := make([]float64, m*n), make([]float64, m*n)
	Gemm(false, true, m, n, k, a, k, b, k, want, n, false)
	Small(false, true, m, n, k, a, k, b, k, got, n, false)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("element %d: Small %g, Gemm %g", i, got[i], want[i])
		}
	}
}

// BenchmarkAttentionShapes times Gemm and Small on the six products of one
// (sequence, head) of BERT-S attention (64 tokens, heads of 64, q, k, v
// side by side in rows of 768):
//
//	flock /work/bench.lock go test -run XXX -bench AttentionShapes ./internal/gemm
func BenchmarkAttentionShapes(b *testing.B) {
	rng := rand.New(rand.NewPCG(35, 36))
	const l, dh, ld = 64, 64, 768
	x := randSlice[float32](rng, l*ld)
	y := randSlice[float32](rng, l*ld)
	p := randSlice[float32](rng, l*l)
	c := make([]float32, l*ld)
	shapes := []struct {
		name     string
		ta, tb   bool
		m, n, k  int
		a        []float32
		lda      int
		bb       []float32
		ldb, ldc int
	}{
		{"QKt", false, true, l, l, dh, x, ld, y, ld, l},
		{"PV", false, false, l, dh, l, p, l, y, ld, ld},
		{"PtG", true, false, l, dh, l, p, l, y, ld, ld},
		{"GQ", false, false, l, dh, l, p, l, x, ld, ld},
	}
	for _, s := range shapes {
		for _, f := range []struct {
			name string
			f    func(bool, bool, int, int, int, []float32, int, []float32, int, []float32, int, bool)
		}{{"gemm", Gemm[float32]}, {"small", Small[float32]}} {
			b.Run(s.name+"/"+f.name, func(b *testing.B) {
				cpu0, ok := cpuTime()
				for b.Loop() {
					f.f(s.ta, s.tb, s.m, s.n, s.k, s.a, s.lda, s.bb, s.ldb, c, s.ldc, false)
				}
				if cpu1, ok1 := cpuTime(); ok && ok1 {
					b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/1000/float64(b.N), "cpu-µs/op")
				}
			})
		}
	}
}
