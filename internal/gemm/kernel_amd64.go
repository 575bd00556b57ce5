//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// supported returns the float32 paths this CPU can run, best first.
// cpu.X86.HasAVX512F also requires the OS to save the ZMM state.
func supported() []*path {
	var ps []*path
	if cpu.X86.HasAVX512F {
		ps = append(ps, &path{name: "avx512", mr: 12, nr: 32, k32: kernel512, k32e: edge512, packA: packA12, packBT: packB32})
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

// edge512 is kernel512 for the h×w corner of a tile: kernel512he when
// w ≤ 16 (half the work), else kernel512e, with column masks.
func edge512(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h, w int) {
	if w <= 16 {
		kernel512he(kb, ap, sp, si, bp, sb, c, ldc, h, 1<<w-1)
		return
	}
	kernel512e(kb, ap, sp, si, bp, sb, c, ldc, h, 1<<16-1, 1<<(w-16)-1)
}

// kernel512e is kernel512 for rows 0..h-1 and the columns set in the
// masks m0 (0–15) and m1 (16–31) of C (gemm_amd64.s).
//
//go:noescape
func kernel512e(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h, m0, m1 int)

// kernel512he is kernel512e for at most 16 columns (gemm_amd64.s).
//
//go:noescape
func kernel512he(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h, m0 int)

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
