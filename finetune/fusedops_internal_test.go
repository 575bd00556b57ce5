package finetune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/nn/activation"
)

// Finite-difference checks of every fused op's backward, on float64
// random data with the scalar loss Σ y⊙r (r random), so the gradient of y
// is r.

func randVec(rng *rand.Rand, n int, std float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = std * rng.NormFloat64()
	}
	return v
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// checkOp compares grad (the analytic gradient of Σ f(x)⊙r w.r.t. x) with
// central differences at every element of x.
func checkOp(t *testing.T, name string, x []float64, f func(x []float64) []float64, r, grad []float64) {
	t.Helper()
	const eps = 1e-6
	worst := 0.0
	for i := range x {
		orig := x[i]
		x[i] = orig + eps
		plus := dot(f(x), r)
		x[i] = orig - eps
		minus := dot(f(x), r)
		x[i] = orig
		num := (plus - minus) / (2 * eps)
		worst = max(worst, math.Abs(num-grad[i])/(1+math.Abs(num)))
	}
	if worst > 1e-6 {
		t.Errorf("%s: worst relative error %.3g", name, worst)
	}
}

func linearOf(rng *rand.Rand, out, in int) fLinear[float64] {
	return fLinear[float64]{w: randVec(rng, out*in, 0.4), b: randVec(rng, out, 0.1), out: out, in: in}
}

func TestFusedOpsFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const n, d = 7, 12

	t.Run("layer norm", func(t *testing.T) {
		ln := fNorm[float64]{w: randVec(rng, d, 1), b: randVec(rng, d, 1), eps: 1e-5}
		x, r := randVec(rng, n*d, 1), randVec(rng, n*d, 1)
		_, back := ln.forward(x, n, true)
		checkOp(t, "layer norm", x, func(x []float64) []float64 { y, _ := ln.forward(x, n, false); return y }, r, back(r))
	})
	for _, a := range []activation.Activation{geluErf, activation.GELU, activation.Tanh, activation.ReLU, activation.Identity} {
		t.Run(fmt.Sprint("activation ", int(a)), func(t *testing.T) {
			x, r := randVec(rng, n*d, 1.5), randVec(rng, n*d, 1)
			steps := []fStep[float64]{{act: a}}
			_, back := runSteps(steps, x, n, true)
			checkOp(t, fmt.Sprint("activation ", int(a)), x, func(x []float64) []float64 { y, _ := runSteps(steps, x, n, false); return y }, r, back(r))
		})
	}
	t.Run("linear stack", func(t *testing.T) {
		l1, l2 := linearOf(rng, 20, d), linearOf(rng, d, 20)
		ln := fNorm[float64]{w: randVec(rng, d, 1), b: randVec(rng, d, 1), eps: 1e-5}
		steps := []fStep[float64]{{lin: &l1}, {act: activation.GELU}, {lin: &l2}, {norm: &ln}}
		x, r := randVec(rng, n*d, 1), randVec(rng, n*d, 1)
		_, back := runSteps(steps, x, n, true)
		checkOp(t, "stack", x, func(x []float64) []float64 { y, _ := runSteps(steps, x, n, false); return y }, r, back(r))
	})

	attention := func(causal bool) *fAttention[float64] {
		a := &fAttention[float64]{dh: 4}
		for range 3 {
			a.heads = append(a.heads, fHead[float64]{q: linearOf(rng, 4, d), k: linearOf(rng, 4, d), v: linearOf(rng, 4, d), scale: 0.5, causal: causal})
		}
		a.out = linearOf(rng, d, 12)
		return a
	}
	qs := []span{{0, 3}, {3, 1}, {4, 3}}
	for _, causal := range []bool{false, true} {
		name := "self-attention"
		if causal {
			name = "causal self-attention"
		}
		t.Run(name, func(t *testing.T) {
			a := attention(causal)
			x, r := randVec(rng, n*d, 1), randVec(rng, n*d, 1)
			_, back := a.forward(x, qs, x, qs, true)
			g := make([]float64, n*d)
			back(r, g, g)
			checkOp(t, name, x, func(x []float64) []float64 { y, _ := a.forward(x, qs, x, qs, false); return y }, r, g)
		})
	}
	t.Run("cross-attention", func(t *testing.T) {
		a := attention(false)
		ms := []span{{0, 2}, {2, 4}, {6, 1}}
		x, m, r := randVec(rng, n*d, 1), randVec(rng, 7*d, 1), randVec(rng, n*d, 1)
		_, back := a.forward(x, qs, m, ms, true)
		gx, gm := make([]float64, n*d), make([]float64, 7*d)
		back(r, gx, gm)
		checkOp(t, "cross-attention queries", x, func(x []float64) []float64 { y, _ := a.forward(x, qs, m, ms, false); return y }, r, gx)
		checkOp(t, "cross-attention memory", m, func(m []float64) []float64 { y, _ := a.forward(x, qs, m, ms, false); return y }, r, gm)
	})
	for _, pre := range []bool{false, true} {
		t.Run("residual blocks", func(t *testing.T) {
			l1, l2 := linearOf(rng, 20, d), linearOf(rng, d, 20)
			norm := func() fNorm[float64] {
				return fNorm[float64]{w: randVec(rng, d, 1), b: randVec(rng, d, 1), eps: 1e-5}
			}
			blocks := []fBlock[float64]{
				{att: attention(true), norm: norm(), pre: pre},
				{att: attention(false), cross: true, norm: norm(), pre: pre},
				{ffn: []fStep[float64]{{lin: &l1}, {act: activation.GELU}, {lin: &l2}}, norm: norm(), pre: pre},
			}
			ms := []span{{0, 2}, {2, 4}, {6, 1}}
			x, m, r := randVec(rng, n*d, 1), randVec(rng, 7*d, 1), randVec(rng, n*d, 1)
			mem := &memory[float64]{x: m, ss: ms, grad: make([]float64, 7*d)}
			_, back := runBlocks(blocks, x, qs, mem, true)
			gx := back(r)
			run := func(x, m []float64) []float64 {
				y, _ := runBlocks(blocks, x, qs, &memory[float64]{x: m, ss: ms}, false)
				return y
			}
			checkOp(t, "blocks input", x, func(x []float64) []float64 { return run(x, m) }, r, gx)
			checkOp(t, "blocks memory", m, func(m []float64) []float64 { return run(x, m) }, r, mem.grad)
		})
	}
}
