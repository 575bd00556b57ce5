//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// supported returns the float32 paths this CPU can run, best first.
// cpu.X86.HasAVX512F also requires the OS to save the ZMM state.
func supported() []*path {
	var ps []*path
	if cpu.X86.HasAVX512F {
		ps = append(ps, &path{name: "avx512", mr: 12, nr: 32, k32: kernel512, k32h: kernel512h, packA: packA12, packBT: packB32})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ps = append(ps, &path{name: "avx2", mr: 6, nr: 16, k32: kernel256})
	}
	return append(ps, goPath)
}

// kernel512 is the 12×32 micro-kernel (gemm_amd64.s); see kernelGo for
// the operands' layout.
//
//go:noescape
func kernel512(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int)

// kernel256 is the 6×16 micro-kernel (gemm_amd64.s).
//
//go:noescape
func kernel256(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int)

// kernel512h is the 12×16 edge kernel (gemm_amd64.s).
//
//go:noescape
func kernel512h(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int)

// packA12 packs 12 rows of a row-major A, 16n columns, into the panel
// kernel512 reads (pack_amd64.s).
//
//go:noescape
func packA12(n int, a *float32, lda int, dst *float32)

// packB32 packs 32 columns of a transposed B, 16n steps, into the panel
// kernel512 reads (pack_amd64.s).
//
//go:noescape
func packB32(n int, b *float32, ldb int, dst *float32)
