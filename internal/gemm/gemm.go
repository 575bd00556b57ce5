// Package gemm is a blocked, packed matrix-matrix product for float32 and
// float64 row-major matrices, the hot loop of finetune's fused training
// forward and of the tied-logits op.
//
// The product is organised as in BLIS: the k dimension is cut into blocks of
// kc, B into panels of nr columns and A into panels of mr rows, both packed
// (so transposed operands cost nothing extra), and an mr×nr micro-kernel
// accumulates a tile of C in registers. On amd64 with AVX2 and FMA the
// float32 micro-kernel is a few lines of assembly (gemm_amd64.s); elsewhere,
// and for float64, it is plain Go.
//
// Large products are split over up to GOMAXPROCS goroutines along m or n.
// Every element of C is computed by the same sequence of operations however
// the work is split, so results are deterministic: bit-identical from run
// to run on the same machine.
package gemm

import (
	"runtime"
	"sync"
)

// Float is the element type.
type Float interface{ ~float32 | ~float64 }

const (
	mr = 6   // rows of the micro-tile
	nr = 16  // columns of the micro-tile
	kc = 256 // depth of a packed block
	mc = 96  // rows of A packed at once (a multiple of mr)
	nc = 1024
)

// minParallel is the number of multiply-adds above which a product is split
// over several goroutines.
const minParallel = 1 << 21

