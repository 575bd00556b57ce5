package finetune

// Row-major building blocks of the fused training forward (fused.go): a
// batch of n positions is one n×d matrix, every op has its own backward,
// and frozen weights never get a gradient. Backward closures capture only
// what they need (attention probabilities, normalized activations, the
// activation derivative), never the inputs of linear layers: with frozen
// weights, the input gradient of a linear layer needs only its weight.

import (
	"math"
	"runtime"
	"sync"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/activation"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"

	"github.com/gopeft/gopeft/hfact"
	"github.com/gopeft/gopeft/internal/gemm"
	"github.com/gopeft/gopeft/internal/vmath"
)

// float is the element type of the fused path.
type float interface{ float32 | float64 }

// backFn maps the gradient of an op's output to the gradient of its input.
type backFn[T float] func(gy []T) []T

// parFor runs body over [0, n) in contiguous chunks on up to GOMAXPROCS
// goroutines. Chunks write disjoint data, so results do not depend on the
// split.
func parFor(n, minChunk int, body func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > n/max(1, minChunk) {
		workers = n / max(1, minChunk)
	}
	if workers <= 1 {
		body(0, n)
		return
	}
	var wg sync.WaitGroup
	step := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += step {
		hi := min(n, lo+step)
		wg.Add(1)
		go func() {
			defer wg.Done()
			body(lo, hi)
		}()
	}
	wg.Wait()
}

// reading says what a fused model is built for. Training reads only
// frozen weights (it computes no weight gradients, so a trainable weight
// makes the model ineligible); inference reads any weight.
type reading bool

const (
	training  reading = false
	inference reading = true
)

// frozenData returns the data of a dense parameter of dtype T: frozen
// for training, any for inference.
func frozenData[T float](rd reading, p *nn.Param) ([]T, bool) {
	if p == nil || p.Matrix == nil || (rd == training && p.RequiresGrad()) {
		return nil, false
	}
	d, ok := p.Matrix.(*mat.Dense[T])
	if !ok {
		return nil, false
	}
	return mat.Data[T](d), true
}

func bufferScalar[T float](b *nn.Buffer) (T, bool) {
	if b == nil || b.Value() == nil || b.Value().Size() != 1 {
		return 0, false
	}
	return T(b.Value().Item().F64()), true
}

// fLinear is a frozen linear layer: y = x·Wᵀ + b, W out×in.
type fLinear[T float] struct {
	w, b    []T
	out, in int
	pk      *gemm.Packed[T] // Wᵀ packed once (packcache.go), or nil
	pkBack  *gemm.Packed[T] // W packed once for the backward's g·W (training), or nil
	sc      *scratch[T]     // the Task's step buffers (scratch.go), or nil
	blocks  []uint64        // hashes of w's row blocks once hashed (packcache.go), for the call that built l
}

func newFLinear[T float](rd reading, l *linear.Model) (fLinear[T], bool) {
	if l == nil || l.W == nil || l.B == nil {
		return fLinear[T]{}, false
	}
	w, ok1 := frozenData[T](rd, l.W)
	b, ok2 := frozenData[T](rd, l.B)
	s := l.W.Shape()
	if !ok1 || !ok2 || len(s) != 2 || len(b) != s[0] {
		return fLinear[T]{}, false
	}
	return fLinear[T]{w: w, b: b, out: s[0], in: s[1]}, true
}

// forwardTo writes b + x·Wᵀ (n×out) into y with row stride ldy: every
// row is set to the bias and the product accumulated onto it (one pass
// over y fewer than adding the bias afterwards).
func (l fLinear[T]) forwardTo(y []T, ldy int, x []T, ldx, n int) {
	if l.pk != nil {
		gemm.GemmPackedBias(false, n, x, ldx, l.pk, l.b, y, ldy) // sets each block just before its product
		return
	}
	parFor(n, max(1, elementChunk/max(1, l.out)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(y[i*ldy:i*ldy+l.out], l.b)
		}
	})
	gemm.Gemm(false, true, n, l.out, l.in, x, ldx, l.w, l.in, y, ldy, true)
}

func (l fLinear[T]) forward(x []T, n int) []T {
	y := l.sc.get(n * l.out)
	l.forwardTo(y, l.out, x, l.in, n)
	return y
}

