package finetune

// Buffers of the fused training step reused across steps. A step of the
// fused forward and backward allocates about 150 n×d-sized matrices
// (activations, their gradients, attention probabilities): at the
// benchmark's BERT size about 100 MB per step, all garbage a few
// milliseconds later. The garbage collector lets such a heap grow to twice
// its live size before collecting, so the training step's peak heap was
// set by garbage, not by what the step needs. A Task keeps a scratch per
// dtype: the fused ops take their buffers from it and give every buffer
// back as soon as nothing reads it any more (forward intermediates right
// after their consumer ran; activations saved for the backward when the
// backward of their op is done), so the step reuses a working set of
// about the size of the saved activations instead of allocating.
//
// Ownership: get/zeros hand out a buffer nobody else holds; put takes it
// back, and the caller must not touch it afterwards. A buffer that is
// never put (a forward without backward, a step that failed halfway) is
// simply left to the garbage collector: the scratch never waits for one.
// A nil *scratch allocates and never keeps anything (inference and the
// losses called without a Task).
//
// What the scratch keeps is bounded by twice the most it ever had out at
// once (in elements; buffers of one class may be created while buffers of
// another are free): a buffer given back beyond that is dropped. A request is
// served by a free buffer of its size class or of one of the next three
// (at most about twice the size), so batches of varying shapes (sequence
// lengths, masked positions) reuse each other's buffers instead of each
// shape keeping a working set of its own.

