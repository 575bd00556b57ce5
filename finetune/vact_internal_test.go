package finetune

import (
	"math"
	"testing"

	"github.com/nlpodyssey/spago/nn/activation"
	"github.com/stretchr/testify/assert"
)

// The float32 vector activations against the float64 ones (the bounds in
// vact.go): value and derivative within tol·(1+|x|) over [-12, 12],
// every chunk length, NaN-free.
func TestVectorActivationsMatchFloat64(t *testing.T) {
	const n = 20011 // not a multiple of the chunk or the vector width
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = -12 + 24*float64(i)/float64(n-1)
	}
	for _, a := range []activation.Activation{activation.GELU, geluErf, activation.Swish, activation.SiLU} {
		x32 := make([]float32, n)
		x64 := make([]float64, n)
		for i, v := range xs {
			x32[i] = float32(v)
			x64[i] = float64(float32(v))
		}
		d32 := applyActivation(nil, a, x32, true)
		d64 := applyActivation(nil, a, x64, true)
		worstY, worstD := 0.0, 0.0
		for i := range xs {
			s := 1 + math.Abs(x64[i])
			worstY = max(worstY, math.Abs(float64(x32[i])-x64[i])/s)
			worstD = max(worstD, math.Abs(float64(d32[i])-d64[i])/s)
		}
		t.Logf("activation %d: max |Δy|/(1+|x|) %.3g, max |Δy'|/(1+|x|) %.3g", a, worstY, worstD)
		assert.LessOrEqual(t, worstY, 5e-7, "activation %d value", a)
		assert.LessOrEqual(t, worstD, 5e-7, "activation %d derivative", a)
		// Inference (no derivative) gives the same values.
		y := make([]float32, n)
		for i, v := range xs {
			y[i] = float32(v)
		}
		assert.Nil(t, applyActivation(nil, a, y, false))
		assert.Equal(t, x32, y)
	}
}

func TestSoftmaxRowFloat32(t *testing.T) {
	row := []float32{1, 2, 3, -1e30, 0.5, 7, 7, -3, 2, 2, 1, 0, 0, 0, 5, 6, 9}
	want := make([]float64, len(row))
	hi, sum := math.Inf(-1), 0.0
	for _, v := range row {
		hi = max(hi, float64(v)*0.5)
	}
	for i, v := range row {
		want[i] = math.Exp(float64(v)*0.5 - hi)
		sum += want[i]
	}
	softmaxRow(row, float32(0.5))
	for i := range row {
		assert.InDelta(t, want[i]/sum, float64(row[i]), 1e-7, "element %d", i)
	}
}

// The loss and every column's log-sum-exp do not depend on how many
// goroutines share the rows, and match float64.
func TestCrossEntropyForwardBlocks(t *testing.T) {
	r, n := 1000, 5
	x := make([]float32, r*n)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.37) * 6)
	}
	targets := []int{0, 999, 500, 3, 256}
	lse, inv := make([]float64, n), make([]float64, n)
	exps := make([]float32, r*n)
	loss := crossEntropyForward(x, exps, r, n, targets, lse, inv)
	for j := 0; j < n; j++ {
		hi := math.Inf(-1)
		for i := 0; i < r; i++ {
			hi = max(hi, float64(x[i*n+j]))
		}
		s := 0.0
		for i := 0; i < r; i++ {
			s += math.Exp(float64(x[i*n+j]) - hi)
		}
		assert.InDelta(t, hi+math.Log(s), lse[j], 1e-6, "column %d", j)
	}
	lse2, inv2 := make([]float64, n), make([]float64, n)
	assert.Equal(t, loss, crossEntropyForward(x, nil, r, n, targets, lse2, inv2))
	assert.Equal(t, lse, lse2)
}