// backwardTo adds (or writes, when !acc) gy·W (n×in) into gx.
func (l fLinear[T]) backwardTo(gx []T, ldgx int, gy []T, ldgy, n int, acc bool) {
	if l.pkBack != nil {
		gemm.GemmPacked(false, n, gy, ldgy, l.pkBack, gx, ldgx, acc)
		return
	}
	gemm.Gemm(false, false, n, l.in, l.out, gy, ldgy, l.w, l.in, gx, ldgx, acc)
}

// fNorm is a frozen layer norm over rows, as spago's layernorm: y =
// (x-mean)/sqrt(var+eps)·w + b.
type fNorm[T float] struct {
	w, b []T
	eps  T
	sc   *scratch[T] // the Task's step buffers (scratch.go), or nil
}

func newFNorm[T float](rd reading, ln *layernorm.Model) (fNorm[T], bool) {
	if ln == nil {
		return fNorm[T]{}, false
	}
	w, ok1 := frozenData[T](rd, ln.W)
	b, ok2 := frozenData[T](rd, ln.B)
	eps, ok3 := bufferScalar[T](ln.Eps)
	if !ok1 || !ok2 || !ok3 || len(w) != len(b) {
		return fNorm[T]{}, false
	}
	return fNorm[T]{w: w, b: b, eps: eps}, true
}

// forward normalizes the n rows of x (n×d) into a new matrix. With train,
// it also returns the backward.
func (ln fNorm[T]) forward(x []T, n int, train bool) ([]T, backFn[T]) {
	d := len(ln.w)
	y := ln.sc.get(n * d)
	var xhat, rstd []T
	if train {
		xhat, rstd = ln.sc.get(n*d), ln.sc.get(n)
	}
	parFor(n, 16, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := x[i*d : (i+1)*d]
			mean := sum4(row) / T(d)
			std := T(math.Sqrt(float64(sqDev4(row, mean)/T(d) + ln.eps)))
			inv := 1 / std
			out := y[i*d : (i+1)*d]
			w, b := ln.w[:len(row)], ln.b[:len(row)]
			out = out[:len(row)]
			if xhat == nil {
				for j, v := range row {
					out[j] = (v-mean)*inv*w[j] + b[j]
				}
				continue
			}
			xh := xhat[i*d : (i+1)*d]
			xh = xh[:len(row)]
			for j, v := range row {
				h := (v - mean) * inv
				out[j] = h*w[j] + b[j]
				xh[j] = h
			}
			rstd[i] = inv
		}
	})
	if !train {
		return y, nil
	}
	return y, func(gy []T) []T {
		gx := ln.sc.get(n * d)
		parFor(n, 16, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				g, h := gy[i*d:(i+1)*d], xhat[i*d:(i+1)*d]
				w := ln.w[:len(g)]
				h = h[:len(g)]
				sg, sgh := normSums(g, w, h)
				mg, mgh := sg/T(d), sgh/T(d)
				out := gx[i*d : (i+1)*d]
				out = out[:len(g)]
				r := rstd[i]
				for j := range g {
					out[j] = r * (g[j]*w[j] - mg - h[j]*mgh)
				}
			}
		})
		ln.sc.put(xhat, rstd)
		return gx
	}
}

// normSums returns Σ g⊙w and Σ g⊙w⊙h (w and h at least as long as g),
// each in two interleaved partial sums.
func normSums[T float](g, w, h []T) (sg, sgh T) {
	var a0, a1, b0, b1 T
	j := 0
	for ; j+2 <= len(g); j += 2 {
		gq, wq, hq := g[j:j+2:j+2], w[j:j+2:j+2], h[j:j+2:j+2]
		g0, g1 := gq[0]*wq[0], gq[1]*wq[1]
		a0 += g0
		a1 += g1
		b0 += g0 * hq[0]
		b1 += g1 * hq[1]
	}
	for ; j < len(g); j++ {
		gh := g[j] * w[j]
		a0 += gh
		b0 += gh * h[j]
	}
	return a0 + a1, b0 + b1
}

// activations the fused path implements (others fall back to the graph).
func supportedActivation(a activation.Activation) bool {
	switch a {
	case activation.Identity, activation.GELU, activation.ReLU, activation.Tanh, activation.Swish, activation.SiLU:
		return true
	}
	return false
}

// geluErf tags an hfact.GELU module (the exact GELU of Hugging Face's
// "gelu") in a fused step. It is not one of spago's activations.
const geluErf activation.Activation = -1

