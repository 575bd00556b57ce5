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
		}}, goImpl}
	}
	return []*impl{goImpl}
}

// exp512 writes e^src[i] into dst[i] for i < n (a multiple of 16).
//
//go:noescape
func exp512(dst, src *float32, n int)
