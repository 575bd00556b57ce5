package gemm

import (
	"runtime"
	"unsafe"
)

// The vocabulary head's products are tall and narrow: n = 80 masked
// positions against a vocabulary of 30,522 to 250,000 rows and a hidden
// size of 256 to 768. The tied logits W·h (m = V) and their input
// gradient Wᵀ·g (k = V) stream the V×d table W from memory once per call,
// where the blocked product (serial) loses a third of the kernel's speed
// waiting for it. The head path reads A (W) in place, B (h or g: 80-value
// rows) in place without packing, covers all n columns of a panel of A
// before the next panel (the panel stays in L1), prefetches the next panel
// of A while it computes, and starts C from zeros or its own values inside
// the kernel (no clearing pass over C). Every element of C still sums its
// k products in kc blocks, each an FMA chain from zero added to C in
// order: the bits equal serial's.

const (
	headMaxN  = 96      // widest B the head path takes (3 column panels)
	headMinMK = 1 << 20 // smallest m·k it takes (below, A stays in cache)

	// headAhead is how many panels of B ahead headPacked prefetches
	// (1 and 2 measured alike, 3 and 4 slower).
	headAhead = 1
)

// headZeros is the row a first block adds its sums to when C starts from
// zeros (acc + 0, as serial's clear then add).
var headZeros [32]float32

// headGemm runs Gemm's product on the head path and reports true, or
// reports false, doing nothing, when the product is not one it takes:
// float32 on a path with head kernels, B not transposed with n ≤ headMaxN,
// m·k ≥ headMinMK, and A readable in place (transposed, or rows not a
// multiple of 4 KiB apart, as aInPlace).
func headGemm[T Float](pa *path, transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, accumulate bool) bool {
	return headGemmBias(pa, transA, transB, m, n, k, a, lda, b, ldb, nil, c, ldc, accumulate)
}

// headGemmBias is headGemm, C starting from rowBias[i] in every column of
// row i when rowBias is not nil (accumulate is then ignored).
func headGemmBias[T Float](pa *path, transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, rowBias []T, c []T, ldc int, accumulate bool) bool {
	if transB || n > headMaxN || k == 0 || m*k < headMinMK || !headOn(pa) || (!transA && lda%1024 == 0) {
		return false
	}
	a32, ok := any(a).([]float32)
	if !ok {
		return false
	}
	b32, c32 := any(b).([]float32), any(c).([]float32)
	var bias32 []float32
	if rowBias != nil {
		bias32 = any(rowBias).([]float32)[:m]
	}
	if workers := runtime.GOMAXPROCS(0); workers > 1 && m*n*k >= minParallel && m > pa.mr {
		splitRows(pa, transA, m, a32, lda, workers, func(rows int, sa []float32, i0 int) {
			var rb []float32
			if bias32 != nil {
				rb = bias32[i0:]
			}
			headRows(pa, transA, rows, n, k, sa, lda, b32, ldb, rb, c32[i0*ldc:], ldc, accumulate)
		})
		return true
	}
	headRows(pa, transA, m, n, k, a32, lda, b32, ldb, bias32, c32, ldc, accumulate)
	return true
}

