package rows_test

import (
	"math"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
)

func TestRowOps(t *testing.T) {
	a := mat.NewDense[float32](mat.WithShape(3, 2), mat.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	b := mat.NewDense[float32](mat.WithShape(2, 1), mat.WithBacking([]float32{9, 8}))
	require.NoError(t, rows.Copy(a, 1, b, 0, 2))
	assert.Equal(t, []float64{9, 8}, rows.Get(a, 1, 2))
	assert.Equal(t, 4.0, rows.MaxAbsDiff(a, 0, a, 2, 2))
	assert.Equal(t, "float32", rows.DType(a))

	d := mat.NewDense[float64](mat.WithShape(2, 1), mat.WithBacking([]float64{1, 1}))
	err := rows.Copy(a, 0, d, 0, 2)
	assert.ErrorContains(t, err, "cannot copy a float64 row into a float32 matrix")

	require.NoError(t, rows.Set(a, 2, []float64{0, math.Inf(1)}))
	ok, col := rows.Finite(a, 2, 2)
	assert.False(t, ok)
	assert.Equal(t, 1, col)
	ok, _ = rows.Finite(a, 0, 2)
	assert.True(t, ok)
	require.NoError(t, rows.Set(a, 2, []float64{0, 0}))
	assert.True(t, rows.Zero(a, 2, 2))
	assert.False(t, rows.Zero(a, 0, 2))
}
