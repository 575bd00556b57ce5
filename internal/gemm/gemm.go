// Package gemm is a blocked, packed matrix-matrix product for float32 and
// float64 row-major matrices, the hot loop of finetune's fused training
// forward and of the tied-logits op.
//
// The product is organised as in BLIS: the k dimension is cut into blocks of
// kc, B into panels of nr columns and A into panels of mr rows, both packed
// (so transposed operands cost nothing extra), and an mr×nr micro-kernel
// accumulates a tile of C in registers. On amd64 the float32 micro-kernel
// is assembly chosen at run time: 12×32 with AVX-512 (gemm_amd64.s,
// kernel512), else 6×16 with AVX2 and FMA (kernel256); with -tags purego,
// on other architectures, and for float64 it is plain Go. The AVX-512 path
// also packs in assembly (pack_amd64.s: a row-major A into 12-row panels,
// a transposed B into 32-column panels) and writes edge tiles straight into
// C under masks (kernel512e, kernel512he).
//
// Large products are split over up to GOMAXPROCS goroutines along m or n;
// along m the workers share B's packed blocks (sharedRows). Every element
// of C is computed by the same sequence of operations however the work is
// split, so results are deterministic: bit-identical from run to run on
// the same machine.
package gemm

import (
	"runtime"
	"sync"
)

// Float is the element type.
type Float interface{ ~float32 | ~float64 }

const (
	kc = 256  // depth of a packed block
	mc = 96   // rows of A packed at once (a multiple of every path's mr)
	nc = 1024 // columns of B packed at once (a multiple of every path's nr)

	maxTile = 12 * 32 // the largest mr·nr of any path
)

// path is one implementation of the float32 micro-kernel with its tile.
type path struct {
	name   string
	mr, nr int
	// k32 is C[0:mr, 0:nr] += A·B over kb steps, operands laid out as
	// kernelGo's; nil for the portable Go kernel.
	k32 func(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int)
	// k32e, if not nil, is k32 for an edge tile: it reads and writes only
	// C[0:h, 0:w] (1 ≤ h ≤ mr, 1 ≤ w ≤ nr), so edges need no staging tile.
	k32e func(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h, w int)
	// packA, if not nil, is packA for mr full rows of a row-major A and
	// 16n columns: dst[p*mr+i] = a[i*lda+p] (float32 only).
	packA func(n int, a *float32, lda int, dst *float32)
	// packBT, if not nil, is packB for nr full columns of a transposed B
	// and 16n steps: dst[p*nr+j] = b[j*ldb+p] (float32 only).
	packBT func(n int, b *float32, ldb int, dst *float32)
}

// goPath is the portable kernel; float64 products always use it.
var goPath = &path{name: "go", mr: 6, nr: 16}

// active is the float32 path: the best one this CPU supports (see paths in
// kernel_*.go). Tests switch it to cover every supported path; nothing else
// writes it.
var active = supported()[0]

// Path names the float32 micro-kernel in use ("avx512", "avx2" or "go").
func Path() string { return active.name }

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
	if headGemm(active, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate) {
		return // the vocabulary head's shapes (head.go)
	}
	if !accumulate {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
	}
	if k == 0 {
		return
	}
	pa := goPath
	if _, ok := any(a).([]float32); ok {
		pa = active
	}
	workers := runtime.GOMAXPROCS(0)
	if workers > 1 && m*n*k >= minParallel {
		parallel(pa, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, workers)
		return
	}
	serial(pa, transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
}

