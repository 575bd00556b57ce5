//go:build amd64 && !purego

package gemm

// headOn reports whether pa has the head kernels (head_amd64.s).
func headOn(pa *path) bool { return pa.name == "avx512" }

// headTile is the head kernel for the h×w corner (w ≤ 32) of a 12×32 tile:
// head512h when w ≤ 16, head512r8 when h ≤ 8, else head512.
func headTile(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, cin *float32, ldcin int, h, w int, pf uintptr, pfstep int) {
	if w <= 16 {
		head512h(kb, ap, sp, si, bp, sb, c, ldc, cin, ldcin, h, 1<<w-1, 0, pf, pfstep)
		return
	}
	if h <= 8 {
		head512r8(kb, ap, sp, si, bp, sb, c, ldc, cin, ldcin, h, 1<<16-1, 1<<(w-16)-1, pf, pfstep)
		return
	}
	head512(kb, ap, sp, si, bp, sb, c, ldc, cin, ldcin, h, 1<<16-1, 1<<(w-16)-1, pf, pfstep)
}

// head512 is C[0:h, cols] = cin[0:h, cols] + A·B over kb steps, the
// columns set in the masks m0 (0–15) and m1 (16–31), prefetching one line
// a step from pf on (head_amd64.s). With ldcin < 0, row i adds cin[i] to
// every column.
//
//go:noescape
func head512(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, cin *float32, ldcin int, h, m0, m1 int, pf uintptr, pfstep int)

// head512h is head512 for at most 16 columns (head_amd64.s).
//
//go:noescape
func head512h(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, cin *float32, ldcin int, h, m0, m1 int, pf uintptr, pfstep int)

// head512r8 is head512 for at most 8 rows, reading A's rows 0–7 only
// (head_amd64.s).
//
//go:noescape
func head512r8(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, cin *float32, ldcin int, h, m0, m1 int, pf uintptr, pfstep int)