// applyActivation applies a in place to x and, with train, returns the
// element-wise derivative (computed in the same pass) in a buffer from sc.
func applyActivation[T float](sc *scratch[T], a activation.Activation, x []T, train bool) []T {
	if a == activation.Identity {
		if !train {
			return nil
		}
		d := sc.get(len(x))
		for i := range d {
			d[i] = 1
		}
		return d
	}
	var deriv []T
	if train {
		deriv = sc.get(len(x))
	}
	if x32, ok := any(x).([]float32); ok && vectorActivation(a) {
		d32, _ := any(deriv).([]float32)
		applyActivation32(a, x32, d32)
		return deriv
	}
	parFor(len(x), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			var y, dy float64
			switch a {
			case geluErf:
				y, dy = hfact.ErfGELU(v)
			case activation.GELU:
				// spago's GELU: 0.5·v·(1 + tanh(√(2/π)·(v + 0.044715·v³))).
				const c = 0.7978845608028654 // √(2/π)
				t := math.Tanh(c * (v + 0.044715*v*v*v))
				y = 0.5 * v * (1 + t)
				dy = 0.5*(1+t) + 0.5*v*(1-t*t)*c*(1+3*0.044715*v*v)
			case activation.ReLU:
				if v > 0 {
					y, dy = v, 1
				}
			case activation.Tanh:
				y = math.Tanh(v)
				dy = 1 - y*y
			case activation.Swish, activation.SiLU:
				// v·σ(v) (Marian's "swish"); d/dv = σ(v)·(1 + v·(1−σ(v))).
				s := 1 / (1 + math.Exp(-v))
				y = v * s
				dy = s * (1 + v*(1-s))
			}
			x[i] = T(y)
			if deriv != nil {
				deriv[i] = T(dy)
			}
		}
	})
	return deriv
}

// fStep is one module of a position-wise stack (FFN, MLM transform).
type fStep[T float] struct {
	lin  *fLinear[T]
	norm *fNorm[T]
	act  activation.Activation
	sc   *scratch[T] // the Task's step buffers (scratch.go), or nil
}

// newFSteps converts a cybertron module list; false if a module is not
// supported or not frozen.
func newFSteps[T float](rd reading, ms []nn.StandardModel) ([]fStep[T], bool) {
	var out []fStep[T]
	for _, m := range ms {
		switch v := m.(type) {
		case *linear.Model:
			l, ok := newFLinear[T](rd, v)
			if !ok {
				return nil, false
			}
			out = append(out, fStep[T]{lin: &l})
		case *layernorm.Model:
			n, ok := newFNorm[T](rd, v)
			if !ok {
				return nil, false
			}
			out = append(out, fStep[T]{norm: &n})
		case *activation.Model:
			if v == nil || !supportedActivation(v.Activation) {
				return nil, false
			}
			out = append(out, fStep[T]{act: v.Activation})
		case *hfact.GELU:
			if v == nil {
				return nil, false
			}
			out = append(out, fStep[T]{act: geluErf})
		default:
			return nil, false
		}
	}
	return out, true
}

// runSteps applies the steps to x (n×d); with train it returns the
// backward of the whole stack. x stays the caller's: the result is a new
// buffer, or x itself when no step changes it. Intermediate results go
// back to the steps' scratch once the next step has read them; so do the
// backward's intermediate gradients (it may return its argument: no step).
func runSteps[T float](steps []fStep[T], x []T, n int, train bool) ([]T, backFn[T]) {
	var backs []backFn[T]
	var sc *scratch[T]
	owned := false        // x is a buffer made here (not the caller's)
	next := func(y []T) { // y, a new buffer, replaces x
		if owned {
			sc.put(x)
		}
		x, owned = y, true
	}
	for _, s := range steps {
		sc = s.sc
		switch {
		case s.lin != nil:
			l := *s.lin
			next(l.forward(x, n))
			if train {
				backs = append(backs, func(gy []T) []T {
					gx := l.sc.get(n * l.in)
					l.backwardTo(gx, l.in, gy, l.out, n, false)
					return gx
				})
			}
		case s.norm != nil:
			y, b := s.norm.forward(x, n, train)
			next(y)
			if train {
				backs = append(backs, b)
			}
		default:
			if len(x) > 0 && s.act != activation.Identity && !owned {
				y := s.sc.get(len(x)) // the input may be kept by a residual
				copy(y, x)
				x, owned = y, true
			}
			deriv := applyActivation(s.sc, s.act, x, train)
			if train {
				backs = append(backs, func(gy []T) []T {
					gx := deriv // read last here: the gradient goes over it
					parFor(len(gy), elementChunk, func(lo, hi int) {
						d, g := gx[lo:hi], gy[lo:hi]
						for i := range g {
							d[i] *= g[i]
						}
					})
					return gx
				})
			}
		}
	}
	if !train {
		return x, nil
	}
	return x, func(g []T) []T {
		for i := len(backs) - 1; i >= 0; i-- {
			gx := backs[i](g)
			if i < len(backs)-1 { // not the caller's
				sc.put(g)
			}
			g = gx
		}
		return g
	}
}