// headRows is the head path on one goroutine. Panels of 12 rows of op(A)
// are read in place (the ragged last one packed, zero-padded). When k ≤ m
// (W·h) each panel runs over all of k before the next, so that the rows of
// C it writes stay in cache; otherwise (Wᵀ·g) each block of k runs over
// all panels, so that the block of B does.
func headRows(pa *path, transA bool, m, n, k int, a []float32, lda int, b []float32, ldb int, rowBias []float32, c []float32, ldc int, accumulate bool) {
	const mr = 12
	if pa.mr != mr {
		panic("gemm: head path needs 12-row panels")
	}
	// The last values each operand is read at (the kernel cannot check).
	if transA {
		_ = a[(k-1)*lda+m-1]
	} else {
		_ = a[(m-1)*lda+k-1]
	}
	_ = b[(k-1)*ldb+n-1]
	_ = c[(m-1)*ldc+n-1]
	full := m / mr * mr // rows in full panels
	var edge []float32  // the ragged panel, packed per block of k
	if full < m {
		p := pool[float32]()
		buf := p.Get().(*buffers[float32])
		defer p.Put(buf)
		edge = buf.a[:mr*kc]
	}
	aBase := uintptr(unsafe.Pointer(&a[0]))
	bBase := uintptr(unsafe.Pointer(&b[0]))
	panels := (n + 31) / 32

	// prefetch returns where kernel q of the panel at row ii over block
	// p0 prefetches from and by how many bytes a step, so that what the
	// next kernels read from memory is in cache when they start. Tall
	// (W·h): the next panel's rows of A (contiguous when lda = k), spread
	// evenly over the panel's kernels. Deep (Wᵀ·g): the next block of k,
	// first A's lines under this goroutine's columns (transposed A: one
	// column of lines down the block's rows a kernel), then B's rows, a
	// line a step; the block's later kernels repeat one line. A prefetch
	// is a hint: past the operands it does no harm.
	aLines := ceilDiv(int(aBase%64)+4*m, 64) // lines of a row of transposed A
	prefetch := func(ii, p0, q int) (uintptr, int) {
		if k <= m {
			span := 4 * mr * lda // bytes of the next panel of A
			steps := panels * k  // steps of this panel's kernels
			step := min(64, ceilDiv(span, steps))
			return aBase + uintptr(4*(ii+mr)*lda+(p0*panels+q*min(kc, k-p0))*step), step
		}
		t := ii/mr*panels + q // kernels of this block before this one
		next := p0 + kc
		if transA {
			if t < aLines {
				return aBase&^63 + uintptr(4*next*lda+64*t), 4 * lda
			}
			t -= aLines
		}
		if off := t * kc * 64; off < 4*kc*ldb {
			return bBase + uintptr(4*next*ldb+off), 64
		}
		return bBase, 0
	}

	// tiles runs the kernels of the panel at row ii over block p0 of k.
	tiles := func(ii, p0 int) {
		kb := min(kc, k-p0)
		h := min(mr, m-ii)
		var ap *float32
		sp, si := 1, lda
		switch {
		case h < mr:
			packA(pa, transA, a, lda, ii, p0, h, kb, edge)
			ap, sp, si = &edge[0], mr, 1
		case transA:
			ap, sp, si = &a[p0*lda+ii], lda, 1
		default:
			ap = &a[ii*lda+p0]
		}
		for q := range panels {
			j := q * 32
			w := min(32, n-j)
			cin, ldcin := &c[ii*ldc+j], ldc
			switch {
			case p0 > 0:
			case rowBias != nil:
				cin, ldcin = &rowBias[ii], -1 // a column: rowBias[ii+i] in all of row i
			case !accumulate:
				cin, ldcin = &headZeros[0], 0
			}
			pf, pfstep := prefetch(ii, p0, q)
			headTile(kb, ap, sp, si, &b[p0*ldb+j], ldb, &c[ii*ldc+j], ldc, cin, ldcin, h, w, pf, pfstep)
		}
	}
	if k <= m {
		for ii := 0; ii < m; ii += mr {
			for p0 := 0; p0 < k; p0 += kc {
				tiles(ii, p0)
			}
		}
		return
	}
	for p0 := 0; p0 < k; p0 += kc {
		for ii := 0; ii < m; ii += mr {
			tiles(ii, p0)
		}
	}
}

