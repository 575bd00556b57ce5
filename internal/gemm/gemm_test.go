package gemm

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// naive is the reference product in float64.
func naive[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var x, y T
				if transA {
					x = a[p*lda+i]
				} else {
					x = a[i*lda+p]
				}
				if transB {
					y = b[j*ldb+p]
				} else {
					y = b[p*ldb+j]
				}
				s += float64(x) * float64(y)
			}
			out[i*n+j] = s
		}
	}
	return out
}

func randSlice[T Float](rng *rand.Rand, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = T(rng.NormFloat64())
	}
	return s
}

// checkShapes compares Gemm with naive on ragged shapes; {30, 50, 1021}
// has lda = 1024 (A packed, elsewhere read in place).
func checkShapes[T Float](t *testing.T, tol float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {5, 7, 3}, {6, 16, 256}, {12, 32, 256}, {13, 33, 300}, {25, 65, 513}, {97, 130, 70}, {200, 1100, 9}, {64, 64, 64}, {300, 200, 520}, {23, 250, 40}, {110, 80, 300}, {30, 50, 1021}}
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, acc := range []bool{false, true} {
					lda, ldb := k+3, n+1
					if ta {
						lda = m + 2
					}
					if tb {
						ldb = k + 5
					}
					rowsA, rowsB := m, k
					if ta {
						rowsA = k
					}
					if tb {
						rowsB = n
					}
					a := randSlice[T](rng, rowsA*lda)
					b := randSlice[T](rng, rowsB*ldb)
					ldc := n + 4
					// Two rows past C's last: the kernels must not touch
					// them nor the columns past n. These cells hold -0,
					// which even adding a zero product would turn into +0.
					c := randSlice[T](rng, (m+2)*ldc)
					for i := range c {
						if i >= m*ldc || i%ldc >= n {
							c[i] = T(math.Copysign(0, -1))
						}
					}
					c0 := append([]T(nil), c...)
					Gemm(ta, tb, m, n, k, a, lda, b, ldb, c[:m*ldc], ldc, acc)
					want := naive(ta, tb, m, n, k, a, lda, b, ldb)
					for i := 0; i < m+2; i++ {
						for j := 0; j < ldc; j++ {
							got := float64(c[i*ldc+j])
							if i >= m || j >= n {
								if !math.Signbit(float64(c[i*ldc+j])) || c[i*ldc+j] != 0 {
									t.Fatalf("%v: wrote outside C at (%d,%d)", s, i, j)
								}
								continue
							}
							w := want[i*n+j]
							if acc {
								w += float64(c0[i*ldc+j])
							}
							if math.Abs(got-w) > tol*(1+math.Sqrt(float64(k))) {
								t.Fatalf("shape %v transA %v transB %v acc %v: C[%d,%d] = %g, want %g", s, ta, tb, acc, i, j, got, w)
							}
						}
					}
				}
			}
		}
	}
}

// eachPath runs f with every float32 kernel this machine supports (and,
// built with -tags purego, the portable one only).
func eachPath(t *testing.T, f func(t *testing.T)) {
	saved := active
	defer func() { active = saved }()
	for _, p := range supported() {
		active = p
		t.Run(p.name, f)
	}
}

func TestGemmFloat32(t *testing.T) {
	eachPath(t, func(t *testing.T) { checkShapes[float32](t, 1e-5) })
}

func TestGemmFloat64(t *testing.T) { checkShapes[float64](t, 1e-12) }

func TestPathsOfThisMachine(t *testing.T) {
	ps := supported()
	require.NotEmpty(t, ps)
	assert.Equal(t, "go", ps[len(ps)-1].name, "the portable kernel is always last")
	assert.Equal(t, ps[0].name, Path(), "the best supported path is the default")
	for _, p := range ps {
		assert.LessOrEqual(t, p.mr*p.nr, maxTile, p.name)
		assert.Zero(t, mc%p.mr, p.name)
		assert.Zero(t, nc%p.nr, p.name)
	}
	t.Logf("float32 paths: %v", names(ps))
}

func names(ps []*path) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.name)
	}
	return out
}

// The kernels round differently (the tile shape changes the order of
// nothing within an element, but FMA versus separate multiply-add does):
// every path must be within float32 rounding of the portable one.
func TestPathsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m, n, k := 77, 91, 600
	a, b := randSlice[float32](rng, m*k), randSlice[float32](rng, k*n)
	saved := active
	defer func() { active = saved }()
	active = goPath
	want := make([]float32, m*n)
	Gemm(false, false, m, n, k, a, k, b, n, want, n, false)
	for _, p := range supported() {
		active = p
		got := make([]float32, m*n)
		Gemm(false, false, m, n, k, a, k, b, n, got, n, false)
		for i := range got {
			require.InDelta(t, want[i], got[i], 1e-3, "%s element %d", p.name, i)
		}
	}
}

