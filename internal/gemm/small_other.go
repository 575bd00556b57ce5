//go:build !amd64 || purego

package gemm

// smallPath reports whether Small runs its own loop on path pa: never
// without the AVX-512 kernels.
func smallPath(*path) bool { return false }

func smallEdge(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h int, mask uint32) {
	panic("gemm: no AVX-512 edge kernel")
}

func smallTile(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h int, mask uint32, set bool) {
	panic("gemm: no AVX-512 tile kernel")
}
