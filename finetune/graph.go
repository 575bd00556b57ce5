package finetune

import (
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"

	"github.com/gopeft/gopeft/internal/rows"
)

// graph builds one training graph (one loss, or one forward call) so that
// its gradients do not depend on goroutine scheduling.
//
// spago's backward runs one goroutine per node, and every consumer of a
// tensor adds its gradient into the tensor as it finishes. Float addition is
// commutative but not associative: two contributions give the same bits in
// either order, three or more do not, so the same step could give gradients
// that differ in the last bits from run to run (measured: about half of the
// losses of a 20-step run differed, by up to 1e-6). The graph therefore
// never lets a tensor that requires gradients feed more than two consumers:
// a tensor needed k > 2 times is handed out through views (zero-copy
// identity nodes with their own gradient), each feeding at most two
// consumers, so its gradient is summed two at a time in a fixed order.
//
// Parameters and embedding rows go through param and row, which chain their
// uses across the whole graph (their number is not known in advance);
// tensors computed inside the graph go through fan, a tree of views.
// Frozen leaves are used directly, and nothing is chained before the first
// leaf that requires gradients (no tensor before it can require them).
//
// Cost: with frozen weights (trainable tokens) only activations are fanned
// (measured on the tiny models: +16% allocations per step). A trained
// weight used at n positions gets n-1 views, each holding a gradient the
// size of the weight, which about doubles full fine-tuning's gradient
// memory. Matrix-at-once ops (one use per layer instead of one per position)
// would remove most views.
type graph struct {
	trainable bool
	leaves    map[*nn.Param]*chain
}

func newGraph() *graph {
	return &graph{leaves: map[*nn.Param]*chain{}}
}

// chain hands out one tensor any number of times with at most two consumers
// per node: the tensor itself first, then views of views.
type chain struct {
	last mat.Tensor
	uses int
}

func (c *chain) next() mat.Tensor {
	c.uses++
	if c.uses > 1 {
		c.last = newView(c.last)
	}
	return c.last
}

// newView returns a view of x (see view).
func newView(x mat.Tensor) mat.Tensor {
	return ag.NewOperator(view{x}).Run(true)
}

// view is the identity: its value aliases the operand's data (no copy) but
// has its own gradient, which it passes on unchanged.
type view struct{ x mat.Tensor }

func (v view) Operands() []mat.Tensor { return []mat.Tensor{v.x} }

func (v view) Forward() (mat.Tensor, error) {
	x := v.x.Value().(mat.Matrix)
	f32, f64, err := rows.Floats(x)
	if err != nil {
		return nil, err
	}
	if f32 != nil {
		return mat.NewDense[float32](mat.WithShape(x.Shape()...), mat.WithBacking(f32)), nil
	}
	return mat.NewDense[float64](mat.WithShape(x.Shape()...), mat.WithBacking(f64)), nil
}

func (v view) Backward(gy mat.Tensor) error {
	if v.x.RequiresGrad() {
		v.x.AccGrad(gy)
	}
	return nil
}

// param returns p for one use.
func (g *graph) param(p *nn.Param) mat.Tensor {
	if !p.RequiresGrad() {
		return p
	}
	g.trainable = true
	c := g.leaves[p]
	if c == nil {
		c = &chain{last: p}
		g.leaves[p] = c
	}
	return c.next()
}

// params returns k handles of p, one per consumer: one use of the chain,
// fanned out as a tree (a chain handle may feed one consumer only, so the
// tree hangs from a view of it).
func (g *graph) params(p *nn.Param, k int) []mat.Tensor {
	if !p.RequiresGrad() || k == 1 {
		out := make([]mat.Tensor, k)
		for i := range out {
			out[i] = g.param(p)
		}
		return out
	}
	return fanTree(make([]mat.Tensor, 0, k), newView(g.param(p)), k)
}

// row returns row id of table e for one use. The row is wrapped once per
// graph (the wrapper records the row in the table's gradient index, as
// Encode does) and chained across all its uses.
func (g *graph) row(e *embedding.Model, id int) mat.Tensor {
	w := e.Weights[id]
	if !w.RequiresGrad() {
		r, _ := e.Embedding(id)
		return r
	}
	g.trainable = true
	c := g.leaves[w]
	if c == nil {
		r, _ := e.Embedding(id)
		c = &chain{last: r}
		g.leaves[w] = c
	}
	return c.next()
}

// fan returns k handles of x, one per consumer: x itself when k <= 2,
// otherwise the leaves of a balanced binary tree of views (depth log2 k,
// about k/2 views), so that backward sums stay short and parallel.
func (g *graph) fan(x mat.Tensor, k int) []mat.Tensor {
	out := make([]mat.Tensor, 0, k)
	if !g.trainable {
		for range k {
			out = append(out, x)
		}
		return out
	}
	return fanTree(out, x, k)
}

func fanTree(out []mat.Tensor, x mat.Tensor, k int) []mat.Tensor {
	if k <= 2 {
		for range k {
			out = append(out, x)
		}
		return out
	}
	out = fanTree(out, newView(x), k/2)
	return fanTree(out, newView(x), k-k/2)
}

// spread fans every position of xs into k handles and returns them by use:
// spread(xs, k)[u][i] is use u of position i.
func (g *graph) spread(xs []mat.Tensor, k int) [][]mat.Tensor {
	out := make([][]mat.Tensor, k)
	for u := range out {
		out[u] = make([]mat.Tensor, len(xs))
	}
	for i, x := range xs {
		for u, h := range g.fan(x, k) {
			out[u][i] = h
		}
	}
	return out
}

// linears is l.Forward(xs...): W·x + B at every position.
func (g *graph) linears(l *linear.Model, xs []mat.Tensor) []mat.Tensor {
	w, b := g.params(l.W, len(xs)), g.params(l.B, len(xs))
	out := make([]mat.Tensor, len(xs))
	for i, x := range xs {
		out[i] = ag.Affine(b[i], w[i], x)
	}
	return out
}

// layerNorms is ln.Forward(xs...), with the same ops in the same order as
// spago's layernorm. It uses each input twice: as[i] and bs[i] are two
// handles of position i (the same tensor when it has no other consumer).
func (g *graph) layerNorms(ln *layernorm.Model, as, bs []mat.Tensor) []mat.Tensor {
	w, b := g.params(ln.W, len(as)), g.params(ln.B, len(as))
	out := make([]mat.Tensor, len(as))
	for i := range as {
		dev := g.fan(ag.SubScalar(bs[i], ag.ReduceMean(as[i])), 2)
		std := ag.Sqrt(ag.Add(ag.ReduceMean(ag.Square(dev[0])), ln.Eps))
		out[i] = ag.Add(ag.Prod(ag.DivScalar(dev[1], std), w[i]), b[i])
	}
	return out
}

// modules applies the layers of a cybertron ModuleList in turn to every
// position. Linear and layer-norm layers go through the graph; others
// (activations) have no parameters and run as they are.
func (g *graph) modules(ms []nn.StandardModel, xs []mat.Tensor) []mat.Tensor {
	for _, m := range ms {
		switch v := m.(type) {
		case *linear.Model:
			xs = g.linears(v, xs)
		case *layernorm.Model:
			xs = g.layerNorms(v, xs, xs)
		default:
			xs = m.Forward(xs...)
		}
	}
	return xs
}