// Gemm computes C = op(A)·op(B), or C += op(A)·op(B) when accumulate is set.
// op(A) is m×k: A[i*lda+p], or A[p*lda+i] when transA. op(B) is k×n:
// B[p*ldb+j], or B[j*ldb+p] when transB. C[i*ldc+j] is m×n.
func Gemm[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, accumulate bool) {
	if m == 0 || n == 0 {
		return
	}
	if !accumulate {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
	}
	if k == 0 {
		return
	}
	workers := runtime.GOMAXPROCS(0)
	if workers > 1 && m*n*k >= minParallel {
		parallel(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, workers)
		return
	}
	serial(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
}

// parallel splits C into contiguous blocks of rows (or columns, when n is
// the larger side), one per worker.
func parallel[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, workers int) {
	var wg sync.WaitGroup
	if m >= n {
		step := ceilTo((m+workers-1)/workers, mr)
		for i0 := 0; i0 < m; i0 += step {
			rows := min(step, m-i0)
			var sa []T
			if transA {
				sa = a[i0:]
			} else {
				sa = a[i0*lda:]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serial(transA, transB, rows, n, k, sa, lda, b, ldb, c[i0*ldc:], ldc)
			}()
		}
	} else {
		step := ceilTo((n+workers-1)/workers, nr)
		for j0 := 0; j0 < n; j0 += step {
			cols := min(step, n-j0)
			var sb []T
			if transB {
				sb = b[j0*ldb:]
			} else {
				sb = b[j0:]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serial(transA, transB, m, cols, k, a, lda, sb, ldb, c[j0:], ldc)
			}()
		}
	}
	wg.Wait()
}

func ceilTo(x, q int) int { return (x + q - 1) / q * q }

type buffers[T Float] struct {
	a, b []T
	tile [mr * nr]T
}

var pools = struct{ f32, f64 sync.Pool }{
	f32: sync.Pool{New: func() any { return newBuffers[float32]() }},
	f64: sync.Pool{New: func() any { return newBuffers[float64]() }},
}

func newBuffers[T Float]() *buffers[T] {
	return &buffers[T]{a: make([]T, mc*kc), b: make([]T, kc*nc)}
}

func pool[T Float]() *sync.Pool {
	var z T
	if _, ok := any(z).(float32); ok {
		return &pools.f32
	}
	return &pools.f64
}

// serial is the blocked product on one goroutine: C += op(A)·op(B).
func serial[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int) {
	p := pool[T]()
	buf := p.Get().(*buffers[T])
	defer p.Put(buf)
	for j0 := 0; j0 < n; j0 += nc {
		nb := min(nc, n-j0)
		for p0 := 0; p0 < k; p0 += kc {
			kb := min(kc, k-p0)
			packB(transB, b, ldb, p0, j0, kb, nb, buf.b)
			for i0 := 0; i0 < m; i0 += mc {
				mb := min(mc, m-i0)
				packA(transA, a, lda, i0, p0, mb, kb, buf.a)
				macro(mb, nb, kb, buf, c[i0*ldc+j0:], ldc)
			}
		}
	}
}

// packB copies op(B)[p0:p0+kb, j0:j0+nb] into panels of nr columns:
// panel q holds, for each p, the nr values op(B)[p0+p, j0+q*nr : +nr],
// zero-padded past nb.
func packB[T Float](trans bool, b []T, ldb, p0, j0, kb, nb int, dst []T) {
	for q := 0; q*nr < nb; q++ {
		w := min(nr, nb-q*nr)
		panel := dst[q*nr*kb : (q+1)*nr*kb]
		jj := j0 + q*nr
		if !trans {
			for p := 0; p < kb; p++ {
				row := b[(p0+p)*ldb+jj : (p0+p)*ldb+jj+w]
				d := panel[p*nr : p*nr+nr]
				copy(d, row)
				clear(d[w:])
			}
			continue
		}
		if w < nr {
			clear(panel)
		}
		for j := 0; j < w; j++ {
			col := b[(jj+j)*ldb+p0 : (jj+j)*ldb+p0+kb]
			for p, v := range col {
				panel[p*nr+j] = v
			}
		}
	}
}

// packA copies op(A)[i0:i0+mb, p0:p0+kb] into panels of mr rows: panel q
// holds, for each p, the mr values op(A)[i0+q*mr : +mr, p0+p], zero-padded.
func packA[T Float](trans bool, a []T, lda, i0, p0, mb, kb int, dst []T) {
	for q := 0; q*mr < mb; q++ {
		h := min(mr, mb-q*mr)
		panel := dst[q*mr*kb : (q+1)*mr*kb]
		ii := i0 + q*mr
		if trans {
			for p := 0; p < kb; p++ {
				row := a[(p0+p)*lda+ii : (p0+p)*lda+ii+h]
				d := panel[p*mr : p*mr+mr]
				copy(d, row)
				clear(d[h:])
			}
			continue
		}
		if h < mr {
			clear(panel)
		}
		for i := 0; i < h; i++ {
			row := a[(ii+i)*lda+p0 : (ii+i)*lda+p0+kb]
			for p, v := range row {
				panel[p*mr+i] = v
			}
		}
	}
}

// macro runs the micro-kernel over every mr×nr tile of an mb×nb block.
func macro[T Float](mb, nb, kb int, buf *buffers[T], c []T, ldc int) {
	for jq := 0; jq*nr < nb; jq++ {
		w := min(nr, nb-jq*nr)
		bp := buf.b[jq*nr*kb:]
		for iq := 0; iq*mr < mb; iq++ {
			h := min(mr, mb-iq*mr)
			ap := buf.a[iq*mr*kb:]
			ct := c[iq*mr*ldc+jq*nr:]
			if h == mr && w == nr {
				kernel(kb, ap, bp, ct, ldc)
				continue
			}
			t := buf.tile[:]
			clear(t)
			kernel(kb, ap, bp, t, nr)
			for i := 0; i < h; i++ {
				dst := ct[i*ldc : i*ldc+w]
				for j := range dst {
					dst[j] += t[i*nr+j]
				}
			}
		}
	}
}

// kernel is C[0:mr, 0:nr] += Ap·Bp over kb packed steps.
func kernel[T Float](kb int, ap, bp, c []T, ldc int) {
	if f32, ok := any(ap).([]float32); ok && hasKernel32 {
		kernel32(kb, f32, any(bp).([]float32), any(c).([]float32), ldc)
		return
	}
	kernelGo(kb, ap, bp, c, ldc)
}

// kernelGo is the portable micro-kernel: 2×4 register tiles, each summed
// over all kb steps.
func kernelGo[T Float](kb int, ap, bp, c []T, ldc int) {
	ap, bp = ap[:kb*mr], bp[:kb*nr]
	for i := 0; i < mr; i += 2 {
		for j := 0; j < nr; j += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 T
			for p := 0; p < kb; p++ {
				a := ap[p*mr+i : p*mr+i+2 : p*mr+i+2]
				b := bp[p*nr+j : p*nr+j+4 : p*nr+j+4]
				a0, a1 := a[0], a[1]
				b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
				c00 += a0 * b0
				c01 += a0 * b1
				c02 += a0 * b2
				c03 += a0 * b3
				c10 += a1 * b0
				c11 += a1 * b1
				c12 += a1 * b2
				c13 += a1 * b3
			}
			r0 := c[i*ldc+j : i*ldc+j+4 : i*ldc+j+4]
			r1 := c[(i+1)*ldc+j : (i+1)*ldc+j+4 : (i+1)*ldc+j+4]
			r0[0] += c00
			r0[1] += c01
			r0[2] += c02
			r0[3] += c03
			r1[0] += c10
			r1[1] += c11
			r1[2] += c12
			r1[3] += c13
		}
	}
}