// span is one sequence of a batch: rows [off, off+n) of the batch matrix.
type span struct{ off, n int }

// fHead is one frozen attention head.
type fHead[T float] struct {
	q, k, v fLinear[T]
	scale   T
	causal  bool
}

// fAttention is a frozen multi-head attention: heads, then OutputMerge
// over their concatenation.
type fAttention[T float] struct {
	heads []fHead[T]
	out   fLinear[T]
	dh    int         // width of every head's query, key and value
	sc    *scratch[T] // the Task's step buffers (scratch.go), or nil
	// The heads' projections stacked (packcache.go: usePacks), when
	// packed: queries, keys and values of all heads as one product for
	// self-attention (qkvCat), or queries (qCat) apart from keys and
	// values (kvCat) for cross-attention. Zero when not packed.
	qkvCat, qCat, kvCat fLinear[T]
	// qkvBack is qkvCat's stacked weight packed as it is, for the input
	// gradient of all three projections as one product; nil when not
	// packed.
	qkvBack *gemm.Packed[T]
}

// projections returns the queries of x (nq rows) and the keys and values
// of the memory m (nm rows): every head's side by side, head j at columns
// j·dh of each row, rows ldq (queries) and ldm (keys, values) apart. self
// says m is x.
func (a *fAttention[T]) projections(x []T, nq int, m []T, nm int, self bool) (q, k, v []T, ldq, ldm int) {
	w := len(a.heads) * a.dh
	d := a.heads[0].q.in
	switch {
	case nq == 0 && nm == 0:
		return nil, nil, nil, w, w
	case self && a.qkvCat.pk != nil:
		y := a.sc.get(nq * 3 * w)
		a.qkvCat.forwardTo(y, 3*w, x, d, nq)
		return y, y[w:], y[2*w:], 3 * w, 3 * w
	case a.qCat.pk != nil && a.kvCat.pk != nil:
		q, y := a.sc.get(nq*w), a.sc.get(nm*2*w)
		a.qCat.forwardTo(q, w, x, d, nq)
		if nm == 0 {
			return q, nil, nil, w, 2 * w
		}
		a.kvCat.forwardTo(y, 2*w, m, d, nm)
		return q, y, y[w:], w, 2 * w
	}
	q, k, v = a.sc.get(nq*w), a.sc.get(nm*w), a.sc.get(nm*w)
	for j, hd := range a.heads {
		if nq > 0 {
			hd.q.forwardTo(q[j*a.dh:], w, x, d, nq)
		}
		if nm > 0 {
			hd.k.forwardTo(k[j*a.dh:], w, m, d, nm)
			hd.v.forwardTo(v[j*a.dh:], w, m, d, nm)
		}
	}
	return q, k, v, w, w
}

