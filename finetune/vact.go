package finetune

// float32 vector forms of the activations, softmax and exponentials of the
// fused path: the transcendental part runs on internal/vmath's vector e^x
// (relative error ≤ 2.4e-7), the rest in float32. Accuracy (tested in
// vact_internal_test.go against float64): tanh GELU and its derivative
// within 5e-7·(1+|x|), erf GELU within 5e-7·(1+|x|) (erfc by Numerical
// Recipes' Chebyshev fit, relative error < 1.2e-7), swish within 5e-7.

import (
	"math"

	"github.com/nlpodyssey/spago/nn/activation"

	"github.com/gopeft/gopeft/internal/vmath"
)

// vectorChunk is the length the activations are processed in (scratch
// buffers stay in L1).
const vectorChunk = 1024

// expInPlace replaces every x[i] by e^x[i] in T's precision.
func expInPlace[T float](x []T) {
	if f, ok := any(x).([]float32); ok {
		vmath.Exp32(f, f)
		return
	}
	for i, v := range x {
		x[i] = T(math.Exp(float64(v)))
	}
}

// vectorActivation reports whether a has a float32 vector form.
func vectorActivation(a activation.Activation) bool {
	switch a {
	case activation.GELU, geluErf, activation.Swish, activation.SiLU:
		return true
	}
	return false
}

// activate32 applies a (vectorActivation(a)) in place to x and, when d is
// not nil, writes the derivative into d. buf and buf2 are scratch of at
// least len(x) ≤ vectorChunk values.
func activate32(a activation.Activation, x, d, buf, buf2 []float32) {
	buf, buf2 = buf[:len(x)], buf2[:len(x)]
	switch a {
	case activation.GELU:
		// 0.5·v·(1 + tanh(√(2/π)·(v + 0.044715·v³))), wholly vectorized.
		vmath.GELUTanh32(x, x, d)
	case geluErf:
		// v·Φ(v). With z = |v|/√2 and t = 1/(1+z/2), erfc(z) =
		// t·e^{−z²}·e^{P(t)} (Numerical Recipes' erfcc); Φ(v) = erfc(z)/2
		// for v < 0 and 1 − erfc(z)/2 otherwise (no cancellation in the
		// tail); Φ'(v) = e^{−v²/2}/√(2π).
		const invSqrt2, invSqrt2Pi = 0.7071067811865476, 0.3989422804014327
		for i, v := range x {
			z := float32(math.Abs(float64(v))) * invSqrt2
			t := 1 / (1 + 0.5*z)
			buf[i] = -0.5 * v * v
			buf2[i] = -1.26551223 + t*(1.00002368+t*(0.37409196+t*(0.09678418+t*(-0.18628806+
				t*(0.27886807+t*(-1.13520398+t*(1.48851587+t*(-0.82215223+t*0.17087277))))))))
		}
		vmath.Exp32(buf, buf)
		vmath.Exp32(buf2, buf2)
		for i, v := range x {
			z := float32(math.Abs(float64(v))) * invSqrt2
			t := 1 / (1 + 0.5*z)
			half := 0.5 * t * buf[i] * buf2[i] // erfc(z)/2
			phi := half
			if v >= 0 {
				phi = 1 - half
			}
			x[i] = v * phi
			if d != nil {
				d[i] = phi + v*invSqrt2Pi*buf[i]
			}
		}
	case activation.Swish, activation.SiLU:
		// v·σ(v); d/dv = σ(v)·(1 + v·(1−σ(v))).
		for i, v := range x {
			buf[i] = -v
		}
		vmath.Exp32(buf, buf)
		for i, v := range x {
			s := 1 / (1 + buf[i])
			x[i] = v * s
			if d != nil {
				d[i] = s * (1 + v*(1-s))
			}
		}
	}
}

// applyActivation32 is applyActivation for a vectorActivation on float32.
func applyActivation32(a activation.Activation, x, deriv []float32) {
	parFor(len(x), 4096, func(lo, hi int) {
		buf, buf2 := make([]float32, vectorChunk), make([]float32, vectorChunk)
		for c := lo; c < hi; c += vectorChunk {
			e := min(hi, c+vectorChunk)
			var d []float32
			if deriv != nil {
				d = deriv[c:e]
			}
			activate32(a, x[c:e], d, buf, buf2)
		}
	})
}
