package finetune

import (
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
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
	n := h.Value().Shape()[1]
	if n == 1 {
		return ag.Affine(l.B, l.W, h)
	}
	ones := l.B.Value().(mat.Matrix).NewMatrix(mat.WithShape(1, n), mat.WithBacking(mat.CreateInitializedSlice(n, 1.0)))
	return ag.Add(ag.Mul(l.W, h), ag.Mul(l.B, ones))
}

// moduleLogits is the LogitsFunc of any output module: the linear fast
// path when it is a *linear.Model, otherwise one Forward per column.
func moduleLogits(m nn.StandardModel) LogitsFunc {
	if l, ok := m.(*linear.Model); ok {
		return LinearLogits(l)
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
