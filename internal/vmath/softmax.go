package vmath

import "math"

// Softmax rows of attention: each runs on the AVX-512 kernel when active
// (softmax_amd64.s) and in Go otherwise. Both keep sums in 16 lanes
// (element i in lane i mod 16) and add the lanes as a tree (lanesSum), so
// the paths differ only by Exp32's rounding (within 2 ulp).

// Softmax32 replaces row by softmax(scale·row): e^(scale·x − m) / Σ, where
// m is the largest scale·x, e^ is Exp32's and Σ the sum of the
// exponentials. A row holding NaN or +Inf becomes NaN.
func Softmax32(row []float32, scale float32) {
	if len(row) == 0 {
		return
	}
	if softmaxKernel(row, scale) {
		return
	}
	m := float32(math.Inf(-1))
	for i, v := range row {
		s := v * scale
		row[i] = s
		m = max(m, s)
	}
	for i := range row {
		row[i] -= m
	}
	Exp32(row, row)
	var lanes [16]float32
	for i, v := range row {
		lanes[i%16] += v
	}
	inv := 1 / lanesSum(&lanes)
	for i := range row {
		row[i] *= inv
	}
}

// SoftmaxBackward32 turns g, the gradient of the probabilities p (as
// Softmax32 wrote them), into the gradient of the unscaled scores:
// g[i] = (scale·p[i])·(g[i] − Σ p·g). g must be at least as long as p.
func SoftmaxBackward32(p, g []float32, scale float32) {
	if len(p) == 0 {
		return
	}
	g = g[:len(p)]
	if softmaxBackwardKernel(p, g, scale) {
		return
	}
	var lanes [16]float32
	for i, v := range p {
		lanes[i%16] += float32(v * g[i]) // rounded product: no fused multiply-add
	}
	dot := lanesSum(&lanes)
	for i, v := range p {
		g[i] = float32(scale*v) * (g[i] - dot)
	}
}

// lanesSum adds 16 lanes as the kernels do: halves, then quarters, then
// pairs.
func lanesSum(s *[16]float32) float32 {
	var t [8]float32
	for j := range t {
		t[j] = s[j] + s[j+8]
	}
	u0, u1, u2, u3 := t[0]+t[4], t[1]+t[5], t[2]+t[6], t[3]+t[7]
	return (u0 + u2) + (u1 + u3)
}
