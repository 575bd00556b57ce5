package finetune

// Frozen linear weights packed once per Task. The fused forward computes
// x·Wᵀ for every linear layer every step; packing Wᵀ into the GEMM's
// panels is a strided copy of the weight, repeated each step. A Task keeps
// the packed form (gemm.Packed) and reuses it for as long as the weight is
// unchanged: the same data slice with the same contents, checked at every
// use by a 64-bit hash of every value (one sequential read of the weights
// per step, a fraction of packing them). A weight changed in place, or
// replaced, is packed again. The tied output projection is never packed:
// the GEMM reads it in place, so the rows a trainable-tokens step changes
// cost nothing.

import (
	"sync"
	"unsafe"

	"github.com/gopeft/gopeft/internal/gemm"
	"github.com/gopeft/gopeft/internal/wordhash"
)

// packCache maps a weight's data (its first element's address and length)
// to its packed transpose and the hash of its values when packed.
type packCache struct {
	mu sync.Mutex
	m  map[packKey]packEntry
	// The Task's reusable step buffers (scratch.go), per dtype.
	bufs32 scratch[float32]
	bufs64 scratch[float64]
	// The Task's losses whose step is not finished (scratch.go).
	pendMu  sync.Mutex
	pending []pendingLoss
}

type packKey struct {
	p    unsafe.Pointer
	n    int
	kind packKind
}

// packKind tells the packed forms of the same weights apart.
type packKind uint8

const (
	packT        packKind = iota // one weight's transpose (x·Wᵀ)
	packCatT                     // stacked weights' transpose (x·Wᵀ)
	packCatPlain                 // stacked weights as they are (g·W)
	packPlain                    // one weight as it is (g·W)
)

type packEntry struct {
	hash   uint64
	blocks []uint64 // packT: the hash of every block of gemm.BlockCols rows
	packed any      // *gemm.Packed[T]
}

func newPackCache() *packCache { return &packCache{m: map[packKey]packEntry{}} }

// hashChunk is the number of values hashValues hashes on one goroutine:
// a large weight (a vocabulary projection) is hashed in chunks in
// parallel.
const hashChunk = 1 << 20

// hashValues is a 64-bit hash of the bits of every value of s: of each
// chunk of hashChunk values (hashed in parallel), then of the chunks'
// hashes in order.
func hashValues[T float](s []T) uint64 {
	if len(s) <= hashChunk {
		return hashSerial(s)
	}
	hs := make([]uint64, (len(s)+hashChunk-1)/hashChunk)
	parFor(len(hs), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			hs[i] = hashSerial(s[i*hashChunk : min(len(s), (i+1)*hashChunk)])
		}
	})
	return hashSerial(hs)
}

// hashSerial is wordhash.Sum64 of the bytes of s (AVX-512 where the CPU
// has it), 0 for no values.
func hashSerial[T float | uint64](s []T) uint64 {
	if len(s) == 0 {
		return 0
	}
	return wordhash.Sum64(unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0]))))
}

// packedT returns the packed Wᵀ of l (out×in, so op(B) is in×out), packing
// it when the cache has no current copy. When only some blocks of
// gemm.BlockCols rows changed (a vocabulary projection with a few token
// rows swapped in), only those are packed again.
func packedT[T float](c *packCache, l *fLinear[T]) *gemm.Packed[T] {
	key := packKey{unsafe.Pointer(&l.w[0]), len(l.w), packT}
	h, blocks := l.weightHash(), l.blockHashes()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	var p *gemm.Packed[T]
	if old, isT := e.packed.(*gemm.Packed[T]); ok && isT {
		if k, n := old.Dims(); k == l.in && n == l.out && len(e.blocks) == len(blocks) {
			if e.hash == h {
				return old
			}
			var changed []int
			for b, bh := range blocks {
				if bh != e.blocks[b] {
					changed = append(changed, b)
				}
			}
			p = old.Update(l.w, l.in, changed)
		}
	}
	if p == nil {
		p = gemm.PackB(true, l.in, l.out, l.w, l.in)
	}
	c.mu.Lock()
	c.m[key] = packEntry{hash: h, blocks: blocks, packed: p}
	c.mu.Unlock()
	return p
}

