package vmath

// Element-wise helpers of the fused cross-entropy: each runs its bulk on
// the active implementation (16 lanes at a time with AVX-512) and the
// tail in Go, with the same result per element on every path.

// MaxInto sets dst[i] to the larger of dst[i] and src[i] (len(src)
// elements). With NaNs the result is unspecified but for NaN in src, which
// gives NaN; callers that need NaN to show must carry it in another way.
func MaxInto(dst, src []float32) {
	dst = dst[:len(src)]
	n := 0
	if active.maxInto != nil {
		n = active.maxInto(dst, src)
	}
	for i := n; i < len(src); i++ {
		if v := src[i]; v > dst[i] || v != v {
			dst[i] = v
		}
	}
}

// SubInto sets dst[i] = a[i] − b[i] for i < len(a). dst may be a.
func SubInto(dst, a, b []float32) {
	dst, b = dst[:len(a)], b[:len(a)]
	n := 0
	if active.subInto != nil {
		n = active.subInto(dst, a, b)
	}
	for i := n; i < len(a); i++ {
		dst[i] = a[i] - b[i]
	}
}

// AccumulateF64 adds float64(src[i]) to dst[i] for i < len(src): the
// float64 sums of float32 terms, each sum in the order of the calls.
func AccumulateF64(dst []float64, src []float32) {
	dst = dst[:len(src)]
	n := 0
	if active.accum != nil {
		n = active.accum(dst, src)
	}
	for i := n; i < len(src); i++ {
		dst[i] += float64(src[i])
	}
}
