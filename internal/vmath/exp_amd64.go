//go:build amd64 && !purego

package vmath

import "golang.org/x/sys/cpu"

func supported() []*impl {
	if cpu.X86.HasAVX512F {
		return []*impl{{name: "avx512", exp: func(dst, src []float32) int {
			n := len(src) &^ 15
			if n > 0 {
				exp512(&dst[0], &src[0], n)
			}
			return n
		}, gelu: func(x, y, d []float32) int {
			n := len(x) &^ 15
			if n > 0 {
				var dp *float32
				if d != nil {
					dp = &d[0]
				}
				gelu512(&x[0], &y[0], dp, n)
			}
			return n
		}, maxInto: func(dst, src []float32) int {
			n := len(src) &^ 15
			if n > 0 {
				maxInto512(&dst[0], &src[0], n)
			}
			return n
		}, subInto: func(dst, a, b []float32) int {
			n := len(a) &^ 15
			if n > 0 {
				subInto512(&dst[0], &a[0], &b[0], n)
			}
			return n
		}, accum: func(dst []float64, src []float32) int {
			n := len(src) &^ 15
			if n > 0 {
				accum512(&dst[0], &src[0], n)
			}
			return n
		}}, goImpl}
	}
	return []*impl{goImpl}
}

// maxInto512 sets dst[i] = max(dst[i], src[i]) (src's value when either is
// NaN) for i < n (a multiple of 16).
//
//go:noescape
func maxInto512(dst, src *float32, n int)

// subInto512 sets dst[i] = a[i] − b[i] for i < n (a multiple of 16).
//
//go:noescape
func subInto512(dst, a, b *float32, n int)

// accum512 adds float64(src[i]) to dst[i] for i < n (a multiple of 16).
//
//go:noescape
func accum512(dst *float64, src *float32, n int)

// gelu512 writes the tanh GELU of x[i] into y[i] (and its derivative into
// d[i] when d is not nil) for i < n (a multiple of 16).
//
//go:noescape
func gelu512(x, y, d *float32, n int)

// exp512 writes e^src[i] into dst[i] for i < n (a multiple of 16).
//
//go:noescape
func exp512(dst, src *float32, n int)