// attention runs the attention of queries x (n×d, sequences qs) over
// memory m (rows of sequences ms, one per query sequence). For
// self-attention m is x and ms is qs. With train it returns a backward
// that adds the memory's gradient into gm (which may be the returned
// input gradient's buffer for self-attention: see selfBackward).
func (a *fAttention[T]) forward(x []T, qs []span, m []T, ms []span, train bool) ([]T, func(gy, gx, gm []T)) {
	nq, nm := rowsOf(qs), rowsOf(ms)
	h, dh := len(a.heads), a.dh
	w := h * dh
	d := a.heads[0].q.in
	self := nq == nm && len(x) > 0 && len(m) > 0 && &x[0] == &m[0]
	q, k, v, ldq, ldm := a.projections(x, nq, m, nm, self)
	// Probabilities of every (sequence, head) task, laid out one after
	// the other.
	pOff := make([]int, len(qs)+1)
	for s := range qs {
		pOff[s+1] = pOff[s] + qs[s].n*ms[s].n*h
	}
	p := a.sc.get(pOff[len(qs)]) // every element written below
	ctx := a.sc.get(nq * w)
	tasks := len(qs) * h
	parFor(tasks, 1, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			s, j := t/h, t%h
			lq, lk := qs[s].n, ms[s].n
			pt := p[pOff[s]+j*lq*lk : pOff[s]+(j+1)*lq*lk]
			qo, ko, co := qs[s].off*ldq+j*dh, ms[s].off*ldm+j*dh, qs[s].off*w+j*dh
			gemm.Small(false, true, lq, lk, dh, q[qo:], ldq, k[ko:], ldm, pt, lk, false)
			hd := a.heads[j]
			causal := hd.causal && lq > 1
			for r := 0; r < lq; r++ {
				row := pt[r*lk : (r+1)*lk]
				valid := lk
				if causal {
					valid = min(lk, r+1)
				}
				softmaxRow(row[:valid], hd.scale)
				clear(row[valid:])
			}
			gemm.Small(false, false, lq, dh, lk, pt, lk, v[ko:], ldm, ctx[co:], w, false)
		}
	})
	y := a.out.forward(ctx, nq)
	a.sc.put(ctx)
	// The projections' own buffers (k and v may lie in q's or v in k's).
	proj := [][]T{q}
	if !within(q, k) {
		proj = append(proj, k)
	}
	if !within(q, v) && !within(k, v) {
		proj = append(proj, v)
	}
	if !train {
		a.sc.put(p)
		a.sc.put(proj...)
		return y, nil
	}
	return y, func(gy, gx, gm []T) {
		// The spans tile the rows: every element of these is written.
		gctx := a.sc.get(nq * w)
		a.out.backwardTo(gctx, w, gy, a.out.out, nq, false)
		// The gradients of queries, keys and values, rows lg apart: side
		// by side in one buffer, as the stacked projections' output,
		// when their input gradient is one product (self-attention).
		var gq, gk, gv, g3 []T
		lg := w
		if self {
			g3, lg = a.sc.get(nq*3*w), 3*w
			gq, gk, gv = g3, g3[w:], g3[2*w:]
		} else {
			gq, gk, gv = a.sc.get(nq*w), a.sc.get(nm*w), a.sc.get(nm*w)
		}
		gp := a.sc.get(len(p))
		parFor(tasks, 1, func(lo, hi int) {
			for t := lo; t < hi; t++ {
				s, j := t/h, t%h
				lq, lk := qs[s].n, ms[s].n
				pt := p[pOff[s]+j*lq*lk : pOff[s]+(j+1)*lq*lk]
				gpt := gp[pOff[s]+j*lq*lk : pOff[s]+(j+1)*lq*lk]
				qo, ko := qs[s].off*ldq+j*dh, ms[s].off*ldm+j*dh // in q; in k and v
				cqo := qs[s].off*w + j*dh                        // in gctx
				gqo, gko := qs[s].off*lg+j*dh, ms[s].off*lg+j*dh // in the gradients
				gemm.Small(false, true, lq, lk, dh, gctx[cqo:], w, v[ko:], ldm, gpt, lk, false)
				gemm.Small(true, false, lk, dh, lq, pt, lk, gctx[cqo:], w, gv[gko:], lg, false)
				scale := a.heads[j].scale
				for r := 0; r < lq; r++ {
					softmaxBackwardRow(pt[r*lk:(r+1)*lk], gpt[r*lk:(r+1)*lk], scale)
				}
				gemm.Small(false, false, lq, dh, lk, gpt, lk, k[ko:], ldm, gq[gqo:], lg, false)
				gemm.Small(true, false, lk, dh, lq, gpt, lk, q[qo:], ldq, gk[gko:], lg, false)
			}
		})
		if g3 != nil {
			// gx (= gm) += [gq gk gv]·[Wq; Wk; Wv], every head at once
			// (the weights stacked in a.qkvBack's order when not packed).
			if a.qkvBack != nil {
				gemm.GemmPacked(false, nq, g3, lg, a.qkvBack, gx, d, true)
			} else {
				wcat := make([]T, 0, 3*w*d)
				for _, part := range []func(fHead[T]) []T{
					func(hd fHead[T]) []T { return hd.q.w },
					func(hd fHead[T]) []T { return hd.k.w },
					func(hd fHead[T]) []T { return hd.v.w },
				} {
					for _, hd := range a.heads {
						wcat = append(wcat, part(hd)...)
					}
				}
				gemm.Gemm(false, false, nq, d, 3*w, g3, lg, wcat, d, gx, d, true)
			}
			a.sc.put(g3)
		} else {
			for j, hd := range a.heads {
				hd.q.backwardTo(gx, d, gq[j*dh:], w, nq, true)
			}
			for j, hd := range a.heads {
				hd.k.backwardTo(gm, d, gk[j*dh:], w, nm, true)
				hd.v.backwardTo(gm, d, gv[j*dh:], w, nm, true)
			}
			a.sc.put(gq, gk, gv)
		}
		a.sc.put(gctx, gp, p)
		a.sc.put(proj...)
	}
}