// headPacked runs serialPackedBlocks' product (B's column blocks [b0, b1)
// of pk) on the head path and reports true, or reports false, doing
// nothing, when it does not take it: float32 on a path with head kernels,
// fewer rows than columns and at most mc (inference's logits y·Wᵀ, 80
// rows against a vocabulary), A readable in place. Every panel of B runs
// over all of A, which must stay in L2: with 512 rows the blocked order
// was faster (GOMAXPROCS=1, blocked → head GFLOP/s by CPU time:
// 512×1024×256 249–259 → 233–240, 512×30522×256 209–214 → 206–208). Each 32-column panel of B, for every
// block of k, runs over all row panels of A (C's tile stays in cache);
// the kernels prefetch the next panel of B (the packed Wᵀ streams from
// memory once) and add the bias or zeros to the first block's sums in
// place of C's values, so no pass sets C first.
func headPacked[T Float](pa *path, transA bool, m int, a []T, lda int, pk *Packed[T], c []T, ldc int, b0, b1 int, start cStart[T]) bool {
	if m >= pk.n || m > mc || m == 0 || pk.k == 0 || !headOn(pa) || (!transA && lda%1024 == 0) {
		return false
	}
	a32, ok := any(a).([]float32)
	if !ok {
		return false
	}
	c32, panels := any(c).([]float32), any(pk.panel).([][]float32)
	var bias []float32
	if start.bias != nil {
		bias = any(start.bias).([]float32)
	}
	const mr, nr = 12, 32
	if pa.mr != mr || pa.nr != nr {
		panic("gemm: head path needs 12×32 tiles")
	}
	k := pk.k
	if transA {
		_ = a32[(k-1)*lda+m-1]
	} else {
		_ = a32[(m-1)*lda+k-1]
	}
	_ = c32[(m-1)*ldc+min(pk.n, b1*nc)-1]
	full := m / mr * mr
	rowPanels := ceilDiv(m, mr)
	// The ragged row panel of every block of k, packed once.
	var edges [][]float32
	if full < m {
		for p0 := 0; p0 < k; p0 += kc {
			kb := min(kc, k-p0)
			e := make([]float32, mr*kb)
			packA(pa, transA, a32, lda, full, p0, m-full, kb, e)
			edges = append(edges, e)
		}
	}
	for jb := b0; jb < b1; jb++ {
		j0 := jb * nc
		nb := min(nc, pk.n-j0)
		for jq := 0; jq*nr < nb; jq++ {
			w := min(nr, nb-jq*nr)
			j := j0 + jq*nr
			for pb := 0; pb*kc < k; pb++ {
				p0 := pb * kc
				kb := min(kc, k-p0)
				bp := panels[jb*pk.nkb+pb][jq*nr*kb:]
				// Prefetch the panel of B headAhead panels on in this
				// order (the last: itself).
				nj, nq, np := jb, jq, pb
				for range headAhead {
					if np++; np == pk.nkb {
						if np, nq = 0, nq+1; nq*nr >= min(nc, pk.n-nj*nc) {
							nq, nj = 0, nj+1
						}
					}
				}
				next := &bp[0]
				if nj < b1 {
					next = &panels[nj*pk.nkb+np][nq*nr*min(kc, k-np*kc)]
				}
				step := ceilDiv(4*nr*kc, rowPanels*kb)
				pf := uintptr(unsafe.Pointer(next))
				for iq := 0; iq < rowPanels; iq++ {
					ii := iq * mr
					h := min(mr, m-ii)
					var ap *float32
					sp, si := 1, lda
					switch {
					case h < mr:
						ap, sp, si = &edges[pb][0], mr, 1
					case transA:
						ap, sp, si = &a32[p0*lda+ii], lda, 1
					default:
						ap = &a32[ii*lda+p0]
					}
					ct := &c32[ii*ldc+j]
					cin, ldcin := ct, ldc
					if p0 == 0 {
						switch {
						case bias != nil:
							cin, ldcin = &bias[j], 0
						case start.zero:
							cin, ldcin = &headZeros[0], 0
						}
					}
					headTile(kb, ap, sp, si, &bp[0], nr, ct, ldc, cin, ldcin, h, w, pf+uintptr(iq*kb*step), step)
				}
			}
		}
	}
	return true
}

// GemmRowBias computes C = op(A)·op(B) + bias·1ᵀ: every row i of C (m×n)
// starts from bias[i] (m values) and the product accumulates onto it, as
// the logits W·h + b of a vocabulary head. Values equal setting every row
// and calling Gemm with accumulate, bit for bit; on the head path the
// bias goes into the first block's sums, with no pass over C before.
func GemmRowBias[T Float](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, bias []T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	_ = bias[m-1]
	if k > 0 && headGemmBias(active, transA, transB, m, n, k, a, lda, b, ldb, bias, c, ldc, true) {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			row[j] = bias[i]
		}
	}
	Gemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, true)
}
