//go:build !amd64 || purego

package gemm

// headOn reports whether pa has the head kernels: never on this build.
func headOn(*path) bool { return false }

func headTile(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, cin *float32, ldcin int, h, w int, pf uintptr, pfstep int) {
	panic("gemm: no head kernels on this build")
}