func TestGemmDeterministicAcrossSplits(t *testing.T) {
	eachPath(t, testDeterministicAcrossSplits)
}

// Every split (1 to 4 goroutines, rows sharing B's packed blocks or
// columns) gives the same bits: shapes with several blocks of k (both
// shared B buffers reused), more than nc columns, fewer column panels than
// workers, ragged edges, each operand transposed or not.
func testDeterministicAcrossSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	// {36, 32, 16400}: B's blocks fill three runs, so a shared buffer is
	// reused.
	shapes := [][3]int{{300, 257, 520}, {400, 40, 600}, {1030, 1027, 20}, {50, 300, 900}, {40, 30, 2000}, {36, 32, 16400}}
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				lda, ldb := k+1, n+3
				if ta {
					lda = m + 2
				}
				if tb {
					ldb = k + 5
				}
				rowsA, rowsB := m, k
				if ta {
					rowsA = k
				}
				if tb {
					rowsB = n
				}
				a, b := randSlice[float32](rng, rowsA*lda), randSlice[float32](rng, rowsB*ldb)
				var want []float32
				for _, procs := range []int{1, 2, 3, 4} {
					runtime.GOMAXPROCS(procs)
					poisonPool()
					got := make([]float32, m*n)
					Gemm(ta, tb, m, n, k, a, lda, b, ldb, got, n, false)
					if want == nil {
						want = got
						continue
					}
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("%v transA %v transB %v: element %d differs between 1 and %d goroutines: %g vs %g", s, ta, tb, i, procs, want[i], got[i])
						}
					}
				}
			}
		}
	}
}

// poisonPool fills pooled buffers with NaN, so that a product reading a
// buffer before it is (re)packed fails, even when the stale contents came
// from the same product.
func poisonPool() {
	var bs []*buffers[float32]
	for range 8 {
		b := pools.f32.Get().(*buffers[float32])
		for i := range b.a {
			b.a[i] = float32(math.NaN())
		}
		for i := range b.b {
			b.b[i] = float32(math.NaN())
		}
		bs = append(bs, b)
	}
	for _, b := range bs {
		pools.f32.Put(b)
	}
}

// Shapes of the hot products at hidden 256, 512 tokens, vocabulary 30,522
// and 80 masked positions.
var benchShapes = []struct {
	name    string
	m, n, k int
	tb      bool
}{
	{"512x256x256-NT", 512, 256, 256, true},
	{"512x1024x256-NT", 512, 1024, 256, true},
	{"30522x80x256-NN", 30522, 80, 256, false},
}

func BenchmarkGemm(b *testing.B) {
	saved := active
	defer func() { active = saved }()
	for _, p := range supported() {
		active = p
		b.Run(p.name, benchGemm)
	}
}

func benchGemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range benchShapes {
		a := randSlice[float32](rng, s.m*s.k)
		bb := randSlice[float32](rng, s.k*s.n)
		c := make([]float32, s.m*s.n)
		ldb := s.n
		if s.tb {
			ldb = s.k
		}
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				Gemm(false, s.tb, s.m, s.n, s.k, a, s.k, bb, ldb, c, s.n, false)
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSpagoMul is the same products through spago's Dense.Mul, for
// comparison (B given as k×n).
func BenchmarkSpagoMul(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range benchShapes {
		a := mat.NewDense[float32](mat.WithShape(s.m, s.k), mat.WithBacking(randSlice[float32](rng, s.m*s.k)))
		bb := mat.NewDense[float32](mat.WithShape(s.k, s.n), mat.WithBacking(randSlice[float32](rng, s.k*s.n)))
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				_ = a.Mul(bb)
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// A packed B gives Gemm's values bit for bit, on every path, split or not.
func TestGemmPackedEqualsGemm(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		// {80, 3100, 260} and {7, 2100, 300}: few rows, several column blocks
		// (the workers split the columns). {50, 70, 1023}: lda = 1024, A
		// packed (elsewhere read in place).
		for _, s := range [][3]int{{1, 1, 1}, {5, 7, 3}, {40, 33, 300}, {512, 256, 256}, {300, 1100, 520}, {80, 3100, 260}, {7, 2100, 300}, {50, 70, 1023}} {
			m, n, k := s[0], s[1], s[2]
			for _, tb := range []bool{false, true} {
				for _, ta := range []bool{false, true} {
					lda, ldb := k+1, n+2
					if ta {
						lda = m + 3
					}
					if tb {
						ldb = k + 4
					}
					rowsA, rowsB := m, k
					if ta {
						rowsA = k
					}
					if tb {
						rowsB = n
					}
					a, b := randSlice[float32](rng, rowsA*lda), randSlice[float32](rng, rowsB*ldb)
					want, got := make([]float32, m*n), make([]float32, m*n)
					Gemm(ta, tb, m, n, k, a, lda, b, ldb, want, n, false)
					pk := PackB(tb, k, n, b, ldb)
					GemmPacked(ta, m, a, lda, pk, got, n, false)
					require.Equal(t, want, got, "shape %v transA %v transB %v", s, ta, tb)
					Gemm(ta, tb, m, n, k, a, lda, b, ldb, want, n, true)
					GemmPacked(ta, m, a, lda, pk, got, n, true)
					require.Equal(t, want, got, "accumulate, shape %v", s)
					bias := randSlice[float32](rng, n)
					for i := range m {
						copy(want[i*n:(i+1)*n], bias)
					}
					Gemm(ta, tb, m, n, k, a, lda, b, ldb, want, n, true)
					GemmPackedBias(ta, m, a, lda, pk, bias, got, n)
					require.Equal(t, want, got, "bias, shape %v", s)
				}
			}
		}
	})
}

// With k = 0 the product is empty: C is the bias, or zeros.
func TestGemmPackedEmptyK(t *testing.T) {
	pk := PackB(true, 0, 3, []float32{}, 1)
	c := []float32{7, 7, 7, 7, 7, 7}
	GemmPackedBias(false, 2, []float32{}, 1, pk, []float32{1, 2, 3}, c, 3)
	require.Equal(t, []float32{1, 2, 3, 1, 2, 3}, c)
	GemmPacked(false, 2, []float32{}, 1, pk, c, 3, false)
	require.Equal(t, []float32{0, 0, 0, 0, 0, 0}, c)
	// No columns (an empty bias) or no rows: nothing to do.
	require.NotPanics(t, func() {
		GemmPackedBias(false, 2, []float32{1, 2}, 1, PackB(true, 1, 0, []float32{}, 1), nil, nil, 0)
		GemmPackedBias(false, 0, nil, 1, pk, []float32{1, 2, 3}, nil, 3)
	})
}

// Update repacks only the listed column blocks and leaves the original
// Packed as it was: both equal PackB of their own data, bit for bit.
func TestPackedUpdate(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(21, 22))
		for _, tb := range []bool{true, false} {
			k, n, m := 300, 2*BlockCols+70, 20
			ldb := n
			if tb {
				ldb = k
			}
			b := randSlice[float32](rng, k*n)
			old := append([]float32(nil), b...)
			pk := PackB(tb, k, n, b, ldb)
			// Change one value in column block 1 and one in block 2.
			at := func(p, j int) int {
				if tb {
					return j*ldb + p
				}
				return p*ldb + j
			}
			b[at(7, BlockCols+5)] += 1
			b[at(k-1, 2*BlockCols+69)] -= 2
			up := pk.Update(b, ldb, []int{1, 2})
			a := randSlice[float32](rng, m*k)
			want, got := make([]float32, m*n), make([]float32, m*n)
			GemmPacked(false, m, a, k, PackB(tb, k, n, b, ldb), want, n, false)
			GemmPacked(false, m, a, k, up, got, n, false)
			require.Equal(t, want, got, "updated, transB %v", tb)
			GemmPacked(false, m, a, k, PackB(tb, k, n, old, ldb), want, n, false)
			GemmPacked(false, m, a, k, pk, got, n, false)
			require.Equal(t, want, got, "the original is unchanged, transB %v", tb)
			require.Panics(t, func() { pk.Update(b, ldb, []int{3}) })
		}
	})
}

// GemmPacked's rows are claimed in chunks by however many goroutines
// start in time: the result is the same bits for any GOMAXPROCS, run
// after run.
func TestGemmPackedAnySplit(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	rng := rand.New(rand.NewPCG(31, 32))
	for _, s := range [][3]int{{512, 256, 256}, {301, 700, 520}, {97, 64, 300}} {
		m, n, k := s[0], s[1], s[2]
		a, b := randSlice[float32](rng, m*k), randSlice[float32](rng, n*k)
		pk := PackB(true, k, n, b, k)
		runtime.GOMAXPROCS(1)
		want := make([]float32, m*n)
		GemmPacked(false, m, a, k, pk, want, n, false)
		for _, procs := range []int{2, 3, 4, 2} {
			runtime.GOMAXPROCS(procs)
			got := make([]float32, m*n)
			GemmPacked(false, m, a, k, pk, got, n, false)
			require.Equal(t, want, got, "shape %v, GOMAXPROCS %d", s, procs)
		}
	}
}
