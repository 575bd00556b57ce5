package gemm

import (
	"runtime"
	"sync"
)

// Packed is a B operand packed once into the panels the blocked product
// reads, for products that use the same B many times (a frozen weight:
// x·Wᵀ every step). It holds a copy: later changes to B do not reach it.
type Packed[T Float] struct {
	pa    *path
	k, n  int
	trans bool
	panel [][]T // per (j0 block, p0 block), j0 major: packB's layout
	nkb   int   // p0 blocks per j0 block
	b     []T   // the source, for a product on another kernel path
	ldb   int
}

// PackB packs op(B) (k×n: B[p*ldb+j], or B[j*ldb+p] when transB) for the
// kernel path in use.
func PackB[T Float](transB bool, k, n int, b []T, ldb int) *Packed[T] {
	pa := pathFor[T]()
	nkb := (k + kc - 1) / kc
	pk := &Packed[T]{pa: pa, k: k, n: n, trans: transB, nkb: nkb, b: b, ldb: ldb}
	for j0 := 0; j0 < n; j0 += nc {
		nb := min(nc, n-j0)
		for p0 := 0; p0 < k; p0 += kc {
			kb := min(kc, k-p0)
			panels := (nb + pa.nr - 1) / pa.nr
			dst := make([]T, panels*pa.nr*kb)
			packB(pa, transB, b, ldb, p0, j0, kb, nb, dst)
			pk.panel = append(pk.panel, dst)
		}
	}
	return pk
}

// BlockCols is the number of op(B)'s columns per packed block: Update
// packs whole blocks.
const BlockCols = nc

// Update returns the Packed of b (same transB, k, n as pk; b laid out as
// PackB's, with ldb) when only op(B)'s column blocks listed in blocks
// (column j in block j/BlockCols) may differ from what pk was packed from:
// those are packed anew, every other block is shared with pk. pk itself
// is not changed (a product using it meanwhile is unaffected).
func (pk *Packed[T]) Update(b []T, ldb int, blocks []int) *Packed[T] {
	np := *pk
	np.panel = append([][]T(nil), pk.panel...)
	np.b, np.ldb = b, ldb
	for _, blk := range blocks {
		j0 := blk * nc
		if blk < 0 || j0 >= pk.n {
			panic("gemm: Update of a column block out of range")
		}
		nb := min(nc, pk.n-j0)
		for q, p0 := 0, 0; p0 < pk.k; q, p0 = q+1, p0+kc {
			kb := min(kc, pk.k-p0)
			dst := make([]T, (nb+pk.pa.nr-1)/pk.pa.nr*pk.pa.nr*kb)
			packB(pk.pa, pk.trans, b, ldb, p0, j0, kb, nb, dst)
			np.panel[blk*pk.nkb+q] = dst
		}
	}
	return &np
}

// Dims returns op(B)'s k and n.
func (pk *Packed[T]) Dims() (k, n int) { return pk.k, pk.n }

func pathFor[T Float]() *path {
	var z T
	if _, ok := any(z).(float32); ok {
		return active
	}
	return goPath
}

// GemmPacked is Gemm with a packed B: C = op(A)·op(B), or C += op(A)·op(B)
// when accumulate is set; op(A) is m×k. Values equal Gemm's bit for bit.
func GemmPacked[T Float](transA bool, m int, a []T, lda int, pk *Packed[T], c []T, ldc int, accumulate bool) {
	start := cStart[T]{zero: !accumulate}
	if pathFor[T]() != pk.pa { // packed for another kernel (tests switch paths)
		Gemm(transA, pk.trans, m, pk.n, pk.k, a, lda, pk.b, pk.ldb, c, ldc, accumulate)
		return
	}
	gemmPacked(transA, m, a, lda, pk, c, ldc, start)
}

// GemmPackedBias is GemmPacked onto a bias: every row of C (m×n) is set to
// bias (n values) and op(A)·op(B) is accumulated onto it, each block of C
// set just before its product (while it is in cache). Values equal
// setting the rows and calling GemmPacked with accumulate, bit for bit.
func GemmPackedBias[T Float](transA bool, m int, a []T, lda int, pk *Packed[T], bias []T, c []T, ldc int) {
	if m == 0 || pk.n == 0 {
		return
	}
	_ = bias[pk.n-1]
	if pathFor[T]() != pk.pa {
		for i := 0; i < m; i++ {
			copy(c[i*ldc:i*ldc+pk.n], bias)
		}
		Gemm(transA, pk.trans, m, pk.n, pk.k, a, lda, pk.b, pk.ldb, c, ldc, true)
		return
	}
	gemmPacked(transA, m, a, lda, pk, c, ldc, cStart[T]{bias: bias})
}

