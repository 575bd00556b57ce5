//go:build amd64 && !purego

package gemm

// smallPath reports whether Small runs its own loop on path pa: the
// AVX-512 kernels, whose edge variants take any column mask.
func smallPath(pa *path) bool { return pa.name == "avx512" }

// smallEdge is kernel512 storing only rows 0..h-1 and the columns set in
// mask (bit j: column j of 32): kernel512he on columns 16–31 when none of
// 0–15 is set (half the work, and B is read only from column 16 on), else
// kernel512e (kernel512he on columns 0–15 when none of 16–31 is set).
func smallEdge(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h int, mask uint32) {
	if mask>>16 == 0 {
		kernel512he(kb, ap, sp, si, bp, sb, c, ldc, h, int(mask))
		return
	}
	if mask&0xffff == 0 {
		kernel512he(kb, ap, sp, si, add(bp, 16), sb, add(c, 16), ldc, h, int(mask>>16))
		return
	}
	kernel512e(kb, ap, sp, si, bp, sb, c, ldc, h, int(mask&0xffff), int(mask>>16))
}