// packedCat returns the parts' weights stacked (rows of parts[0], then
// parts[1], …: one out×in weight with out the sum of the parts' outputs)
// and packed, transposed (op(B) = Wᵀ, for x·Wᵀ) or as it is (op(B) = W,
// for g·W), packing it when the cache has no current copy. The parts
// share their input width. The stacked copy lives only while it is
// packed.
func packedCat[T float](c *packCache, parts []*fLinear[T], trans bool) *gemm.Packed[T] {
	in, out := parts[0].in, 0
	hs := make([]uint64, 0, len(parts))
	for _, l := range parts {
		out += l.out
		hs = append(hs, l.weightHash())
	}
	h := hashWords(hs)
	kind, k, n := packCatT, in, out
	if !trans {
		kind, k, n = packCatPlain, out, in
	}
	key := packKey{unsafe.Pointer(&parts[0].w[0]), out * in, kind}
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && e.hash == h {
		if p, ok := e.packed.(*gemm.Packed[T]); ok {
			if pk, pn := p.Dims(); pk == k && pn == n {
				return p
			}
		}
	}
	w := make([]T, 0, out*in)
	for _, l := range parts {
		w = append(w, l.w...)
	}
	p := gemm.PackB(trans, k, n, w, in)
	c.mu.Lock()
	c.m[key] = packEntry{hash: h, packed: p}
	c.mu.Unlock()
	return p
}

// catLinear is the linear layer of the parts stacked, with its packed
// weight from c (the stacked weight itself is not kept: only forwardTo
// may be called on it).
func catLinear[T float](c *packCache, parts []*fLinear[T]) fLinear[T] {
	l := fLinear[T]{in: parts[0].in, pk: packedCat(c, parts, true)}
	for _, p := range parts {
		l.b = append(l.b, p.b...)
		l.out += p.out
	}
	return l
}

// usePacks gives every linear layer of the blocks and steps its packed
// weight from c (nil c: nothing). The attention's query, key and value
// projections of all heads are packed stacked, as one product: queries,
// keys and values of self-attention together, and for cross-attention
// the queries apart from the keys and values.
func usePacks[T float](c *packCache, blocks []fBlock[T], steps ...[]fStep[T]) {
	if c == nil {
		return
	}
	hashAll(blocks, steps)
	for _, b := range blocks {
		if a := b.att; a != nil {
			var qs, kvs []*fLinear[T]
			for j := range a.heads {
				qs = append(qs, &a.heads[j].q)
			}
			for j := range a.heads {
				kvs = append(kvs, &a.heads[j].k)
			}
			for j := range a.heads {
				kvs = append(kvs, &a.heads[j].v)
			}
			if b.cross {
				a.qCat, a.kvCat = catLinear(c, qs), catLinear(c, kvs)
			} else {
				all := append(qs, kvs...)
				a.qkvCat, a.qkvBack = catLinear(c, all), packedCat(c, all, false)
			}
		}
	}
	for _, l := range linears(blocks, steps, false) {
		l.pk = packedT(c, l)
	}
}

// linears lists the linear layers (with weights) of the blocks and steps:
// every attention's output and, with heads, its heads' query, key and
// value projections; the feed-forward and other steps' layers.
func linears[T float](blocks []fBlock[T], steps [][]fStep[T], heads bool) []*fLinear[T] {
	var ls []*fLinear[T]
	add := func(l *fLinear[T]) {
		if l != nil && len(l.w) > 0 {
			ls = append(ls, l)
		}
	}
	addSteps := func(ss []fStep[T]) {
		for i := range ss {
			add(ss[i].lin)
		}
	}
	for _, b := range blocks {
		if a := b.att; a != nil {
			if heads {
				for j := range a.heads {
					h := &a.heads[j]
					add(&h.q)
					add(&h.k)
					add(&h.v)
				}
			}
			add(&a.out)
		}
		addSteps(b.ffn)
	}
	for _, ss := range steps {
		addSteps(ss)
	}
	return ls
}

