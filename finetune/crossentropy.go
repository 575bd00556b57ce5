package finetune

import (
	"math"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/vmath"
)

// CrossEntropy returns the mean cross entropy of the columns of logits
// (classes×n) against the target class of each column, as one scalar node:
// mean_j (logsumexp(logits[:, j]) - logits[targets[j], j]).
//
// It is a single fused op (log-sum-exp in float64, one pass per column; the
// gradient is (softmax - onehot)/n) instead of spago's chain of ~8 nodes per
// position over vocabulary-sized vectors. It equals the mean of
// losses.CrossEntropy over the columns to float rounding.
func CrossEntropy(logits mat.Tensor, targets []int) (mat.Tensor, error) {
	return crossEntropyIn(nil, false, logits, targets)
}

// crossEntropyIn is CrossEntropy for a Task's loss (cache non-nil): the
// op takes its vocabulary-sized buffer from the Task's scratch and is
// registered with the Task, which takes the buffer back when the Trainer
// has finished the step; with ownLogits (logits made by the Task's own
// LogitsFunc, seen by nobody else), the logits' values too.
func crossEntropyIn(cache *packCache, ownLogits bool, logits mat.Tensor, targets []int) (mat.Tensor, error) {
	v := logits.Value()
	if rows.DType(v.(mat.Matrix)) == "" {
		return nil, unsupportedf("logits of type %T: expected *mat.Dense[float32] or *mat.Dense[float64]", v)
	}
	shape := v.Shape()
	if shape[1] != len(targets) {
		return nil, invalidf("logits have %d columns for %d targets", shape[1], len(targets))
	}
	if len(targets) == 0 {
		return nil, invalidf("no targets")
	}
	for j, t := range targets {
		if t < 0 || t >= shape[0] {
			return nil, invalidf("target %d: class %d out of range [0, %d)", j, t, shape[0])
		}
	}
	// The op keeps its own copy: the caller may reuse targets.
	c := &crossEntropy{logits: logits, targets: append([]int(nil), targets...), cache: cache, ownLogits: ownLogits && cache != nil}
	loss := ag.NewOperator(c).Run()
	if cache != nil {
		cache.pend(loss, c)
	}
	return loss, nil
}

// crossEntropy is the autograd function behind CrossEntropy. Its inputs are
// validated by CrossEntropy: Forward and Backward never fail.
type crossEntropy struct {
	logits  mat.Tensor
	targets []int
	// lse holds each column's log-sum-exp, computed by Forward and reused by
	// Backward.
	lse []float64
	// exps, when the logits require a gradient, holds exp(x - max) of every
	// element (Forward computes them anyway); Backward turns it into the
	// gradient in place, so each element costs one exp, not two, and no
	// memory beyond the gradient Backward needs anyway.
	exps mat.Matrix
	inv  []float64
	// cache, for a Task's loss, is where exps comes from; the Task takes
	// it back when the Trainer has finished the step (release).
	cache *packCache
	// handed is exps once Backward gave it to the logits as their gradient.
	handed mat.Matrix
	// ownLogits: release gives the logits' values back to the scratch too.
	ownLogits bool
}

func (c *crossEntropy) Operands() []mat.Tensor { return []mat.Tensor{c.logits} }

func (c *crossEntropy) Forward() (mat.Tensor, error) {
	x := c.logits.Value().(mat.Matrix)
	r, n := x.Shape()[0], x.Shape()[1]
	c.lse = make([]float64, n)
	f32, f64, _ := rows.Floats(x)
	var e32 []float32
	var e64 []float64
	if c.logits.RequiresGrad() {
		c.exps = c.newExps(x, r, n)
		c.inv = make([]float64, n)
		e32, e64, _ = rows.Floats(c.exps)
	}
	var loss float64
	if f32 != nil {
		loss = crossEntropyForward(f32, e32, r, n, c.targets, c.lse, c.inv)
	} else {
		loss = crossEntropyForward(f64, e64, r, n, c.targets, c.lse, c.inv)
	}
	return x.NewScalar(loss), nil
}

