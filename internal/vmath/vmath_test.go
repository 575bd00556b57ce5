package vmath

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eachPath runs f under every implementation this machine supports.
func eachPath(t *testing.T, f func(t *testing.T)) {
	saved := active
	defer func() { active = saved }()
	for _, p := range supported() {
		active = p
		t.Run(p.name, f)
	}
}

// The documented bound: relative error ≤ 2.4e-7 over [-87.3, 88.7].
const expBound = 2.4e-7

func TestExp32Accuracy(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		const n = 1 << 20
		src := make([]float32, n+7) // a tail the vector loop does not cover
		for i := range src {
			src[i] = float32(-87.3 + (88.7+87.3)*float64(i)/float64(len(src)-1))
		}
		src = append(src, 0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 1, -1, 88.7, -87.3)
		dst := make([]float32, len(src))
		Exp32(dst, src)
		worst, at := 0.0, float32(0)
		for i, x := range src {
			want := math.Exp(float64(x))
			rel := math.Abs(float64(dst[i])-want) / want
			if rel > worst {
				worst, at = rel, x
			}
		}
		t.Logf("%s: max relative error %.3g at x = %g", Path(), worst, at)
		assert.LessOrEqual(t, worst, expBound)
	})
}

func TestExp32Specials(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		inf := float32(math.Inf(1))
		src := []float32{float32(math.NaN()), inf, -inf, 100, 89, -200, -104, 0, 88.72}
		for len(src) < 32 { // fill a full vector
			src = append(src, 0)
		}
		dst := make([]float32, len(src))
		Exp32(dst, src)
		assert.True(t, math.IsNaN(float64(dst[0])), "NaN")
		assert.Equal(t, inf, dst[1], "+Inf")
		assert.Equal(t, float32(0), dst[2], "-Inf")
		assert.Equal(t, inf, dst[3], "100")
		assert.Equal(t, inf, dst[4], "89")
		assert.Equal(t, float32(0), dst[5], "-200")
		assert.InDelta(t, 0, dst[6], 1e-44, "-104")
		assert.Equal(t, float32(1), dst[7], "0")
		assert.InEpsilon(t, math.Exp(float64(float32(88.72))), float64(dst[8]), expBound, "88.72")
		// In place.
		Exp32(src, src)
		assert.Equal(t, dst[3:], src[3:])
	})
}

func TestExp32ShortSlices(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		for n := 0; n < 40; n++ {
			src := make([]float32, n)
			for i := range src {
				src[i] = float32(i) / 7
			}
			dst := make([]float32, n)
			Exp32(dst, src)
			for i, x := range src {
				require.InEpsilon(t, math.Exp(float64(x)), float64(dst[i]), expBound, "n=%d i=%d", n, i)
			}
		}
	})
}

func BenchmarkExp32(b *testing.B) {
	src := make([]float32, 4096)
	for i := range src {
		src[i] = float32(i%200) / 10
	}
	dst := make([]float32, len(src))
	for _, p := range supported() {
		b.Run(p.name, func(b *testing.B) {
			saved := active
			active = p
			defer func() { active = saved }()
			for b.Loop() {
				Exp32(dst, src)
			}
			b.ReportMetric(float64(len(src))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gexp/s")
		})
	}
}

func TestGELUTanh32(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		const n = 40009
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(-15 + 30*float64(i)/float64(n-1))
		}
		x = append(x, 0, float32(math.Inf(1)), float32(math.Inf(-1)))
		y, d := make([]float32, len(x)), make([]float32, len(x))
		GELUTanh32(x, y, d)
		const c = 0.7978845608028654
		worstY, worstD := 0.0, 0.0
		for i, v32 := range x[:n+1] {
			v := float64(v32)
			th := math.Tanh(c * (v + 0.044715*v*v*v))
			wy := 0.5 * v * (1 + th)
			wd := 0.5*(1+th) + 0.5*v*(1-th*th)*c*(1+3*0.044715*v*v)
			worstY = max(worstY, math.Abs(float64(y[i])-wy)/(1+math.Abs(v)))
			worstD = max(worstD, math.Abs(float64(d[i])-wd)/(1+math.Abs(v)))
		}
		t.Logf("%s: max |Δy|/(1+|x|) %.3g, |Δy'|/(1+|x|) %.3g", Path(), worstY, worstD)
		assert.LessOrEqual(t, worstY, 5e-7)
		assert.LessOrEqual(t, worstD, 5e-7)
		assert.Equal(t, float32(math.Inf(1)), y[n+1], "+Inf")
		assert.True(t, math.IsNaN(float64(y[n+2])), "-Inf gives -Inf·0, as the float64 formula")
		// Without the derivative, in place: the same values.
		z := append([]float32(nil), x...)
		GELUTanh32(z, z, nil)
		assert.Equal(t, y[:n+1], z[:n+1])
	})
}
