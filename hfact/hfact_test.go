package hfact_test

import (
	"bytes"
	"encoding/gob"
	"math"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/hfact"
)

// Values of x·Φ(x) from Python's math.erf (0.5·x·(1+erf(x/√2))).
var geluValues = []struct{ x, y float64 }{
	{1.0, 0.8413447460685429},
	{-0.5, -0.15426876936299344},
	{2.5, 2.4844758366855597},
	{-3.0, -0.00404969409489031},
	{0, 0},
}

func TestErfGELUValuesAndDerivative(t *testing.T) {
	for _, c := range geluValues {
		y, dy := hfact.ErfGELU(c.x)
		assert.InDelta(t, c.y, y, 1e-15, "gelu(%v)", c.x)
		const h = 1e-6
		yp, _ := hfact.ErfGELU(c.x + h)
		ym, _ := hfact.ErfGELU(c.x - h)
		assert.InDelta(t, (yp-ym)/(2*h), dy, 1e-8, "gelu'(%v)", c.x)
	}
	// The tanh approximation (spago's GELU) differs visibly at x = 1.
	tanh := 0.5 * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(1+0.044715)))
	y, _ := hfact.ErfGELU(1)
	assert.Greater(t, math.Abs(tanh-y), 1e-5)
}

func TestGELUModuleForwardBackward(t *testing.T) {
	xs := []float64{1.0, -0.5, 2.5, -3.0}
	for _, dtype := range []string{"float64", "float32"} {
		t.Run(dtype, func(t *testing.T) {
			var x mat.Tensor
			if dtype == "float64" {
				x = mat.NewDense[float64](mat.WithShape(4, 1), mat.WithBacking(append([]float64(nil), xs...)), mat.WithGrad(true))
			} else {
				f := make([]float32, len(xs))
				for i, v := range xs {
					f[i] = float32(v)
				}
				x = mat.NewDense[float32](mat.WithShape(4, 1), mat.WithBacking(f), mat.WithGrad(true))
			}
			y := (&hfact.GELU{}).Forward(x)[0]
			require.NoError(t, ag.Backward(ag.ReduceSum(y)))
			got := y.Value().(mat.Matrix).Data().F64()
			grad := x.Grad().(mat.Matrix).Data().F64()
			tol := 1e-15
			if dtype == "float32" {
				tol = 1e-6
			}
			for i, v := range xs {
				want, dwant := hfact.ErfGELU(v)
				assert.InDelta(t, want, got[i], tol*(1+math.Abs(want)), "y[%d]", i)
				assert.InDelta(t, dwant, grad[i], tol*(1+math.Abs(dwant)), "grad[%d]", i)
			}
		})
	}
}

func TestGELUOfFrozenInputHasNoGradient(t *testing.T) {
	x := mat.NewDense[float64](mat.WithShape(2, 1), mat.WithBacking([]float64{1, 2}))
	w := mat.NewDense[float64](mat.WithShape(2, 1), mat.WithBacking([]float64{3, 4}), mat.WithGrad(true))
	y := ag.ReduceSum(ag.Prod(w, (&hfact.GELU{}).Forward(x)[0]))
	require.NoError(t, ag.Backward(y))
	assert.False(t, x.HasGrad())
	g1, _ := hfact.ErfGELU(1)
	assert.InDelta(t, g1, w.Grad().(mat.Matrix).Data().F64()[0], 1e-15)
}

// holder stands for a cybertron module list that holds the activation.
type holder struct {
	nn.Module
	Layers []nn.StandardModel
}

func TestGELUIsGobRegistered(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, gob.NewEncoder(&buf).Encode(&holder{Layers: []nn.StandardModel{&hfact.GELU{}}}))
	var back holder
	require.NoError(t, gob.NewDecoder(&buf).Decode(&back))
	require.Len(t, back.Layers, 1)
	assert.IsType(t, &hfact.GELU{}, back.Layers[0])
}