// aBlock readies the mb×kb block of op(A) at (i0, p0) for the macro
// kernel and returns its panel accessor: packed into buf when A is not
// read in place (aDirect false), otherwise read in place except for the
// ragged last panel (fewer than mr rows), which is packed, zero-padded.
// serial and serialPacked share it.
func aBlock[T Float](pa *path, transA, aDirect bool, a []T, lda, i0, p0, mb, kb int, buf []T) func(iq int) opnd[T] {
	mr := pa.mr
	aEdge := mb / mr // index of the ragged row panel, if any
	if !aDirect {
		packA(pa, transA, a, lda, i0, p0, mb, kb, buf)
	} else if mb%mr != 0 {
		packA(pa, transA, a, lda, i0+aEdge*mr, p0, mb-aEdge*mr, kb, buf)
	}
	return func(iq int) opnd[T] {
		ii := i0 + iq*mr
		switch {
		case !aDirect:
			return opnd[T]{d: buf[iq*mr*kb:], sp: mr, si: 1}
		case iq == aEdge:
			return opnd[T]{d: buf, sp: mr, si: 1}
		case transA:
			return opnd[T]{d: a[p0*lda+ii:], sp: lda, si: 1}
		}
		return opnd[T]{d: a[ii*lda+p0:], sp: 1, si: lda}
	}
}

func ceilTo(x, q int) int { return (x + q - 1) / q * q }

