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

// smallTile computes rows 0..h-1 (1 ≤ h ≤ 12) of a 12×32 tile under mask,
// added to C or, with set, stored over it: small4 for h ≤ 4, smallEdge for
// a half-masked tile added to C, else small12.
func smallTile(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h int, mask uint32, set bool) {
	switch {
	case h <= 4:
		small4(kb, ap, sp, si, bp, sb, c, ldc, h, int(mask&0xffff), int(mask>>16), set)
	case !set && (mask&0xffff == 0 || mask>>16 == 0):
		smallEdge(kb, ap, sp, si, bp, sb, c, ldc, h, mask)
	default:
		small12(kb, ap, sp, si, bp, sb, c, ldc, h, int(mask&0xffff), int(mask>>16), set)
	}
}

// small12 is kernel512e storing rows 0..h-1 (h ≤ 12) under the column
// masks m0 and m1, over C with set (small_amd64.s).
//
//go:noescape
func small12(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h, m0, m1 int, set bool)

// small4 is small12 for 4 rows (h ≤ 4): A's rows 0–3 only.
//
//go:noescape
func small4(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h, m0, m1 int, set bool)
