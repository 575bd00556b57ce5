package vmath

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// MaxInto, SubInto and AccumulateF64 equal their scalar definitions exactly
// on every path, for every length around the vector width.
func TestRowHelpers(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for n := 0; n <= 50; n++ {
			a, b := make([]float32, n), make([]float32, n)
			for i := range a {
				a[i], b[i] = float32(rng.NormFloat64()*10), float32(rng.NormFloat64()*10)
			}
			got := append([]float32(nil), a...)
			MaxInto(got, b)
			for i := range got {
				require.Equal(t, max(a[i], b[i]), got[i], "MaxInto n=%d i=%d", n, i)
			}
			SubInto(got, a, b)
			for i := range got {
				require.Equal(t, a[i]-b[i], got[i], "SubInto n=%d i=%d", n, i)
			}
			acc, want := make([]float64, n), make([]float64, n)
			for i := range acc {
				acc[i] = rng.NormFloat64()
				want[i] = acc[i] + float64(a[i])
			}
			AccumulateF64(acc, a)
			require.Equal(t, want, acc, "AccumulateF64 n=%d", n)
		}
		// A NaN in src reaches dst.
		nan := float32(math.NaN())
		dst := make([]float32, 20)
		src := make([]float32, 20)
		src[3], src[17] = nan, nan
		MaxInto(dst, src)
		require.True(t, dst[3] != dst[3] && dst[17] != dst[17], "NaN in src gives NaN")
	})
}
