package gemm

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// headShapes take the head path on a machine with its kernels: narrow B,
// m·k ≥ headMinMK; tall (k ≤ m) and deep (k > m), ragged m, one to three
// column panels, k not a multiple of kc.
var headShapes = [][3]int{{3001, 80, 400}, {4100, 16, 256}, {2050, 33, 520}, {260, 80, 4100}, {100, 96, 11000}, {4097, 1, 300}, {1030, 17, 1030}}

// The head path gives serial's bits (the blocked product with C cleared
// first), for both transposes of A, with and without accumulate, split
// over 1 to 3 goroutines, and writes nothing outside C.
func TestHeadEqualsSerial(t *testing.T) {
	if !headOn(active) {
		t.Skipf("no head kernels on path %s", active.name)
	}
	rng := rand.New(rand.NewPCG(31, 32))
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	negZero := float32(math.Copysign(0, -1))
	for _, s := range headShapes {
		m, n, k := s[0], s[1], s[2]
		for _, ta := range []bool{false, true} {
			lda, ldb, ldc := k+3, n+2, n+5
			rowsA := m
			if ta {
				lda, rowsA = m+1, k
			}
			a, b := randSlice[float32](rng, rowsA*lda), randSlice[float32](rng, k*ldb)
			c0 := randSlice[float32](rng, m*ldc)
			for _, acc := range []bool{false, true} {
				want := append([]float32(nil), c0...)
				if !acc {
					for i := 0; i < m; i++ {
						clear(want[i*ldc : i*ldc+n])
					}
				}
				serial(active, ta, false, m, n, k, a, lda, b, ldb, want, ldc)
				for _, procs := range []int{1, 2, 3} {
					runtime.GOMAXPROCS(procs)
					got := append([]float32(nil), c0...)
					// -0 past the columns of C: must stay untouched.
					for i := 0; i < m; i++ {
						for j := n; j < ldc; j++ {
							got[i*ldc+j], want[i*ldc+j] = negZero, negZero
						}
					}
					require.True(t, headGemm(active, ta, false, m, n, k, a, lda, b, ldb, got, ldc, acc), "shape %v takes the head path", s)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%v transA %v acc %v procs %d: C[%d, %d] = %g, serial %g", s, ta, acc, procs, i/ldc, i%ldc, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// Gemm sends the head's shapes to the head path and others not.
func TestHeadTakes(t *testing.T) {
	if !headOn(active) {
		t.Skipf("no head kernels on path %s", active.name)
	}
	a, b, c := make([]float32, 1<<22), make([]float32, 1<<22), make([]float32, 1<<22)
	require.True(t, headGemm(active, false, false, 30522, 80, 128, a, 128, b, 80, c, 80, false))
	require.True(t, headGemm(active, true, false, 128, 80, 30522, a, 128, b, 80, c, 80, false))
	require.False(t, headGemm(active, false, true, 30522, 80, 128, a, 128, b, 128, c, 80, false), "B transposed")
	require.False(t, headGemm(active, false, false, 4096, 97, 256, a, 256, b, 97, c, 97, false), "n > headMaxN")
	require.False(t, headGemm(active, false, false, 1024, 80, 1024, a, 1024, b, 80, c, 80, false), "rows of A 4 KiB apart")
	require.False(t, headGemm(active, false, false, 64, 64, 64, a, 64, b, 64, c, 64, false), "small")
	require.False(t, headGemm(goPath, false, false, 30522, 80, 128, a, 128, b, 80, c, 80, false), "portable path")
}

// GemmRowBias gives the bits of setting every row of C to its bias and
// accumulating the product with the blocked path (serial), on the head
// path's shapes and others, split or not, on every kernel path.
func TestGemmRowBias(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(33, 34))
		old := runtime.GOMAXPROCS(0)
		defer runtime.GOMAXPROCS(old)
		shapes := append([][3]int{{5, 7, 3}, {40, 120, 300}, {13, 80, 0}}, headShapes[:4]...)
		for _, s := range shapes {
			m, n, k := s[0], s[1], s[2]
			for _, ta := range []bool{false, true} {
				lda, ldb, ldc := k+2, n+1, n+3
				rowsA := m
				if ta {
					lda, rowsA = m+4, k
				}
				a, b := randSlice[float32](rng, max(1, rowsA*lda)), randSlice[float32](rng, max(1, k*ldb))
				bias := randSlice[float32](rng, m)
				want := randSlice[float32](rng, m*ldc)
				c0 := append([]float32(nil), want...)
				for i := range m {
					for j := range n {
						want[i*ldc+j] = bias[i]
					}
				}
				if k > 0 {
					serial(active, ta, false, m, n, k, a, lda, b, ldb, want, ldc)
				}
				for _, procs := range []int{1, 2} {
					runtime.GOMAXPROCS(procs)
					got := append([]float32(nil), c0...)
					GemmRowBias(ta, false, m, n, k, a, lda, b, ldb, bias, got, ldc)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%v transA %v procs %d: C[%d, %d] = %g, want %g", s, ta, procs, i/ldc, i%ldc, got[i], want[i])
						}
					}
				}
			}
		}
	})
}

// GemmPacked sends few-row products (at most mc rows, fewer
// than columns) to the head path and others not.
func TestHeadPackedTakes(t *testing.T) {
	if !headOn(active) {
		t.Skipf("no head kernels on path %s", active.name)
	}
	rng := rand.New(rand.NewPCG(35, 36))
	for _, s := range []struct {
		m, n, k int
		takes   bool
	}{{80, 3100, 260, true}, {mc, 1100, 40, true}, {mc + 1, 1100, 40, false}, {80, 50, 100, false}} {
		a, b := randSlice[float32](rng, s.m*s.k), randSlice[float32](rng, s.n*s.k)
		pk := PackB(true, s.k, s.n, b, s.k)
		c := make([]float32, s.m*s.n)
		require.Equal(t, s.takes, headPacked(active, false, s.m, a, s.k, pk, c, s.n, 0, ceilDiv(s.n, nc), cStart[float32]{zero: true}), "%+v", s)
	}
}
