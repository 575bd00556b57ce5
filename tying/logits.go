package tying

import (
	"fmt"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/mat/float"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/internal/gemm"
	"github.com/gopeft/gopeft/internal/rows"
)

// Logits computes the output logits of projection out for hidden states h
// (dim × n: one column per position), with the rows of ids taken from rows
// instead of out.W:
//
//	y[v, c] = W[v]·h[:, c] + b[v]          for v not in ids
//	y[id_k, c] = rows[k]·h[:, c] + b[id_k]
//
// It is differentiable in h and in rows. out.W and out.B must be frozen (the
// plugin freezes them): the op never computes a vocab × dim weight gradient,
// only O(k·dim·n) work on top of the frozen product. Everything is validated
// before any graph node is built, because an error inside a spago op ends the
// process.
func Logits(out *linear.Model, h mat.Tensor, ids []int, trainable []mat.Tensor) (mat.Tensor, error) {
	if out == nil || out.W == nil || out.B == nil {
		return nil, fmt.Errorf("tying: projection is nil or has no weight/bias")
	}
	ws := out.W.Value().Shape()
	if len(ws) != 2 {
		return nil, fmt.Errorf("tying: projection weight shape %v, want [vocab dim]", ws)
	}
	vocab, dim := ws[0], ws[1]
	if out.W.RequiresGrad() {
		return nil, fmt.Errorf("tying: projection weight requires gradients; freeze it (a tied head must not compute a %d×%d weight gradient)", vocab, dim)
	}
	if h == nil || h.Value() == nil {
		return nil, fmt.Errorf("tying: nil hidden state")
	}
	hs := h.Value().Shape()
	if len(hs) != 2 || hs[0] != dim || hs[1] < 1 {
		return nil, fmt.Errorf("tying: hidden state shape %v, want [%d n] with n ≥ 1", hs, dim)
	}
	if bs := out.B.Value().Shape(); bs[0]*max(1, bs[1]) != vocab {
		return nil, fmt.Errorf("tying: bias shape %v does not match vocab %d", bs, vocab)
	}
	if len(ids) != len(trainable) {
		return nil, fmt.Errorf("tying: %d ids but %d rows", len(ids), len(trainable))
	}
	dt := rows.DType(out.W.Value().(mat.Matrix))
	if rows.DType(h.Value().(mat.Matrix)) != dt {
		return nil, fmt.Errorf("tying: hidden state dtype %s, projection %s", rows.DType(h.Value().(mat.Matrix)), dt)
	}
	seen := make(map[int]bool, len(ids))
	for k, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("tying: token id %d out of range [0, %d)", id, vocab)
		}
		if seen[id] {
			return nil, fmt.Errorf("tying: token id %d given twice", id)
		}
		seen[id] = true
		if trainable[k] == nil {
			return nil, fmt.Errorf("tying: row for token id %d is nil", id)
		}
		rv := trainable[k].Value()
		if rv.Size() != dim {
			return nil, fmt.Errorf("tying: row for token id %d has %d values, want %d", id, rv.Size(), dim)
		}
		if rows.DType(rv.(mat.Matrix)) != dt {
			return nil, fmt.Errorf("tying: row for token id %d has dtype %s, projection %s", id, rows.DType(rv.(mat.Matrix)), dt)
		}
	}
	op := &logitsOp{
		w:    out.W,
		h:    h,
		ids:  append([]int(nil), ids...),
		rows: append([]mat.Tensor(nil), trainable...),
		bias: out.B.Value().(mat.Matrix),
	}
	return ag.NewOperator(op).Run(), nil
}

// logitsOp holds its own copies of ids and rows: spago reads Operands()
// lazily during backward, so no caller-owned slice may be kept. The frozen
// weight is an operand only so that the op sees its current value; it never
// receives a gradient.
type logitsOp struct {
	w, h mat.Tensor
	ids  []int
	rows []mat.Tensor
	bias mat.Matrix
}

func (o *logitsOp) Operands() []mat.Tensor {
	ops := make([]mat.Tensor, 0, 1+len(o.rows))
	return append(append(ops, o.h), o.rows...)
}

func (o *logitsOp) Forward() (mat.Tensor, error) {
	switch o.bias.(type) {
	case *mat.Dense[float32]:
		return forward[float32](o), nil
	default:
		return forward[float64](o), nil
	}
}