// usePacks gives the encoder's, projector's and head's linear layers their
// packed weights from c (nil c: nothing).
func (f *fBERT[T]) usePacks(c *packCache) {
	if c == nil {
		return
	}
	usePacks(c, f.blocks, f.transform)
	if f.projector != nil {
		f.projector.pk = packedT(c, f.projector)
	}
}

// weightHash is the hash of l.w's values: of its length and its blocks'
// hashes (blockHashes), in order.
func (l *fLinear[T]) weightHash() uint64 {
	return hashWords(append([]uint64{uint64(len(l.w))}, l.blockHashes()...))
}

// hashWords combines hashes (in order) with wordhash's full mixing.
func hashWords(hs []uint64) uint64 {
	if len(hs) == 0 {
		return 0
	}
	return wordhash.Sum64(unsafe.Slice((*byte)(unsafe.Pointer(&hs[0])), 8*len(hs)))
}

// blockHashes returns hashValues of every block of gemm.BlockCols rows of
// l.w (one packed column block of Wᵀ each), computed in parallel once
// per fLinear value.
func (l *fLinear[T]) blockHashes() []uint64 {
	if l.blocks != nil {
		return l.blocks
	}
	rows := gemm.BlockCols * max(1, l.in)
	hs := make([]uint64, max(1, (len(l.w)+rows-1)/rows))
	parFor(len(hs), 1, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			hs[b] = hashValues(l.w[min(len(l.w), b*rows):min(len(l.w), (b+1)*rows)])
		}
	})
	l.blocks = hs
	return hs
}

// hashAll hashes the weights of every linear layer of the blocks and
// steps, in parallel, before usePacks looks them up one by one.
func hashAll[T float](blocks []fBlock[T], steps [][]fStep[T]) {
	ls := linears(blocks, steps, true)
	parFor(len(ls), 1, func(lo, hi int) {
		for _, l := range ls[lo:hi] {
			l.weightHash()
		}
	})
}

// packedPlain returns l's weight packed as it is (op(B) = W, out×in) for
// the backward's g·W, packing it when the cache has no current copy.
func packedPlain[T float](c *packCache, l *fLinear[T]) *gemm.Packed[T] {
	key := packKey{unsafe.Pointer(&l.w[0]), len(l.w), packPlain}
	h := l.weightHash()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if p, isP := e.packed.(*gemm.Packed[T]); ok && isP && e.hash == h {
		if k, n := p.Dims(); k == l.out && n == l.in {
			return p
		}
	}
	p := gemm.PackB(false, l.out, l.in, l.w, l.in)
	c.mu.Lock()
	c.m[key] = packEntry{hash: h, packed: p}
	c.mu.Unlock()
	return p
}

// useBackPacks gives the linear layers whose input gradient a training
// step computes (attention outputs, feed-forward and head steps) their
// weight packed for g·W from c (nil c: nothing). Inference never calls
// it: the copies cost one packed copy of those weights.
func useBackPacks[T float](c *packCache, blocks []fBlock[T], steps ...[]fStep[T]) {
	if c == nil {
		return
	}
	for _, l := range linears(blocks, steps, false) {
		l.pkBack = packedPlain(c, l)
	}
}

// useBackPacks is useBackPacks for the encoder, its projector and the
// head's steps.
func (f *fBERT[T]) useBackPacks(c *packCache) {
	if c == nil {
		return
	}
	useBackPacks(c, f.blocks, f.transform)
	if f.projector != nil {
		f.projector.pkBack = packedPlain(c, f.projector)
	}
}