func (c *crossEntropy) Backward(gy mat.Tensor) error {
	if !c.logits.RequiresGrad() {
		return nil
	}
	x := c.logits.Value().(mat.Matrix)
	r, n := x.Shape()[0], x.Shape()[1]
	scale := gy.Item().F64() / float64(n)
	if c.exps != nil {
		g := c.exps
		c.exps = nil
		c.handed = g
		gf32, gf64, _ := rows.Floats(g)
		if gf32 != nil {
			crossEntropyBackwardExps(gf32, r, n, c.targets, c.inv, scale)
		} else {
			crossEntropyBackwardExps(gf64, r, n, c.targets, c.inv, scale)
		}
		c.logits.AccGrad(handOver(g))
		return nil
	}
	g := x.NewMatrix(mat.WithShape(r, n))
	xf32, xf64, _ := rows.Floats(x)
	gf32, gf64, _ := rows.Floats(g)
	if xf32 != nil {
		crossEntropyBackward(xf32, gf32, r, n, c.targets, c.lse, scale)
	} else {
		crossEntropyBackward(xf64, gf64, r, n, c.targets, c.lse, scale)
	}
	c.logits.AccGrad(handOver(g))
	return nil
}

// newExps returns an r×n matrix like x for exps (every element is
// written by Forward): from the Task's scratch when there is one.
func (c *crossEntropy) newExps(x mat.Matrix, r, n int) mat.Matrix {
	if c.cache != nil {
		switch x.(type) {
		case *mat.Dense[float32]:
			return mat.NewDense[float32](mat.WithShape(r, n), mat.WithBacking(c.cache.bufs32.get(r*n)))
		case *mat.Dense[float64]:
			return mat.NewDense[float64](mat.WithShape(r, n), mat.WithBacking(c.cache.bufs64.get(r*n)))
		}
	}
	return x.NewMatrix(mat.WithShape(r, n))
}

// release gives exps back to the Task's scratch, once the step is over:
// either Backward never ran, or it handed exps to the logits node as its
// gradient, which is then cleared (it is the step's, like the gradients
// the Trainer clears on the model). When another gradient of the logits
// took exps in by addition, the node's gradient is not exps and stays.
func (c *crossEntropy) release() {
	if c.ownLogits {
		c.ownLogits = false
		c.put(c.logits.Value().(mat.Matrix))
	}
	g := c.exps
	c.exps = nil
	if g == nil {
		g, c.handed = c.handed, nil
		if g == nil {
			return
		}
		if sameData(c.logits.Grad(), g) {
			c.logits.ZeroGrad()
		}
	}
	c.put(g)
}

// put gives the data of a dense matrix to the Task's scratch.
func (c *crossEntropy) put(g mat.Matrix) {
	switch d := g.(type) {
	case *mat.Dense[float32]:
		c.cache.bufs32.put(mat.Data[float32](d))
	case *mat.Dense[float64]:
		c.cache.bufs64.put(mat.Data[float64](d))
	}
}

// sameData reports whether a and b are dense matrices on one buffer.
func sameData(a mat.Tensor, b mat.Matrix) bool {
	switch bd := b.(type) {
	case *mat.Dense[float32]:
		ad, ok := a.(*mat.Dense[float32])
		return ok && ad != nil && same(mat.Data[float32](ad), mat.Data[float32](bd))
	case *mat.Dense[float64]:
		ad, ok := a.(*mat.Dense[float64])
		return ok && ad != nil && same(mat.Data[float64](ad), mat.Data[float64](bd))
	}
	return false
}

// crossEntropyForward returns the mean loss over the n columns of the
// row-major r×n matrix x and stores each column's log-sum-exp in lse.
// Rows are cut into fixed blocks of ceBlock rows, split between
// goroutines; each block sums its rows in order and the blocks' sums are
// added in block order, so the result does not depend on the split. The
// exponentials of a row run as one vector (expInPlace).
// With exps non-nil it also stores exp(x - column max) there, and each
// column's 1/Σexp in inv.
func crossEntropyForward[T float32 | float64](x, exps []T, r, n int, targets []int, lse, inv []float64) float64 {
	blocks := (r + ceBlock - 1) / ceBlock
	his := make([]T, blocks*n)
	parFor(blocks, 1, func(b0, b1 int) {
		for b := b0; b < b1; b++ {
			hi := his[b*n : (b+1)*n]
			for j := range hi {
				hi[j] = T(math.Inf(-1))
			}
			for i := b * ceBlock; i < min(r, (b+1)*ceBlock); i++ {
				maxInto(hi, x[i*n:(i+1)*n])
			}
		}
	})
	hi := his[:n]
	for b := 1; b < blocks; b++ {
		for j, v := range his[b*n : (b+1)*n] {
			hi[j] = max(hi[j], v)
		}
	}
	sums := make([]float64, blocks*n)
	parFor(blocks, 1, func(b0, b1 int) {
		tmp := make([]T, n)
		for b := b0; b < b1; b++ {
			sum := sums[b*n : (b+1)*n]
			for i := b * ceBlock; i < min(r, (b+1)*ceBlock); i++ {
				e := tmp
				if exps != nil {
					e = exps[i*n : (i+1)*n]
				}
				subInto(e, x[i*n:(i+1)*n], hi)
				expInPlace(e)
				accumulate(sum, e)
			}
		}
	})
	for j := 0; j < n; j++ {
		var s float64
		for b := 0; b < blocks; b++ {
			s += sums[b*n+j]
		}
		lse[j] = float64(hi[j]) + math.Log(s)
		if exps != nil {
			inv[j] = 1 / s
		}
	}
	var total float64
	for j := 0; j < n; j++ {
		total += lse[j] - float64(x[targets[j]*n+j])
	}
	return total / float64(n)
}

