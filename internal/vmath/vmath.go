// Package vmath is float32 vector math for the fused forward: e^x over a
// slice, with an AVX-512 kernel on amd64 (chosen at run time) and portable
// Go elsewhere or with -tags purego.
//
// Accuracy: Exp32 is within 2 ulp (relative error ≤ 2.4e-7) of the exact
// e^x for x in [-87.3, 88.7] on every path (TestExp32Accuracy checks it
// against float64 math.Exp over a dense sweep); below that it returns the
// subnormal or zero result (the AVX-512 path scales exactly, the Go path
// flushes to 0 under e^-87.3), above it +Inf; NaN gives NaN.
package vmath

import "math"

// impl is one implementation of Exp32's bulk loop.
type impl struct {
	name string
	// exp writes e^src[i] into dst[i] for a prefix of the slices and
	// returns its length (the rest is done in Go).
	exp func(dst, src []float32) int
	// gelu does GELUTanh32 for a prefix and returns its length.
	gelu func(x, y, d []float32) int
	// maxInto, subInto and accum do MaxInto, SubInto and AccumulateF64
	// for a prefix and return its length; nil: none (rows.go).
	maxInto func(dst, src []float32) int
	subInto func(dst, a, b []float32) int
	accum   func(dst []float64, src []float32) int
}

var goImpl = &impl{name: "go",
	exp:  func(dst, src []float32) int { return 0 },
	gelu: func(x, y, d []float32) int { return 0 }}

// active is the best implementation this CPU supports; tests switch it.
var active = supported()[0]

// Path names the implementation in use ("avx512" or "go").
func Path() string { return active.name }

// Exp32 writes e^src[i] into dst[i]. dst and src may be the same slice;
// dst must be at least as long as src.
func Exp32(dst, src []float32) {
	dst = dst[:len(src)]
	n := active.exp(dst, src)
	if n == len(src) {
		return
	}
	if n > 0 || len(src) >= 4 {
		// The tail through the vector kernel too (padded), when there is one.
		var pad [16]float32
		copy(pad[:], src[n:])
		if active.exp(pad[:], pad[:]) == 16 {
			copy(dst[n:], pad[:len(src)-n])
			return
		}
	}
	for i := n; i < len(src); i++ {
		dst[i] = exp32(src[i])
	}
}

// GELUTanh32 writes the tanh-form GELU of x[i], 0.5·v·(1+tanh(√(2/π)·(v +
// 0.044715·v³))), into y[i] and, when d is not nil, its derivative into
// d[i]. y may be x; y and d must be at least as long as x. Computed so that
// neither tail cancels: within 5e-7·(1+|x|) of float64 (value and
// derivative; TestGELUTanh32 checks it).
func GELUTanh32(x, y, d []float32) {
	y = y[:len(x)]
	if d != nil {
		d = d[:len(x)]
	}
	n := active.gelu(x, y, d)
	var dt []float32
	if d != nil {
		dt = d[n:]
	}
	geluGo(x[n:], y[n:], dt)
}

// geluGo is GELUTanh32 in Go: E = e^{−2|u|}, q = 1/(1+E), 1+tanh(u) = 2q
// and 1−tanh(u) = 2Eq for u ≥ 0 (swapped for u < 0).
func geluGo(x, y, d []float32) {
	const c, k = 0.7978845608028654, 0.044715
	for i, v := range x {
		u := c * (v + k*v*v*v)
		e := exp32(-2 * float32(math.Abs(float64(u))))
		q := 1 / (1 + e)
		plus, minus := 2*q, 2*e*q
		if v < 0 {
			plus, minus = minus, plus
		}
		y[i] = 0.5 * v * plus
		if d != nil {
			d[i] = 0.5*plus + 0.5*v*(plus*minus)*c*(1+3*k*v*v)
		}
	}
}

// exp32 is the portable e^x in float32 (range reduction by ln 2 in two
// parts, a degree-6 polynomial, the same steps as the assembly).
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72284:
		return float32(math.Inf(1))
	case x < -87.33654:
		return float32(math.Exp(float64(x))) // subnormal or 0
	}
	n := float32(math.RoundToEven(float64(x * 1.44269504088896341)))
	r := x - n*0.693359375
	r = r + n*2.12194440e-4
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	if n > 127 { // 2^128 is not a float32: scale in two steps
		return y * 2 * math.Float32frombits(uint32(int32(n)+126)<<23)
	}
	return y * math.Float32frombits(uint32(int32(n)+127)<<23)
}
