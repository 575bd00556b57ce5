package gemm

import (
	"sync"
	"sync/atomic"
)

// parallel splits C into contiguous blocks of rows (or columns, when n is
// the larger side), one per worker. Along rows the workers share B: each
// block of B is packed once, each worker packing some of its panels.
func parallel[T Float](pa *path, transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, workers int) {
	if m >= n {
		if transB || m >= 4*pa.mr {
			sharedRows(pa, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, workers)
			return
		}
		splitRows(pa, transA, m, a, lda, workers, func(rows int, sa []T, i0 int) {
			serial(pa, transA, transB, rows, n, k, sa, lda, b, ldb, c[i0*ldc:], ldc)
		})
		return
	}
	step := ceilTo((n+workers-1)/workers, pa.nr)
	run(ceilDiv(n, step), func(w int) {
		j0 := w * step
		cols := min(step, n-j0)
		var sb []T
		if transB {
			sb = b[j0*ldb:]
		} else {
			sb = b[j0:]
		}
		serial(pa, transA, transB, m, cols, k, a, lda, sb, ldb, c[j0:], ldc)
	})
}

// run calls f(0), …, f(n-1) concurrently, f(0) on the calling goroutine,
// and returns when all have returned.
func run(n int, f func(w int)) {
	var wg sync.WaitGroup
	wg.Add(n - 1)
	for w := 1; w < n; w++ {
		go func() {
			defer wg.Done()
			f(w)
		}()
	}
	f(0)
	wg.Wait()
}

func ceilDiv(x, q int) int { return (x + q - 1) / q }

// splitRows runs f on contiguous blocks of A's rows (multiples of mr), one
// goroutine per worker, and waits for them: f gets the block's row count,
// A from its first row, and that row's index.
func splitRows[T Float](pa *path, transA bool, m int, a []T, lda, workers int, f func(rows int, sa []T, i0 int)) {
	step := ceilTo(ceilDiv(m, workers), pa.mr)
	run(ceilDiv(m, step), func(w int) {
		i0 := w * step
		f(min(step, m-i0), fromRow(transA, a, lda, i0), i0)
	})
}

// fromRow is op(A) from row i0 on.
func fromRow[T Float](transA bool, a []T, lda, i0 int) []T {
	if transA {
		return a[i0:]
	}
	return a[i0*lda:]
}

// claimRows runs f on chunks of A's rows (chunk rows each, a multiple of
// mr; the last may be shorter), which up to workers goroutines, the caller
// first, claim in turn until none is left: a goroutine that starts late
// (its core woken from idle, which takes tens of µs in a VM) takes fewer
// chunks instead of holding the product up. Which goroutine computes a
// chunk does not change any value.
func claimRows[T Float](transA bool, m int, a []T, lda, workers, chunk int, f func(rows int, sa []T, i0 int)) {
	var next atomic.Int64
	chunks := ceilDiv(m, chunk)
	run(min(workers, chunks), func(int) {
		for {
			c := int(next.Add(1)) - 1
			if c >= chunks {
				return
			}
			i0 := c * chunk
			f(min(chunk, m-i0), fromRow(transA, a, lda, i0), i0)
		}
	})
}

// sharedRows is serial with C's rows split over workers that share the
// packed blocks of B. B's blocks (in serial's order) are grouped into runs
// that fill one buffer of kc·nc values; for each run every worker packs its
// share of every block's column panels into one of two shared buffers,
// waits at a barrier for the others, then runs the macro kernel over its
// own rows for each block of the run. Two buffers let a worker pack the
// next run while the others still read the current one: passing the
// barrier of run r means every worker has finished run r-1, whose buffer
// run r+1 reuses. Runs keep the barriers few when blocks are small (a long
// k and a narrow n: the head's input gradient).
func sharedRows[T Float](pa *path, transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, workers int) {
	p := pool[T]()
	shared := [2]*buffers[T]{p.Get().(*buffers[T]), p.Get().(*buffers[T])}
	defer p.Put(shared[0])
	defer p.Put(shared[1])
	mr, nr := pa.mr, pa.nr
	step := ceilTo(ceilDiv(m, workers), mr)
	nw := ceilDiv(m, step)
	aDirect := aInPlace(transA, lda)

	// The blocks of B, each with its offset in its run's buffer.
	type block struct{ j0, p0, nb, kb, off int }
	var runs [][]block
	var cur []block
	used := 0
	for j0 := 0; j0 < n; j0 += nc {
		nb := min(nc, n-j0)
		for p0 := 0; p0 < k; p0 += kc {
			kb := min(kc, k-p0)
			size := ceilTo(nb, nr) * kb
			if used+size > kc*nc {
				runs = append(runs, cur)
				cur, used = nil, 0
			}
			cur = append(cur, block{j0, p0, nb, kb, used})
			used += size
		}
	}
	runs = append(runs, cur)

	bar := newBarrier(nw)
	run(nw, func(w int) {
		buf := p.Get().(*buffers[T])
		defer p.Put(buf)
		r0, r1 := w*step, min(m, (w+1)*step)
		for ri, blocks := range runs {
			bb := shared[ri%2].b
			for _, bl := range blocks {
				panels := ceilDiv(bl.nb, nr)
				per := ceilDiv(panels, nw)
				q0, q1 := min(panels, w*per), min(panels, (w+1)*per)
				if q0 < q1 {
					packB(pa, transB, b, ldb, bl.p0, bl.j0+q0*nr, bl.kb, min(bl.nb, q1*nr)-q0*nr, bb[bl.off+q0*nr*bl.kb:])
				}
			}
			bar.wait()
			for _, bl := range blocks {
				d, kb := bb[bl.off:], bl.kb
				bPanel := func(jq int) opnd[T] { return opnd[T]{d: d[jq*nr*kb:], sp: nr, si: 1} }
				for i0 := r0; i0 < r1; i0 += mc {
					mb := min(mc, r1-i0)
					aPanel := aBlock(pa, transA, aDirect, a, lda, i0, bl.p0, mb, kb, buf.a)
					macro(pa, mb, bl.nb, kb, aPanel, bPanel, buf, c[i0*ldc+bl.j0:], ldc)
				}
			}
		}
	})
}

// barrier is a reusable rendezvous of n goroutines. Waiters spin a little
// (the workers of a split arrive nearly together), then sleep.
type barrier struct {
	n    int32
	left atomic.Int32  // arrivals still missing in this generation
	gen  atomic.Uint32 // generation, incremented when all have arrived
	mu   sync.Mutex
	cond sync.Cond
}

func newBarrier(n int) *barrier {
	b := &barrier{n: int32(n)}
	b.left.Store(int32(n))
	b.cond.L = &b.mu
	return b
}

// spins is how many times a waiter polls before it sleeps (some tens of
// microseconds).
const spins = 1 << 14

func (b *barrier) wait() {
	g := b.gen.Load()
	if b.left.Add(-1) == 0 {
		// Reset before releasing: nobody arrives at the next generation
		// before gen moves.
		b.left.Store(b.n)
		b.mu.Lock()
		b.gen.Add(1)
		b.cond.Broadcast()
		b.mu.Unlock()
		return
	}
	for range spins {
		if b.gen.Load() != g {
			return
		}
	}
	b.mu.Lock()
	for b.gen.Load() == g {
		b.cond.Wait()
	}
	b.mu.Unlock()
}
