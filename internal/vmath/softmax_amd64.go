//go:build amd64 && !purego

package vmath

// softmaxKernel runs Softmax32 on the AVX-512 kernel when that path is
// active and reports whether it did.
func softmaxKernel(row []float32, scale float32) bool {
	if active.name != "avx512" {
		return false
	}
	softmax512(&row[0], len(row), scale)
	return true
}

// softmaxBackwardKernel is softmaxKernel for SoftmaxBackward32 (g as long
// as p).
func softmaxBackwardKernel(p, g []float32, scale float32) bool {
	if active.name != "avx512" {
		return false
	}
	softmaxBack512(&p[0], &g[0], len(p), scale)
	return true
}

// softmax512 is Softmax32 over row[0:n] (n ≥ 1).
//
//go:noescape
func softmax512(row *float32, n int, scale float32)

// softmaxBack512 is SoftmaxBackward32 over p[0:n], g[0:n] (n ≥ 1).
//
//go:noescape
func softmaxBack512(p, gr *float32, n int, scale float32)