// spansOf lays sequences of these lengths one after the other.
func spansOf(seqs [][]int) []span {
	ss := make([]span, len(seqs))
	n := 0
	for s, ids := range seqs {
		ss[s] = span{off: n, n: len(ids)}
		n += len(ids)
	}
	return ss
}

func rowsOf(ss []span) int {
	if len(ss) == 0 {
		return 0
	}
	last := ss[len(ss)-1]
	return last.off + last.n
}

// softmaxRow replaces row by softmax(scale·row), as spago's Softmax of
// the scaled scores (float32: vmath.Softmax32, one vector pass fewer).
func softmaxRow[T float](row []T, scale T) {
	if r, ok := any(row).([]float32); ok {
		vmath.Softmax32(r, float32(scale))
		return
	}
	h0, h1 := T(math.Inf(-1)), T(math.Inf(-1))
	i := 0
	for ; i+2 <= len(row); i += 2 {
		q := row[i : i+2 : i+2]
		q[0] *= scale
		q[1] *= scale
		h0, h1 = max(h0, q[0]), max(h1, q[1])
	}
	for ; i < len(row); i++ {
		row[i] *= scale
		h0 = max(h0, row[i])
	}
	hi := max(h0, h1)
	for i := range row {
		row[i] -= hi
	}
	expInPlace(row)
	inv := 1 / sum4(row)
	for i := range row {
		row[i] *= inv
	}
}

// sum4 is the sum of s in four interleaved partial sums (the additions
// are independent, not one chain).
func sum4[T float](s []T) T {
	var a, b, c, d T
	i := 0
	for ; i+4 <= len(s); i += 4 {
		q := s[i : i+4 : i+4]
		a += q[0]
		b += q[1]
		c += q[2]
		d += q[3]
	}
	for ; i < len(s); i++ {
		a += s[i]
	}
	return (a + b) + (c + d)
}

// sqDev4 is the sum of (v − mean)² over s, as sum4.
func sqDev4[T float](s []T, mean T) T {
	var a, b, c, d T
	i := 0
	for ; i+4 <= len(s); i += 4 {
		q := s[i : i+4 : i+4]
		d0, d1, d2, d3 := q[0]-mean, q[1]-mean, q[2]-mean, q[3]-mean
		a += d0 * d0
		b += d1 * d1
		c += d2 * d2
		d += d3 * d3
	}
	for ; i < len(s); i++ {
		dv := s[i] - mean
		a += dv * dv
	}
	return (a + b) + (c + d)
}

// softmaxBackwardRow turns g, the gradient of probabilities p, into the
// gradient of the unscaled scores: scale·p⊙(g − p·g). Masked positions
// have p = 0 and get 0.
func softmaxBackwardRow[T float](p, g []T, scale T) {
	if p32, ok := any(p).([]float32); ok {
		vmath.SoftmaxBackward32(p32, any(g).([]float32), float32(scale))
		return
	}
	var dot T
	for i := range p {
		dot += p[i] * g[i]
	}
	for i := range p {
		g[i] = scale * p[i] * (g[i] - dot)
	}
}

// addInto returns a + b.
//
// b must be a buffer nothing else keeps (a block's fresh output): the sum
// is written over it, unless it is a itself.
func addInto[T float](a, b []T) []T {
	out := b
	if len(a) > 0 && &a[0] == &b[0] {
		out = make([]T, len(a))
	}
	parFor(len(a), elementChunk, func(lo, hi int) {
		o, x, y := out[lo:hi], a[lo:hi], b[lo:hi]
		for i := range o {
			o[i] = x[i] + y[i]
		}
	})
	return out
}

// accInto adds src[i] to dst[i] (len(dst) elements), split over the
// cores when large.
func accInto[T float](dst, src []T) {
	src = src[:len(dst)]
	parFor(len(dst), elementChunk, func(lo, hi int) {
		d, s := dst[lo:hi], src[lo:hi]
		for i := range d {
			d[i] += s[i]
		}
	})
}

// elementChunk is the fewest elements per goroutine of an element-wise
// loop split with parFor.
const elementChunk = 1 << 14