type buffers[T Float] struct {
	a, b []T
	tile [maxTile]T
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
//
// An operand is read in place when that saves more than it costs: A
// unless its rows are a multiple of 4 KiB apart (aInPlace), B when it is
// not transposed and few row panels reuse it (m < 4·mr).
// Otherwise blocks are packed into contiguous panels, as in BLIS (a
// panel read in place at a power-of-two stride would thrash the cache),
// and the ragged edge panels (fewer than mr rows or nr columns) are always
// packed, zero-padded. Either way every element sees the same operations.
func serial[T Float](pa *path, transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int) {
	p := pool[T]()
	buf := p.Get().(*buffers[T])
	defer p.Put(buf)
	mr, nr := pa.mr, pa.nr
	aDirect := aInPlace(transA, lda)
	bDirect := !transB && m < 4*mr
	for j0 := 0; j0 < n; j0 += nc {
		nb := min(nc, n-j0)
		for p0 := 0; p0 < k; p0 += kc {
			kb := min(kc, k-p0)
			bEdge := nb / nr // index of the ragged column panel, if any
			if !bDirect {
				packB(pa, transB, b, ldb, p0, j0, kb, nb, buf.b)
			} else if nb%nr != 0 {
				packB(pa, false, b, ldb, p0, j0+bEdge*nr, kb, nb-bEdge*nr, buf.b)
			}
			bPanel := func(jq int) opnd[T] {
				switch {
				case !bDirect:
					return opnd[T]{d: buf.b[jq*nr*kb:], sp: nr, si: 1}
				case jq == bEdge:
					return opnd[T]{d: buf.b, sp: nr, si: 1}
				}
				return opnd[T]{d: b[p0*ldb+j0+jq*nr:], sp: ldb, si: 1}
			}
			for i0 := 0; i0 < m; i0 += mc {
				mb := min(mc, m-i0)
				aPanel := aBlock(pa, transA, aDirect, a, lda, i0, p0, mb, kb, buf.a)
				macro(pa, mb, nb, kb, aPanel, bPanel, buf, c[i0*ldc+j0:], ldc)
			}
		}
	}
}

// aInPlace reports whether A is read in place rather than packed: when
// it is transposed (each step reads mr contiguous values) or its rows are
// not a multiple of 4 KiB apart (they would share cache sets; Skylake-X's
// L1 has 8 ways for 12 rows). With the assembly packA, reading in place
// still measured 1–4% less CPU than packing on the step's products at 512
// rows, for n from 80 to 1024 (BenchmarkShapes, GOMAXPROCS=1).
func aInPlace(transA bool, lda int) bool {
	return transA || lda%1024 != 0
}

// opnd is one micro-panel of A (mr rows) or B (nr columns) over kb steps:
// element (r, p) at d[p*sp + r*si].
type opnd[T Float] struct {
	d      []T
	sp, si int
}

// need is the number of values of d a kernel reads from a panel of rows
// r < rows over kb steps.
func (o opnd[T]) need(rows, kb int) int { return (kb-1)*o.sp + (rows-1)*o.si + 1 }

// packB copies op(B)[p0:p0+kb, j0:j0+nb] into panels of nr columns:
// panel q holds, for each p, the nr values op(B)[p0+p, j0+q*nr : +nr],
// zero-padded past nb.
func packB[T Float](pa *path, trans bool, b []T, ldb, p0, j0, kb, nb int, dst []T) {
	nr := pa.nr
	for q := 0; q*nr < nb; q++ {
		w := min(nr, nb-q*nr)
		panel := dst[q*nr*kb : (q+1)*nr*kb]
		jj := j0 + q*nr
		if !trans {
			copyRows(panel, nr, b[p0*ldb+jj:], ldb, kb, w)
			continue
		}
		if w < nr {
			clear(panel)
		}
		done := 0
		if w == nr && kb >= 16 && pa.packBT != nil {
			if b32, ok := any(b).([]float32); ok {
				// The assembly cannot check bounds: the last value it
				// reads is op(B)(p0+done-1, jj+nr-1).
				done = kb &^ 15
				_ = b32[(jj+nr-1)*ldb+p0+done-1]
				pa.packBT(done/16, &b32[jj*ldb+p0], ldb, &any(panel).([]float32)[0])
			}
		}
		for j := 0; j < w; j++ {
			col := b[(jj+j)*ldb+p0+done : (jj+j)*ldb+p0+kb]
			for p, v := range col {
				panel[(done+p)*nr+j] = v
			}
		}
	}
}

// copyRows sets dst[p*w:p*w+w] to src[p*lds:p*lds+n], zero-padded, for
// p < rows (n ≤ w): the packing of operands whose panel rows are contiguous
// in memory. A copy call per row of 16 to 128 bytes cost more than the copy
// (the head's input gradient packs 80-column rows in 32+32+16), so full
// 32-value rows are fixed-size copies and short rows plain loops.
func copyRows[T Float](dst []T, w int, src []T, lds, rows, n int) {
	if rows == 0 {
		return
	}
	_ = src[(rows-1)*lds+n-1]
	_ = dst[rows*w-1]
	switch {
	case n == 32 && w == 32:
		for p := range rows {
			*(*[32]T)(dst[p*32:]) = *(*[32]T)(src[p*lds:])
		}
	case n < 32:
		if n < w {
			clear(dst[:rows*w])
		}
		for p := range rows {
			d, s := dst[p*w:p*w+n], src[p*lds:p*lds+n]
			for i, v := range s {
				d[i] = v
			}
		}
	default:
		for p := range rows {
			d := dst[p*w : p*w+w]
			copy(d, src[p*lds:p*lds+n])
			clear(d[n:])
		}
	}
}

// packA copies op(A)[i0:i0+mb, p0:p0+kb] into panels of mr rows: panel q
// holds, for each p, the mr values op(A)[i0+q*mr : +mr, p0+p], zero-padded.
func packA[T Float](pa *path, trans bool, a []T, lda, i0, p0, mb, kb int, dst []T) {
	mr := pa.mr
	for q := 0; q*mr < mb; q++ {
		h := min(mr, mb-q*mr)
		panel := dst[q*mr*kb : (q+1)*mr*kb]
		ii := i0 + q*mr
		if trans {
			copyRows(panel, mr, a[p0*lda+ii:], lda, kb, h)
			continue
		}
		if h < mr {
			clear(panel)
		}
		done := 0
		if h == mr && kb >= 16 && pa.packA != nil {
			if a32, ok := any(a).([]float32); ok {
				// The assembly cannot check bounds: the last value it
				// reads is op(A)(ii+mr-1, p0+done-1).
				done = kb &^ 15
				_ = a32[(ii+mr-1)*lda+p0+done-1]
				pa.packA(done/16, &a32[ii*lda+p0], lda, &any(panel).([]float32)[0])
			}
		}
		for i := 0; i < h; i++ {
			row := a[(ii+i)*lda+p0+done : (ii+i)*lda+p0+kb]
			for p, v := range row {
				panel[(done+p)*mr+i] = v
			}
		}
	}
}

// macro runs the micro-kernel over every mr×nr tile of an mb×nb block.
func macro[T Float](pa *path, mb, nb, kb int, aPanel, bPanel func(int) opnd[T], buf *buffers[T], c []T, ldc int) {
	if pa.k32e != nil {
		if c32, ok := any(c).([]float32); ok {
			macro32(pa, mb, nb, kb, any(aPanel).(func(int) opnd[float32]), any(bPanel).(func(int) opnd[float32]), c32, ldc)
			return
		}
	}
	mr, nr := pa.mr, pa.nr
	for jq := 0; jq*nr < nb; jq++ {
		w := min(nr, nb-jq*nr)
		bp := bPanel(jq)
		for iq := 0; iq*mr < mb; iq++ {
			h := min(mr, mb-iq*mr)
			ap := aPanel(iq)
			ct := c[iq*mr*ldc+jq*nr:]
			if h == mr && w == nr {
				kernel(pa, kb, ap, bp, ct, ldc)
				continue
			}
			t := buf.tile[:mr*nr]
			clear(t)
			kernel(pa, kb, ap, bp, t, nr)
			for i := 0; i < h; i++ {
				dst := ct[i*ldc : i*ldc+w]
				for j := range dst {
					dst[j] += t[i*nr+j]
				}
			}
		}
	}
}

// macro32 is macro for a float32 path with an edge kernel: the row panels
// are fetched and bounds-checked once per block, the column panels once
// each, and the kernels called directly (the generic path's per-tile
// closure call, type assertions and checks were 3–4% of a product).
func macro32(pa *path, mb, nb, kb int, aPanel, bPanel func(int) opnd[float32], c []float32, ldc int) {
	mr, nr := pa.mr, pa.nr
	var aps [mc / 4]opnd[float32] // mr ≥ 4 on every path with k32e
	np := ceilDiv(mb, mr)
	for iq := range np {
		ap := aPanel(iq)
		_ = ap.d[ap.need(mr, kb)-1] // the assembly cannot check bounds
		aps[iq] = ap
	}
	for jq := 0; jq*nr < nb; jq++ {
		w := min(nr, nb-jq*nr)
		bp := bPanel(jq)
		_ = bp.d[bp.need(1, kb)+nr-2]
		for iq, ap := range aps[:np] {
			h := min(mr, mb-iq*mr)
			ct := c[iq*mr*ldc+jq*nr:]
			_ = ct[(h-1)*ldc+w-1]
			if h == mr && w == nr {
				pa.k32(kb, &ap.d[0], ap.sp, ap.si, &bp.d[0], bp.sp, &ct[0], ldc)
			} else {
				pa.k32e(kb, &ap.d[0], ap.sp, ap.si, &bp.d[0], bp.sp, &ct[0], ldc, h, w)
			}
		}
	}
}

// kernel is C[0:mr, 0:nr] += A·B over kb steps.
func kernel[T Float](pa *path, kb int, ap, bp opnd[T], c []T, ldc int) {
	mr, nr := pa.mr, pa.nr
	// The assembly cannot check bounds: do it here.
	_ = ap.d[ap.need(mr, kb)-1]
	_ = bp.d[bp.need(1, kb)+nr-2]
	_ = c[(mr-1)*ldc+nr-1]
	if pa.k32 != nil {
		if a32, ok := any(ap.d).([]float32); ok {
			b32, c32 := any(bp.d).([]float32), any(c).([]float32)
			pa.k32(kb, &a32[0], ap.sp, ap.si, &b32[0], bp.sp, &c32[0], ldc)
			return
		}
	}
	kernelGo(mr, nr, kb, ap, bp, c, ldc)
}

// kernelGo is the portable micro-kernel: 2×4 register tiles, each summed
// over all kb steps. A(i, p) is ap.d[p*ap.sp + i*ap.si], B(p, j) is
// bp.d[p*bp.sp + j] (bp.si is 1).
func kernelGo[T Float](mr, nr, kb int, ap, bp opnd[T], c []T, ldc int) {
	ad, bd := ap.d, bp.d
	for i := 0; i < mr; i += 2 {
		for j := 0; j < nr; j += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 T
			for p := 0; p < kb; p++ {
				ao := p*ap.sp + i*ap.si
				b := bd[p*bp.sp+j : p*bp.sp+j+4 : p*bp.sp+j+4]
				a0, a1 := ad[ao], ad[ao+ap.si]
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
