package finetune

import (
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/internal/gemm"
)

// LogitsFunc maps hidden states to output logits. h is either one hidden
// state as a dim×1 column or n of them as the columns of a dim×n matrix; the
// result is vocab×1 or vocab×n, column j holding the logits of h's column j.
//
// h is the input of the model's output projection: for BERT masked LM the
// output of the transform layers (ModelForMaskedLM.Layers[:3]), for BART the
// decoder output. The losses call it once per batch, with the hidden states
// of every position that carries a loss and no other. A nil LogitsFunc means
// the model's own projection (BERT Layers[3], BART Projection).
//
// A LogitsFunc must build its result from differentiable spago ops (or its
// own ag.AutoGradFunction) and must not fail: errors inside spago ops kill
// the process.
type LogitsFunc func(h mat.Tensor) mat.Tensor

// LinearLogits returns the LogitsFunc of a linear output layer: W·h + B,
// with B added to every column.
func LinearLogits(l *linear.Model) LogitsFunc {
	return func(h mat.Tensor) mat.Tensor { return affineColumns(l, h) }
}

// affineColumns applies l to every column of h. For one column it is
// exactly l.Forward(h); for n columns it is one matrix product plus B
// broadcast through an outer product with a row of ones (spago's Affine
// does not broadcast the bias).
func affineColumns(l *linear.Model, h mat.Tensor) mat.Tensor {
	return affineColumnsIn(nil, l, h)
}

// affineColumnsIn is affineColumns whose vocabulary-sized output comes
// from a Task's scratch (nil cache: allocated).
func affineColumnsIn(cache *packCache, l *linear.Model, h mat.Tensor) mat.Tensor {
	switch h.Value().(type) {
	case *mat.Dense[float32]:
		if y, ok := newAffineOp(l, h, scratchOf[float32](cache)); ok {
			return y
		}
	case *mat.Dense[float64]:
		if y, ok := newAffineOp(l, h, scratchOf[float64](cache)); ok {
			return y
		}
	}
	n := h.Value().Shape()[1]
	if n == 1 {
		return ag.Affine(l.B, l.W, h)
	}
	ones := l.B.Value().(mat.Matrix).NewMatrix(mat.WithShape(1, n), mat.WithBacking(mat.CreateInitializedSlice(n, 1.0)))
	return ag.Add(ag.Mul(l.W, h), ag.Mul(l.B, ones))
}

// linearLogitsIn is LinearLogits whose output comes from the Task's
// scratch (nil cache: allocated). Only for the Task's own use: the loss
// gives the output back when the step is over (crossEntropy.release), so
// no caller may keep it.
func linearLogitsIn(cache *packCache, l *linear.Model) LogitsFunc {
	return func(h mat.Tensor) mat.Tensor { return affineColumnsIn(cache, l, h) }
}

// moduleLogits is the LogitsFunc of any output module: the linear fast
// path when it is a *linear.Model, otherwise one Forward per column.
func moduleLogits(m nn.StandardModel) LogitsFunc {
	return moduleLogitsIn(nil, m)
}

// moduleLogitsIn is moduleLogits for a Task's loss: the linear fast path
// takes its output from the Task's scratch (linearLogitsIn).
func moduleLogitsIn(cache *packCache, m nn.StandardModel) LogitsFunc {
	if l, ok := m.(*linear.Model); ok {
		return linearLogitsIn(cache, l)
	}
	return func(h mat.Tensor) mat.Tensor {
		n := h.Value().Shape()[1]
		if n == 1 {
			return m.Forward(h)[0]
		}
		cols := make([]mat.Tensor, n)
		for j := range cols {
			cols[j] = m.Forward(ag.ColView(h, j))[0]
		}
		return columns(cols)
	}
}

// columns arranges dim×1 columns as a dim×n matrix (the column itself when
// there is only one).
func columns(cs []mat.Tensor) mat.Tensor {
	if len(cs) == 1 {
		return cs[0]
	}
	return ag.T(ag.Stack(cs...))
}

// affineOp is W·h + B·1ᵀ as one node: the product runs on internal/gemm,
// and backward computes only the gradients its operands require (a frozen
// W gets no vocab×dim gradient, and nothing vocab×dim is allocated).
type affineOp[T float] struct {
	w, b, h mat.Tensor
	sc      *scratch[T] // where the output comes from (nil: allocated)
}

func newAffineOp[T float](l *linear.Model, h mat.Tensor, sc *scratch[T]) (mat.Tensor, bool) {
	w, ok1 := l.W.Value().(*mat.Dense[T])
	b, ok2 := l.B.Value().(*mat.Dense[T])
	if !ok1 || !ok2 || len(w.Shape()) != 2 || b.Size() != w.Shape()[0] || w.Shape()[1] != h.Value().Shape()[0] {
		return nil, false
	}
	return ag.NewOperator(&affineOp[T]{w: l.W, b: l.B, h: h, sc: sc}).Run(), true
}

func (o *affineOp[T]) Operands() []mat.Tensor { return []mat.Tensor{o.w, o.b, o.h} }

func (o *affineOp[T]) Forward() (mat.Tensor, error) {
	w, b, h := mat.Data[T](o.w.Value()), mat.Data[T](o.b.Value()), mat.Data[T](o.h.Value())
	v, d := o.w.Value().Shape()[0], o.w.Value().Shape()[1]
	n := o.h.Value().Shape()[1]
	y := o.sc.get(v * n) // every row starts from its bias, the product accumulated onto it
	gemm.GemmRowBias(false, false, v, n, d, w, d, h, n, b, y, n)
	return mat.NewDense[T](mat.WithShape(v, n), mat.WithBacking(y)), nil
}

func (o *affineOp[T]) Backward(gy mat.Tensor) error {
	g := mat.Data[T](gy.(mat.Matrix))
	v, d := o.w.Value().Shape()[0], o.w.Value().Shape()[1]
	n := o.h.Value().Shape()[1]
	if o.h.RequiresGrad() {
		gh := make([]T, d*n)
		gemm.Gemm(true, false, d, n, v, mat.Data[T](o.w.Value()), d, g, n, gh, n, false)
		o.h.AccGrad(mat.NewDense[T](mat.WithShape(d, n), mat.WithBacking(gh)))
	}
	if o.w.RequiresGrad() {
		gw := make([]T, v*d)
		gemm.Gemm(false, true, v, d, n, g, n, mat.Data[T](o.h.Value()), n, gw, d, false)
		o.w.AccGrad(mat.NewDense[T](mat.WithShape(v, d), mat.WithBacking(gw)))
	}
	if o.b.RequiresGrad() {
		gb := make([]T, v)
		for i := range gb {
			var s T
			for _, x := range g[i*n : (i+1)*n] {
				s += x
			}
			gb[i] = s
		}
		o.b.AccGrad(mat.NewDense[T](mat.WithShape(o.b.Value().Shape()...), mat.WithBacking(gb)))
	}
	return nil
}
