package tying

import (
	"fmt"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/mat/float"
	"github.com/nlpodyssey/spago/nn/linear"

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
	wh := ag.Mul(out.W, h)
	op := &logitsOp{
		wh:   wh,
		h:    h,
		ids:  append([]int(nil), ids...),
		rows: append([]mat.Tensor(nil), trainable...),
		bias: out.B.Value().(mat.Matrix),
	}
	return ag.NewOperator(op).Run(), nil
}

// logitsOp holds its own copies of ids and rows: spago reads Operands()
// lazily during backward, so no caller-owned slice may be kept.
type logitsOp struct {
	wh, h mat.Tensor
	ids   []int
	rows  []mat.Tensor
	bias  mat.Matrix
}

func (o *logitsOp) Operands() []mat.Tensor {
	ops := make([]mat.Tensor, 0, 2+len(o.rows))
	return append(append(ops, o.wh, o.h), o.rows...)
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

func forward[T float.DType](o *logitsOp) mat.Tensor {
	wh := o.wh.Value().(mat.Matrix)
	y := wh.Clone()
	ys, bs, hs := mat.Data[T](y), mat.Data[T](o.bias), data[T](o.h)
	n := wh.Shape()[1]
	vocab := wh.Shape()[0]
	for v := 0; v < vocab; v++ {
		b := bs[v]
		for c := 0; c < n; c++ {
			ys[v*n+c] += b
		}
	}
	dim := len(hs) / n
	for k, id := range o.ids {
		r := data[T](o.rows[k])
		for c := 0; c < n; c++ {
			var acc T
			for i := 0; i < dim; i++ {
				acc += r[i] * hs[i*n+c]
			}
			ys[id*n+c] = acc + bs[id]
		}
	}
	return y
}

func backward[T float.DType](o *logitsOp, g mat.Matrix) {
	gs := mat.Data[T](g)
	n := g.Shape()[1]
	if o.wh.RequiresGrad() {
		gb := g.Clone()
		bs := mat.Data[T](gb)
		for _, id := range o.ids {
			clear(bs[id*n : (id+1)*n])
		}
		o.wh.AccGrad(gb)
	}
	hs := data[T](o.h)
	dim := len(hs) / n
	var gh mat.Matrix
	var ghs []T
	if o.h.RequiresGrad() {
		gh = o.h.Value().(mat.Matrix).ZerosLike()
		ghs = mat.Data[T](gh)
	}
	for k, id := range o.ids {
		row := o.rows[k]
		gid := gs[id*n : (id+1)*n]
		if row.RequiresGrad() {
			gr := row.Value().(mat.Matrix).ZerosLike()
			grs := mat.Data[T](gr)
			for i := 0; i < dim; i++ {
				var acc T
				for c := 0; c < n; c++ {
					acc += gid[c] * hs[i*n+c]
				}
				grs[i] = acc
			}
			row.AccGrad(gr)
		}
		if ghs != nil {
			r := data[T](row)
			for i := 0; i < dim; i++ {
				for c := 0; c < n; c++ {
					ghs[i*n+c] += r[i] * gid[c]
				}
			}
		}
	}
	if gh != nil {
		o.h.AccGrad(gh)
	}
}
