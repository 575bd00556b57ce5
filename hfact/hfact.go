// Package hfact holds the activation modules Hugging Face models use that
// spago does not have: today the exact GELU, x·Φ(x), which is what
// transformers' "gelu" computes (spago's GELU is the tanh approximation,
// transformers' "gelu_new" / "gelu_pytorch_tanh").
//
// models.LoadBERT and models.LoadBART put a *GELU where a checkpoint's
// config asks for "gelu", so training and inference run Hugging Face's
// function. The module is gob-registered by this package: a model saved
// with it (models.Save, nn.Dump) loads wherever this package is linked in.
// A program that loads such a file with cybertron alone must import it:
//
//	import _ "github.com/gopeft/gopeft/hfact"
//
// or the file must be written after models.CybertronFunction, which puts
// spago's tanh GELU back (see the README's fidelity table for what that
// costs).
package hfact

import (
	"encoding/gob"
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/rows"
)

// GELU is the exact Gaussian error linear unit, x·Φ(x) = x/2·(1+erf(x/√2)),
// applied element-wise at every position. It has no parameters.
type GELU struct {
	nn.Module
}

var _ nn.StandardModel = &GELU{}

func init() {
	gob.Register(&GELU{})
}

// Forward applies the exact GELU to every input.
func (m *GELU) Forward(xs ...mat.Tensor) []mat.Tensor {
	ys := make([]mat.Tensor, len(xs))
	for i, x := range xs {
		ys[i] = ag.NewOperator(geluOp{x: x}).Run()
	}
	return ys
}

// ErfGELU returns x·Φ(x) and its derivative Φ(x) + x·φ(x).
func ErfGELU(x float64) (y, dy float64) {
	const invSqrt2 = 0.7071067811865476     // 1/√2
	const invSqrt2Pi = 0.3989422804014327   // 1/√(2π)
	cdf := 0.5 * (1 + math.Erf(x*invSqrt2)) // Φ(x)
	return x * cdf, cdf + x*invSqrt2Pi*math.Exp(-0.5*x*x)
}

// geluOp is the autograd function of GELU on one tensor.
type geluOp struct{ x mat.Tensor }

func (o geluOp) Operands() []mat.Tensor { return []mat.Tensor{o.x} }

func (o geluOp) Forward() (mat.Tensor, error) {
	x, ok := o.x.Value().(mat.Matrix)
	if !ok {
		return nil, fmt.Errorf("hfact: GELU of a %T, expected a mat.Matrix", o.x.Value())
	}
	f32, f64, err := rows.Floats(x)
	if err != nil {
		return nil, fmt.Errorf("hfact: GELU: %w", err)
	}
	if f32 != nil {
		out := make([]float32, len(f32))
		for i, v := range f32 {
			y, _ := ErfGELU(float64(v))
			out[i] = float32(y)
		}
		return mat.NewDense[float32](mat.WithShape(x.Shape()...), mat.WithBacking(out)), nil
	}
	out := make([]float64, len(f64))
	for i, v := range f64 {
		out[i], _ = ErfGELU(v)
	}
	return mat.NewDense[float64](mat.WithShape(x.Shape()...), mat.WithBacking(out)), nil
}

func (o geluOp) Backward(gy mat.Tensor) error {
	if !o.x.RequiresGrad() {
		return nil
	}
	x := o.x.Value().(mat.Matrix)
	g, ok := gy.(mat.Matrix)
	if !ok {
		return fmt.Errorf("hfact: GELU backward: gradient is a %T, expected a mat.Matrix", gy)
	}
	if g.Size() != x.Size() {
		return fmt.Errorf("hfact: GELU backward: gradient has %d elements, the input %d", g.Size(), x.Size())
	}
	x32, x64, err := rows.Floats(x)
	if err != nil {
		return fmt.Errorf("hfact: GELU backward: %w", err)
	}
	g32, g64, err := rows.Floats(g)
	if err != nil {
		return fmt.Errorf("hfact: GELU backward: %w", err)
	}
	if x32 != nil && g32 != nil {
		out := make([]float32, len(x32))
		for i, v := range x32 {
			_, d := ErfGELU(float64(v))
			out[i] = float32(d * float64(g32[i]))
		}
		o.x.AccGrad(mat.NewDense[float32](mat.WithShape(x.Shape()...), mat.WithBacking(out)))
		return nil
	}
	if x64 != nil && g64 != nil {
		out := make([]float64, len(x64))
		for i, v := range x64 {
			_, d := ErfGELU(v)
			out[i] = d * g64[i]
		}
		o.x.AccGrad(mat.NewDense[float64](mat.WithShape(x.Shape()...), mat.WithBacking(out)))
		return nil
	}
	return fmt.Errorf("hfact: GELU backward: input %s and gradient %s differ in dtype", rows.DType(x), rows.DType(g))
}