import (
	"math"
	"math/bits"
	"sync"
	"unsafe"
	"weak"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// scratch is a free list of []T buffers by size class, safe for
// concurrent use.
type scratch[T float] struct {
	mu   sync.Mutex
	free map[int][][]T // size class → free buffers (full capacity)
	// Elements: out in buffers handed out (buffers never given back stay
	// counted), the most ever out at once, kept in free.
	out, most, kept int
	// poison, set by tests, fills every buffer put back with NaN, so a
	// buffer read after it was given back shows in the results.
	poison bool
}

// minScratch is the smallest buffer the scratch keeps; smaller ones are
// plain allocations.
const minScratch = 256

// sizeClass returns the class of a buffer of n elements and its capacity:
// n rounded up to the next of 2^e·{4, 5, 6, 7}/4 (at most 25% over).
func sizeClass(n int) (class, capacity int) {
	e := bits.Len(uint(n-1)) - 3 // n ≤ 8·2^e
	if e < 0 {
		e = 0
	}
	q := (n + (1 << e) - 1) >> e // n ≤ q·2^e, q in (4, 8]
	return e<<4 | q, q << e
}

// get returns a buffer of n elements with unspecified contents (the caller
// writes every element).
func (s *scratch[T]) get(n int) []T {
	if s == nil || n < minScratch {
		return make([]T, n)
	}
	class, capacity := sizeClass(n)
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []T
	for i, c := 0, class; i < 4 && b == nil; i, c = i+1, nextClass(c) {
		list := s.free[c]
		if k := len(list); k > 0 {
			b = list[k-1]
			list[k-1] = nil
			s.free[c] = list[:k-1]
			s.kept -= cap(b)
		}
	}
	if b == nil {
		b = make([]T, capacity)
	}
	s.out += cap(b)
	s.most = max(s.most, s.out)
	return b[:n]
}

// nextClass is the size class after class.
func nextClass(class int) int {
	e, q := class>>4, class&15
	if q < 8 {
		return e<<4 | (q + 1)
	}
	return (e+1)<<4 | 5
}

// zeros returns a buffer of n zeros.
func (s *scratch[T]) zeros(n int) []T {
	if s == nil || n < minScratch {
		return make([]T, n)
	}
	b := s.get(n)
	clear(b)
	return b
}

// put gives buffers back (nil ones and those too small to keep are
// ignored). Each must come from get or zeros of the same scratch and must
// not be used afterwards.
func (s *scratch[T]) put(bufs ...[]T) {
	if s == nil {
		return
	}
	for _, b := range bufs {
		if cap(b) < minScratch {
			continue
		}
		b = b[:cap(b)]
		class, capacity := sizeClass(cap(b))
		if capacity != cap(b) {
			continue // not one of ours
		}
		if s.poison {
			nan := T(math.NaN())
			for i := range b {
				b[i] = nan
			}
		}
		s.mu.Lock()
		s.out = max(0, s.out-cap(b))
		if s.kept+cap(b) <= 2*s.most {
			if s.free == nil {
				s.free = map[int][][]T{}
			}
			s.free[class] = append(s.free[class], b)
			s.kept += cap(b)
		}
		s.mu.Unlock()
	}
}

// same reports whether a and b start at the same element (one buffer).
func same[T float](a, b []T) bool {
	return len(a) > 0 && len(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// scratchOf returns the Task's scratch of dtype T (nil c: none).
func scratchOf[T float](c *packCache) *scratch[T] {
	if c == nil {
		return nil
	}
	var z T
	switch any(z).(type) {
	case float32:
		return any(&c.bufs32).(*scratch[T])
	default:
		return any(&c.bufs64).(*scratch[T])
	}
}

// useScratch gives every op of the blocks and steps the scratch sc.
func useScratch[T float](sc *scratch[T], blocks []fBlock[T], steps ...[]fStep[T]) {
	if sc == nil {
		return
	}
	stepsOf := func(ss []fStep[T]) {
		for i := range ss {
			s := &ss[i]
			s.sc = sc
			if s.lin != nil {
				s.lin.sc = sc
			}
			if s.norm != nil {
				s.norm.sc = sc
			}
		}
	}
	for i := range blocks {
		b := &blocks[i]
		b.norm.sc = sc
		if b.att != nil {
			b.att.sc = sc
			b.att.out.sc = sc
		}
		stepsOf(b.ffn)
	}
	for _, ss := range steps {
		stepsOf(ss)
	}
}

// useScratch gives the encoder's, projector's and head's ops the scratch
// sc.
func (f *fBERT[T]) useScratch(sc *scratch[T]) {
	if sc == nil {
		return
	}
	useScratch(sc, f.blocks, f.transform)
	f.norm.sc = sc
	if f.projector != nil {
		f.projector.sc = sc
	}
}

// within reports whether b starts inside a's buffer (a sub-slice of it).
func within[T float](a, b []T) bool {
	if len(b) == 0 || cap(a) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(a)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= lo && p < lo+uintptr(cap(a))*unsafe.Sizeof(a[0])
}

// A Task's loss takes the vocabulary-sized cross-entropy buffer from the
// scratch too, but hands it to spago as the logits' gradient: it is free
// again only when the step is over. The Trainer says so (Task.finish);
// until then the Task remembers the loss nodes and their cross-entropy ops
// by weak pointers, so a loss that is never finished (Task.Loss called
// directly) keeps nothing alive and its buffer goes to the GC.

// pendingLoss is a loss node of the Task not finished yet.
type pendingLoss struct {
	loss weak.Pointer[ag.Operator]
	ce   weak.Pointer[crossEntropy]
}

// maxPending bounds the losses a Task remembers (steps running at once);
// beyond it the oldest is forgotten (its buffer goes to the GC).
const maxPending = 8

// pend remembers loss (c's node) until finish.
func (c *packCache) pend(loss mat.Tensor, ce *crossEntropy) {
	op, ok := loss.(*ag.Operator)
	if !ok {
		return
	}
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	live := c.pending[:0]
	for _, p := range c.pending {
		if p.loss.Value() != nil {
			live = append(live, p)
		}
	}
	clear(c.pending[len(live):])
	c.pending = live
	if len(c.pending) >= maxPending {
		c.pending = append(c.pending[:0], c.pending[1:]...)
	}
	c.pending = append(c.pending, pendingLoss{loss: weak.Make(op), ce: weak.Make(ce)})
}

// finish takes back the buffers of loss, a loss of the Task whose step is
// over (backward, update and gradient clean-up done, or failed).
func (c *packCache) finish(loss mat.Tensor) {
	op, ok := loss.(*ag.Operator)
	if !ok || c == nil {
		return
	}
	var ce *crossEntropy
	c.pendMu.Lock()
	for i, p := range c.pending {
		if p.loss.Value() == op {
			ce = p.ce.Value()
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			break
		}
	}
	c.pendMu.Unlock()
	if ce != nil {
		ce.release()
	}
}
