//go:build !amd64 || purego

package gemm

// supported returns the portable kernel only.
func supported() []*path { return []*path{goPath} }
