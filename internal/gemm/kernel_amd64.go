//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// hasKernel32 reports whether the AVX2/FMA float32 micro-kernel can run.
var hasKernel32 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kernel32 is C[0:6, 0:16] += Ap·Bp over kb packed steps (gemm_amd64.s).
//
//go:noescape
func kernel32(kb int, ap, bp, c []float32, ldc int)