// maxInto sets dst[j] to max(dst[j], src[j]) (vector code for float32; a
// NaN in src may not reach dst, but it reaches the sums through exp).
func maxInto[T float32 | float64](dst, src []T) {
	if d, ok := any(dst).([]float32); ok {
		vmath.MaxInto(d, any(src).([]float32))
		return
	}
	for j, v := range src {
		dst[j] = max(dst[j], v)
	}
}

// subInto sets dst[j] = a[j] − b[j].
func subInto[T float32 | float64](dst, a, b []T) {
	if d, ok := any(dst).([]float32); ok {
		vmath.SubInto(d, any(a).([]float32), any(b).([]float32))
		return
	}
	for j, v := range a {
		dst[j] = v - b[j]
	}
}

// accumulate adds float64(e[j]) to sum[j].
func accumulate[T float32 | float64](sum []float64, e []T) {
	if e32, ok := any(e).([]float32); ok {
		vmath.AccumulateF64(sum, e32)
		return
	}
	for j, v := range e {
		sum[j] += float64(v)
	}
}

// ceBlock is the number of rows crossEntropyForward sums as one block.
const ceBlock = 256

// crossEntropyBackward writes scale·(softmax(x[:, j]) - onehot(targets[j]))
// into every column j of g.
func crossEntropyBackward[T float32 | float64](x, g []T, r, n int, targets []int, lse []float64, scale float64) {
	parFor(r, 64, func(i0, i1 int) {
		for i := i0; i < i1; i++ {
			xs, gs := x[i*n:(i+1)*n], g[i*n:(i+1)*n]
			for j, v := range xs {
				gs[j] = v - T(lse[j])
			}
			expInPlace(gs)
			for j := range gs {
				gs[j] *= T(scale)
			}
		}
	})
	for j, t := range targets {
		g[t*n+j] = T((math.Exp(float64(x[t*n+j])-lse[j]) - 1) * scale)
	}
}

// crossEntropyBackwardExps turns e = exp(x - column max) into the gradient
// scale·(e/Σe - onehot) in place.
func crossEntropyBackwardExps[T float32 | float64](e []T, r, n int, targets []int, inv []float64, scale float64) {
	f := make([]T, n)
	for j := range f {
		f[j] = T(inv[j] * scale)
	}
	parFor(r, 64, func(i0, i1 int) {
		for i := i0; i < i1; i++ {
			row := e[i*n : (i+1)*n]
			for j := range row {
				row[j] *= f[j]
			}
		}
	})
	for j, t := range targets {
		e[t*n+j] -= T(scale)
	}
}

// handOver returns g so that the node it is given to keeps g itself
// rather than a copy. spago's AccGrad stores a Clone of a node's first
// gradient; for the vocabulary-sized logits that copy is as large as the
// logits. g must be referenced by nothing else afterwards.
func handOver(g mat.Matrix) mat.Matrix {
	switch d := g.(type) {
	case *mat.Dense[float32]:
		return ownedGrad[float32]{d}
	case *mat.Dense[float64]:
		return ownedGrad[float64]{d}
	}
	return g
}

// ownedGrad is a gradient matrix whose Clone is the matrix itself.
type ownedGrad[T float] struct{ *mat.Dense[T] }

func (g ownedGrad[T]) Clone() mat.Matrix { return g.Dense }