func (o *logitsOp) Backward(gy mat.Tensor) error {
	switch o.bias.(type) {
	case *mat.Dense[float32]:
		backward[float32](o, gy.(mat.Matrix))
	default:
		backward[float64](o, gy.(mat.Matrix))
	}
	return nil
}

func data[T float.DType](t mat.Tensor) []T { return mat.Data[T](t.Value().(mat.Matrix)) }

// forward is y = W·h + b (one blocked product, vocab×n), then the rows of
// ids recomputed from the trainable rows: O(vocab·dim·n) + O(k·dim·n).
func forward[T float.DType](o *logitsOp) mat.Tensor {
	w, bs, hs := data[T](o.w), mat.Data[T](o.bias), data[T](o.h)
	vocab, dim := o.w.Value().Shape()[0], o.w.Value().Shape()[1]
	n := o.h.Value().Shape()[1]
	// Every row starts at its bias and the product is accumulated onto it
	// (as finetune's inference computes logits), the bias going into the
	// product's first sums: no pass over the vocab×n result before.
	ys := make([]T, vocab*n)
	gemm.GemmRowBias(false, false, vocab, n, dim, w, dim, hs, n, bs, ys, n)
	if len(o.ids) > 0 {
		// The k rows' logits: one k×dim by dim×n product onto their biases.
		r := gatherRows[T](o.rows, dim)
		yk := make([]T, len(o.ids)*n)
		for k, id := range o.ids {
			for c := range n {
				yk[k*n+c] = bs[id]
			}
		}
		gemm.Gemm(false, false, len(o.ids), n, dim, r, dim, hs, n, yk, n, true)
		for k, id := range o.ids {
			copy(ys[id*n:(id+1)*n], yk[k*n:(k+1)*n])
		}
	}
	return mat.NewDense[T](mat.WithShape(vocab, n), mat.WithBacking(ys))
}

// backward: gh = Wᵀ·g + Σ_k (rows[k] − W[id_k]) ⊗ g[id_k] (the frozen
// product plus a rank-k correction, nothing vocab×dim allocated), and
// g(rows[k]) = h·g[id_k]ᵀ.
func backward[T float.DType](o *logitsOp, g mat.Matrix) {
	gs := mat.Data[T](g)
	vocab, dim := o.w.Value().Shape()[0], o.w.Value().Shape()[1]
	n := g.Shape()[1]
	hs := data[T](o.h)
	k := len(o.ids)
	gk := make([]T, k*n) // g at the k rows
	for j, id := range o.ids {
		copy(gk[j*n:(j+1)*n], gs[id*n:(id+1)*n])
	}
	var ghs []T
	if o.h.RequiresGrad() {
		ghs = make([]T, dim*n)
		w := data[T](o.w)
		gemm.Gemm(true, false, dim, n, vocab, w, dim, gs, n, ghs, n, false)
		if k > 0 {
			// Rank-k correction: (rows − W[ids])ᵀ·g[ids].
			diff := gatherRows[T](o.rows, dim)
			for j, id := range o.ids {
				wid := w[id*dim : (id+1)*dim]
				for i := range wid {
					diff[j*dim+i] -= wid[i]
				}
			}
			gemm.Gemm(true, false, dim, n, k, diff, dim, gk, n, ghs, n, true)
		}
	}
	if k > 0 {
		// Row gradients: g[ids]·hᵀ, one k×n by n×dim product.
		gr := make([]T, k*dim)
		gemm.Gemm(false, true, k, dim, n, gk, n, hs, n, gr, dim, false)
		for j, row := range o.rows {
			if row.RequiresGrad() {
				row.AccGrad(mat.NewDense[T](mat.WithShape(row.Value().Shape()...), mat.WithBacking(gr[j*dim:(j+1)*dim:(j+1)*dim])))
			}
		}
	}
	if ghs != nil {
		o.h.AccGrad(mat.NewDense[T](mat.WithShape(dim, n), mat.WithBacking(ghs)))
	}
}

// gatherRows copies the rows (dim values each) into one k×dim matrix.
func gatherRows[T float.DType](rows []mat.Tensor, dim int) []T {
	out := make([]T, len(rows)*dim)
	for j, r := range rows {
		copy(out[j*dim:(j+1)*dim], data[T](r))
	}
	return out
}