// cStart is what C starts from: its own values (accumulate), zeros, or a
// bias in every row.
type cStart[T Float] struct {
	zero bool
	bias []T
}

// set starts the block of C at (i0, j0), mb×nb, from s.
func (s cStart[T]) set(c []T, ldc, i0, j0, mb, nb int) {
	for i := i0; i < i0+mb; i++ {
		row := c[i*ldc+j0 : i*ldc+j0+nb]
		switch {
		case s.bias != nil:
			copy(row, s.bias[j0:j0+nb])
		case s.zero:
			clear(row)
		}
	}
}

func gemmPacked[T Float](transA bool, m int, a []T, lda int, pk *Packed[T], c []T, ldc int, start cStart[T]) {
	pa := pk.pa
	n, k := pk.n, pk.k
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if start.zero || start.bias != nil {
			start.set(c, ldc, 0, 0, m, n)
		}
		return
	}
	workers := runtime.GOMAXPROCS(0)
	if blocks := len(pk.panel) / pk.nkb; workers > 1 && m*n*k >= minParallel && m <= mc && m < n && blocks >= 2 {
		// Few rows (one block of A), many columns (a vocabulary
		// projection): the workers take whole column blocks, so B (the
		// large operand) is read once in all, not once per worker. With
		// more rows the row split below balances better (3 blocks would
		// split 2:1).
		workers = min(workers, blocks)
		per := (blocks + workers - 1) / workers
		var wg sync.WaitGroup
		for b0 := 0; b0 < blocks; b0 += per {
			wg.Add(1)
			go func(b0, b1 int) {
				defer wg.Done()
				serialPackedBlocks(pa, transA, m, a, lda, pk, c, ldc, b0, b1, start)
			}(b0, min(blocks, b0+per))
		}
		wg.Wait()
		return
	}
	if workers > 1 && m*n*k >= minParallel && m >= 2*pa.mr {
		// Blocks of rows claimed in turn (B is packed already: nothing to
		// share), at most mc rows each and at least two per worker.
		chunk := min(mc, ceilTo(ceilDiv(m, 8*workers), pa.mr))
		claimRows(transA, m, a, lda, workers, chunk, func(rows int, sa []T, i0 int) {
			serialPacked(pa, transA, rows, sa, lda, pk, c[i0*ldc:], ldc, start)
		})
		return
	}
	serialPacked(pa, transA, m, a, lda, pk, c, ldc, start)
}

// serialPacked is serial with B's blocks taken from pk.
func serialPacked[T Float](pa *path, transA bool, m int, a []T, lda int, pk *Packed[T], c []T, ldc int, start cStart[T]) {
	serialPackedBlocks(pa, transA, m, a, lda, pk, c, ldc, 0, (pk.n+nc-1)/nc, start)
}

// serialPackedBlocks is serialPacked over B's column blocks [b0, b1) (of
// nc columns) only, each block of C started from start before its first
// product.
func serialPackedBlocks[T Float](pa *path, transA bool, m int, a []T, lda int, pk *Packed[T], c []T, ldc int, b0, b1 int, start cStart[T]) {
	if headPacked(pa, transA, m, a, lda, pk, c, ldc, b0, b1, start) {
		return // few rows, many columns: inference's logits (head.go)
	}
	p := pool[T]()
	buf := p.Get().(*buffers[T])
	defer p.Put(buf)
	nr := pa.nr
	aDirect := aInPlace(transA, lda)
	blk := b0 * pk.nkb
	for j0 := b0 * nc; j0 < min(pk.n, b1*nc); j0 += nc {
		nb := min(nc, pk.n-j0)
		for p0 := 0; p0 < pk.k; p0 += kc {
			kb := min(kc, pk.k-p0)
			bp := pk.panel[blk]
			blk++
			bPanel := func(jq int) opnd[T] { return opnd[T]{d: bp[jq*nr*kb:], sp: nr, si: 1} }
			for i0 := 0; i0 < m; i0 += mc {
				mb := min(mc, m-i0)
				if p0 == 0 {
					start.set(c, ldc, i0, j0, mb, nb)
				}
				aPanel := aBlock(pa, transA, aDirect, a, lda, i0, p0, mb, kb, buf.a)
				macro(pa, mb, nb, kb, aPanel, bPanel, buf, c[i0*ldc+j0:], ldc)
			}
		}
	}
}
