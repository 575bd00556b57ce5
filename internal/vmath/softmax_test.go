package vmath

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Softmax32 and SoftmaxBackward32 are within float32 rounding of float64
// softmax and its backward for every length 1–70 (full blocks of 16 and
// masked tails) and leave values past the row alone, on every path.
func TestSoftmax32(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(41, 42))
		for n := 1; n <= 70; n++ {
			const scale = 0.125
			x, gy := make([]float32, n+3), make([]float32, n+3)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 20)
				gy[i] = float32(rng.NormFloat64())
			}
			p := append([]float32(nil), x...)
			Softmax32(p[:n], scale)
			// float64 reference
			m := math.Inf(-1)
			for _, v := range x[:n] {
				m = math.Max(m, float64(v*scale))
			}
			want := make([]float64, n)
			var s float64
			for i, v := range x[:n] {
				want[i] = math.Exp(float64(v*scale) - m)
				s += want[i]
			}
			var dot float64
			for i := range want {
				want[i] /= s
				require.InDelta(t, want[i], float64(p[i]), 1e-6*(1+want[i]), "n %d element %d", n, i)
				dot += float64(p[i]) * float64(gy[i])
			}
			assert.Equal(t, x[n:], p[n:], "n %d: values past the row", n)
			g := append([]float32(nil), gy...)
			SoftmaxBackward32(p[:n], g, scale)
			for i := range n {
				w := scale * float64(p[i]) * (float64(gy[i]) - dot)
				require.InDelta(t, w, float64(g[i]), 1e-6, "backward n %d element %d", n, i)
			}
			assert.Equal(t, gy[n:], g[n:], "n %d: gradients past the row", n)
		}
	})
}

// A NaN or +Inf score makes the whole row NaN; -Inf scores get 0.
func TestSoftmax32Specials(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		for _, n := range []int{3, 16, 20, 64} {
			for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
				for _, at := range []int{0, n - 1} {
					row := make([]float32, n)
					for i := range row {
						row[i] = float32(i % 7)
					}
					row[at] = bad
					Softmax32(row, 0.5)
					for i, v := range row {
						assert.True(t, math.IsNaN(float64(v)), "n %d, %v at %d: element %d is %v", n, bad, at, i, v)
					}
				}
			}
			row := make([]float32, n)
			row[n-1] = float32(math.Inf(-1))
			Softmax32(row, 1)
			assert.Zero(t, row[n-1])
			assert.InDelta(t, 1/float64(n-1), float64(row[0]), 1e-6)
		}
		Softmax32(nil, 1)
		SoftmaxBackward32(nil, nil, 1)
	})
}

// BenchmarkSoftmax32 times a 64-value row (BERT-S attention) forward and
// backward:
//
//	flock /work/bench.lock go test -run XXX -bench Softmax32 ./internal/vmath
func BenchmarkSoftmax32(b *testing.B) {
	rng := rand.New(rand.NewPCG(43, 44))
	x, g := make([]float32, 64), make([]float32, 64)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		g[i] = float32(rng.NormFloat64())
	}
	row := make([]float32, 64)
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			copy(row, x)
			Softmax32(row, 0.125)
		}
	})
	b.Run("backward", func(b *testing.B) {
		gr := make([]float32, 64)
		for b.Loop() {
			copy(gr, g)
			SoftmaxBackward32(row, gr, 0.125)
		}
	})
}
