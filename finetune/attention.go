package finetune

import (
	"math"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/attention/multiheadattention"
	"github.com/nlpodyssey/spago/nn/attention/selfattention"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"
)

// checkAttention checks the parts of an attention model the forward uses.
func checkAttention(m *multiheadattention.Model) error {
	if m == nil || m.OutputMerge == nil || len(m.Heads) == 0 {
		return unsupportedf("multi-head attention is nil, has no heads or no OutputMerge")
	}
	for j, h := range m.Heads {
		if h == nil || h.Query == nil || h.Key == nil || h.Value == nil || h.ScaleFactor == nil {
			return unsupportedf("attention head %d is incomplete", j)
		}
	}
	return nil
}

// headInputs are the per-position inputs of one attention head: queries,
// and the sources of its keys and values (each handle used once).
type headInputs struct {
	q, k, v []mat.Tensor
}

// multiHeadAttention is the training-safe equivalent of
// (*multiheadattention.Model).Forward without a cache: every head attends
// from its queries to its keys and values, the heads are concatenated per
// position and merged by OutputMerge. Same parameters, same ops, same
// order, so the values equal spago's bit for bit.
//
// spago's own version hands ag.Concat sub-slices of one buffer and then
// appends the Concat results into that buffer, overwriting the operand
// lists of earlier Concat nodes (read lazily in backward): the graph refers
// to itself and ag.Backward deadlocks. Here every Concat gets a fresh slice.
func (g *graph) multiHeadAttention(m *multiheadattention.Model, in []headInputs) []mat.Tensor {
	heads := make([][]mat.Tensor, len(m.Heads))
	for j, h := range m.Heads {
		heads[j] = g.attentionHead(h, in[j])
	}
	merged := make([]mat.Tensor, len(in[0].q))
	for i := range merged {
		parts := make([]mat.Tensor, len(heads)) // owned by the Concat node from now on
		for j := range heads {
			parts[j] = heads[j][i]
		}
		merged[i] = ag.Concat(parts...)
	}
	return g.linears(m.OutputMerge, merged)
}

// attentionHead is one head's scaled dot-product attention, with the head's
// causal mask if it has one (as spago: only when there is more than one
// query).
func (g *graph) attentionHead(h *selfattention.Model, in headInputs) []mat.Tensor {
	n := len(in.q)
	keys := g.linears(h.Key, in.k)
	// One handle of the stacked keys and values per query.
	k := g.fan(ag.Stack(keys...), n)
	v := g.fan(ag.Stack(g.linears(h.Value, in.v)...), n)
	causal := h.UseCausalMask && n > 1
	out := make([]mat.Tensor, n)
	for i, q := range g.linears(h.Query, in.q) {
		scores := ag.ProdScalar(ag.Mul(k[i], q), h.ScaleFactor)
		if causal {
			scores = ag.Add(scores, causalMask(keys[0], i, len(keys)))
		}
		out[i] = ag.MulT(v[i], ag.Softmax(scores))
	}
	return out
}

// causalMask is a constant n×1 column, 0 up to position i and -Inf after it,
// in the dtype of like.
func causalMask(like mat.Tensor, i, n int) mat.Tensor {
	mask := make([]float64, n)
	for k := i + 1; k < n; k++ {
		mask[k] = math.Inf(-1)
	}
	return like.Value().(mat.Matrix).NewMatrix(mat.WithBacking(mask))
}

// residualAttention is an attention block with a residual connection and a
// layer norm, either before the attention (pre-norm: x + att(norm(x))) or
// after the sum (post-norm: norm(x + att(x))).
type residualAttention struct {
	attention *multiheadattention.Model
	norm      *layernorm.Model
	preNorm   bool
}

// self runs the block as self-attention on xs.
func (b residualAttention) self(g *graph, xs []mat.Tensor) []mat.Tensor {
	h := len(b.attention.Heads)
	residual, in := b.split(g, xs, 3*h)
	heads := make([]headInputs, h)
	for j := range heads {
		heads[j] = headInputs{q: in[j], k: in[h+j], v: in[2*h+j]}
	}
	return b.finish(g, residual, g.multiHeadAttention(b.attention, heads))
}

// cross runs the block as cross-attention from xs to memory, whose handles
// (2 per head: keys, values) it takes with next.
func (b residualAttention) cross(g *graph, xs []mat.Tensor, memory func() []mat.Tensor) []mat.Tensor {
	h := len(b.attention.Heads)
	residual, in := b.split(g, xs, h)
	heads := make([]headInputs, h)
	for j := range heads {
		heads[j] = headInputs{q: in[j], k: memory(), v: memory()}
	}
	return b.finish(g, residual, g.multiHeadAttention(b.attention, heads))
}

// split returns the residual branch of xs and `uses` handles of the
// attention input (xs itself, or norm(xs) when pre-norm) by use.
func (b residualAttention) split(g *graph, xs []mat.Tensor, uses int) ([]mat.Tensor, [][]mat.Tensor) {
	if !b.preNorm {
		s := g.spread(xs, uses+1)
		return s[uses], s[:uses]
	}
	s := g.spread(xs, 3) // layer norm (twice), residual
	return s[2], g.spread(g.layerNorms(b.norm, s[0], s[1]), uses)
}

// finish adds the residual and, when post-norm, normalizes.
func (b residualAttention) finish(g *graph, residual, att []mat.Tensor) []mat.Tensor {
	out := addResidual(residual, att)
	if !b.preNorm {
		out = g.layerNorms(b.norm, out, out)
	}
	return out
}

// residualFeedForward is a position-wise MLP with a residual connection and
// a layer norm, pre-norm (x + ffn(norm(x))) or post-norm (norm(x + ffn(x))).
type residualFeedForward struct {
	ffn     []nn.StandardModel
	norm    *layernorm.Model
	preNorm bool
}

func (b residualFeedForward) forward(g *graph, xs []mat.Tensor) []mat.Tensor {
	if b.preNorm {
		s := g.spread(xs, 3) // layer norm (twice), residual
		return addResidual(s[2], g.modules(b.ffn, g.layerNorms(b.norm, s[0], s[1])))
	}
	sum := addResidual(xs, g.modules(b.ffn, xs))
	return g.layerNorms(b.norm, sum, sum)
}

// addResidual returns xs[i] + ys[i] for every position.
func addResidual(xs, ys []mat.Tensor) []mat.Tensor {
	out := make([]mat.Tensor, len(xs))
	for i := range xs {
		out[i] = ag.Add(xs[i], ys[i])
	}
	return out
}
