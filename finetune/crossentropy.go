package finetune

import (
	"math"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/gopeft/gopeft/internal/rows"
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
	return ag.NewOperator(&crossEntropy{logits: logits, targets: append([]int(nil), targets...)}).Run(), nil
}

// crossEntropy is the autograd function behind CrossEntropy. Its inputs are
// validated by CrossEntropy: Forward and Backward never fail.
type crossEntropy struct {
	logits  mat.Tensor
	targets []int
	// lse holds each column's log-sum-exp, computed by Forward and reused by
	// Backward (keeping the softmax itself would cost a vocab×n matrix).
	lse []float64
}

func (c *crossEntropy) Operands() []mat.Tensor { return []mat.Tensor{c.logits} }

func (c *crossEntropy) Forward() (mat.Tensor, error) {
	x := c.logits.Value().(mat.Matrix)
	r, n := x.Shape()[0], x.Shape()[1]
	c.lse = make([]float64, n)
	f32, f64, _ := rows.Floats(x)
	var loss float64
	if f32 != nil {
		loss = crossEntropyForward(f32, r, n, c.targets, c.lse)
	} else {
		loss = crossEntropyForward(f64, r, n, c.targets, c.lse)
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
	g := x.NewMatrix(mat.WithShape(r, n))
	xf32, xf64, _ := rows.Floats(x)
	gf32, gf64, _ := rows.Floats(g)
	if xf32 != nil {
		crossEntropyBackward(xf32, gf32, r, n, c.targets, c.lse, scale)
	} else {
		crossEntropyBackward(xf64, gf64, r, n, c.targets, c.lse, scale)
	}
	c.logits.AccGrad(g)
	return nil
}

// crossEntropyForward returns the mean loss over the n columns of the
// row-major r×n matrix x and stores each column's log-sum-exp in lse.
func crossEntropyForward[T float32 | float64](x []T, r, n int, targets []int, lse []float64) float64 {
	var total float64
	for j := 0; j < n; j++ {
		hi := math.Inf(-1)
		for i := 0; i < r; i++ {
			hi = math.Max(hi, float64(x[i*n+j]))
		}
		var sum float64
		for i := 0; i < r; i++ {
			sum += math.Exp(float64(x[i*n+j]) - hi)
		}
		lse[j] = hi + math.Log(sum)
		total += lse[j] - float64(x[targets[j]*n+j])
	}
	return total / float64(n)
}

// crossEntropyBackward writes scale·(softmax(x[:, j]) - onehot(targets[j]))
// into every column j of g.
func crossEntropyBackward[T float32 | float64](x, g []T, r, n int, targets []int, lse []float64, scale float64) {
	for j := 0; j < n; j++ {
		for i := 0; i < r; i++ {
			p := math.Exp(float64(x[i*n+j]) - lse[j])
			if i == targets[j] {
				p--
			}
			g[i*n+j] = T(p * scale)
		}
	}
}
