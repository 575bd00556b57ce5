//go:build !amd64 || purego

package gemm

const hasKernel32 = false

func kernel32(kb int, ap, bp, c []float32, ldc int) { kernelGo(kb, ap, bp, c, ldc) }
