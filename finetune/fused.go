package finetune

// The fused training forward: a whole batch through a BERT encoder (plus
// the masked-LM transform) or a BART encoder-decoder as one autograd op.
//
// The graph path (graph.go) builds one spago node per token and operation
// (~100 k nodes for 8 × 64 tokens) and backpropagates attention through
// spago's per-query softmax Jacobians. When every weight the forward uses
// is frozen — trainable tokens, or a full fine-tune of the embedding
// tables only — none of that is needed: the batch is one n×d matrix, the
// linear layers are matrix products (internal/gemm), attention is computed
// per sequence and head with a direct softmax backward, and the only
// gradients are those of the embedding rows that require them. The op's
// operands are those rows; its output is the dim×m matrix of hidden states
// at the m positions that carry a loss, which the LogitsFunc consumes.
//
// Values equal the graph path's (and so cybertron's) to float rounding;
// the op is deterministic (products split work by output element only,
// row gradients are summed in position order).

import (
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/attention/multiheadattention"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"
)

func newFAttention[T float](rd reading, m *multiheadattention.Model) (*fAttention[T], bool) {
	if m == nil || len(m.Heads) == 0 || m.OutputMerge == nil {
		return nil, false
	}
	a := &fAttention[T]{}
	for _, h := range m.Heads {
		if h == nil {
			return nil, false
		}
		q, ok1 := newFLinear[T](rd, h.Query)
		k, ok2 := newFLinear[T](rd, h.Key)
		v, ok3 := newFLinear[T](rd, h.Value)
		scale, ok4 := bufferScalar[T](h.ScaleFactor)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, false
		}
		if a.dh == 0 {
			a.dh = q.out
		}
		if q.out != a.dh || k.out != a.dh || v.out != a.dh || k.in != q.in || v.in != q.in {
			return nil, false
		}
		a.heads = append(a.heads, fHead[T]{q: q, k: k, v: v, scale: scale, causal: h.UseCausalMask})
	}
	out, ok := newFLinear[T](rd, m.OutputMerge)
	if !ok || out.in != a.dh*len(a.heads) || out.out != a.heads[0].q.in {
		return nil, false
	}
	a.out = out
	return a, true
}

// fBlock is a residual attention or feed-forward block.
type fBlock[T float] struct {
	att   *fAttention[T] // nil for a feed-forward block
	cross bool
	ffn   []fStep[T]
	norm  fNorm[T]
	pre   bool
}

func attBlock[T float](rd reading, r residualAttention, cross bool) (fBlock[T], bool) {
	a, ok1 := newFAttention[T](rd, r.attention)
	n, ok2 := newFNorm[T](rd, r.norm)
	return fBlock[T]{att: a, cross: cross, norm: n, pre: r.preNorm}, ok1 && ok2
}

func ffBlock[T float](rd reading, r residualFeedForward) (fBlock[T], bool) {
	s, ok1 := newFSteps[T](rd, r.ffn)
	n, ok2 := newFNorm[T](rd, r.norm)
	return fBlock[T]{ffn: s, norm: n, pre: r.preNorm}, ok1 && ok2
}

// memory is what cross-attention blocks attend to, with the gradient they
// send back to it.
type memory[T float] struct {
	x    []T
	ss   []span
	grad []T
}

// forward runs the block on x (rows of sequences qs). x stays the
// caller's; the result and the gradients the backward returns are new
// buffers (from the block's scratch), and the block gives back its own
// intermediates as soon as they are read.
func (b fBlock[T]) forward(x []T, qs []span, mem *memory[T], train bool) ([]T, backFn[T]) {
	n := rowsOf(qs)
	d := len(b.norm.w)
	sc := b.norm.sc
	inner := func(x []T) ([]T, backFn[T]) {
		if b.att == nil {
			return runSteps(b.ffn, x, n, train)
		}
		m, ms := x, qs
		if b.cross {
			m, ms = mem.x, mem.ss
		}
		y, back := b.att.forward(x, qs, m, ms, train)
		if !train {
			return y, nil
		}
		return y, func(gy []T) []T {
			gx := sc.zeros(n * d)
			gm := gx
			if b.cross {
				gm = mem.grad
			}
			back(gy, gx, gm)
			return gx
		}
	}
	if b.pre { // x + f(norm(x))
		nx, nb := b.norm.forward(x, n, train)
		fy, fb := inner(nx)
		if !same(fy, nx) {
			sc.put(nx)
		}
		y := addInto(x, fy)
		if !train {
			return y, nil
		}
		return y, func(gy []T) []T {
			t := fb(gy)
			g := nb(t)
			if !same(t, gy) {
				sc.put(t)
			}
			accInto(g, gy)
			return g
		}
	}
	fy, fb := inner(x) // norm(x + f(x))
	s := addInto(x, fy)
	y, nb := b.norm.forward(s, n, train)
	sc.put(s)
	if !train {
		return y, nil
	}
	return y, func(gy []T) []T {
		gs := nb(gy)
		g := fb(gs)
		if same(g, gs) {
			g = sc.get(len(gs))
			copy(g, gs)
		}
		accInto(g, gs)
		sc.put(gs)
		return g
	}
}

// runBlocks runs blocks in turn and returns the composed backward. x and
// the backward's argument stay the caller's; each block's output goes back
// to the scratch once the next block has read it (likewise gradients).
func runBlocks[T float](blocks []fBlock[T], x []T, qs []span, mem *memory[T], train bool) ([]T, backFn[T]) {
	backs := make([]backFn[T], 0, len(blocks))
	in := x
	for _, b := range blocks {
		y, back := b.forward(x, qs, mem, train)
		if !same(x, in) && !same(x, y) {
			b.norm.sc.put(x)
		}
		x = y
		backs = append(backs, back)
	}
	if !train {
		return x, nil
	}
	return x, func(g []T) []T {
		in := g
		for i := len(backs) - 1; i >= 0; i-- {
			gx := backs[i](g)
			if !same(g, in) && !same(g, gx) {
				blocks[i].norm.sc.put(g)
			}
			g = gx
		}
		return g
	}
}

// rowUse identifies an embedding row.
type rowUse struct {
	table *embedding.Model
	id    int
}

// rowGrads collects the rows that require gradients, in first-use order,
// and where each is used.
type rowGrads[T float] struct {
	index map[rowUse]int
	rows  []*embedding.Embedding
	uses  [][]rowPos[T] // per row: (batch row, factor)
}

// rowPos is one use of a row: its batch row, and the factor its gradient
// gets (BART's embedding scale).
type rowPos[T float] struct {
	at     int
	factor T
}

func newRowGrads[T float]() *rowGrads[T] { return &rowGrads[T]{index: map[rowUse]int{}} }

// lookup returns row id of table e as a slice, recording the use when the
// row requires a gradient.
func (r *rowGrads[T]) lookup(e *embedding.Model, id, at int, factor T) []T {
	w := e.Weights[id]
	if w.RequiresGrad() {
		key := rowUse{e, id}
		k, ok := r.index[key]
		if !ok {
			emb, _ := e.Embedding(id) // id validated by the caller
			k = len(r.rows)
			r.index[key] = k
			r.rows = append(r.rows, emb)
			r.uses = append(r.uses, nil)
		}
		r.uses[k] = append(r.uses[k], rowPos[T]{at: at, factor: factor})
	}
	return mat.Data[T](w.Value())
}

// operands returns the rows as tensors (a fresh slice: spago reads
// Operands lazily).
func (r *rowGrads[T]) operands() []mat.Tensor {
	out := make([]mat.Tensor, len(r.rows))
	for i, e := range r.rows {
		out[i] = e
	}
	return out
}

// accumulate sends every row its gradient, summed in position order, from
// g (the gradient of the batch embedding matrix, n×d).
func (r *rowGrads[T]) accumulate(g []T, d int) {
	for k, e := range r.rows {
		sum := make([]T, d)
		for _, u := range r.uses[k] {
			row := g[u.at*d : (u.at+1)*d]
			for j, v := range row {
				sum[j] += u.factor * v
			}
		}
		e.AccGrad(mat.NewDense[T](mat.WithShape(d, 1), mat.WithBacking(sum)))
	}
}

// fusedOp is the autograd function of a fused forward: operands are the
// embedding rows that require gradients, the output is dim×m.
type fusedOp[T float] struct {
	run    func(train bool) ([]T, func(g []T)) // output rows (m×d), backward from their gradient
	grads  *rowGrads[T]
	dim, m int
	back   func(g []T)
	// sc, when set, takes back run's output rows and the backward's
	// gradient rows once they are read.
	sc *scratch[T]
}

func (o *fusedOp[T]) Operands() []mat.Tensor { return o.grads.operands() }

func (o *fusedOp[T]) Forward() (mat.Tensor, error) {
	train := len(o.grads.rows) > 0
	out, back := o.run(train)
	o.back = back
	t := transpose(out, o.m, o.dim)
	o.sc.put(out)
	return mat.NewDense[T](mat.WithShape(o.dim, o.m), mat.WithBacking(t)), nil
}

func (o *fusedOp[T]) Backward(gy mat.Tensor) error {
	if o.back == nil {
		return nil
	}
	g := transpose(mat.Data[T](gy.(mat.Matrix)), o.dim, o.m)
	back := o.back
	o.back = nil // release the activations
	back(g)
	return nil
}

// transpose returns the c×r transpose of the r×c row-major x.
func transpose[T float](x []T, r, c int) []T {
	out := make([]T, r*c)
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			out[j*r+i] = x[i*c+j]
		}
	}
	return out
}

// newFusedNode builds the op's node.
func newFusedNode[T float](o *fusedOp[T]) mat.Tensor {
	return ag.NewOperator(o).Run()
}

// ---- BERT ----

// fBERT is a BERT encoder (with optional masked-LM transform) whose
// weights are all frozen.
type fBERT[T float] struct {
	m         *bert.Model
	norm      fNorm[T]
	projector *fLinear[T]
	blocks    []fBlock[T]
	transform []fStep[T]
	dim       int
}

// fusedBERTOf returns the fused form of m, or false when it is not
// eligible (a trainable weight, an unsupported module or dtype).
func fusedBERTOf[T float](rd reading, m *bert.Model, head []nn.StandardModel) (*fBERT[T], bool) {
	e := m.Embeddings
	if _, ok := e.Tokens.Weights[0].Value().(*mat.Dense[T]); !ok {
		return nil, false
	}
	norm, ok := newFNorm[T](rd, e.Norm)
	if !ok {
		return nil, false
	}
	f := &fBERT[T]{m: m, norm: norm, dim: len(norm.w)}
	if e.Projector != nil {
		p, ok := newFLinear[T](rd, e.Projector)
		if !ok {
			return nil, false
		}
		f.projector = &p
		f.dim = p.out
	}
	for _, l := range m.Encoder.Layers {
		a, ok1 := attBlock[T](rd, residualAttention{attention: l.SelfAttention.Attention, norm: l.SelfAttention.Norm}, false)
		b, ok2 := ffBlock[T](rd, residualFeedForward{ffn: l.FF.MLP, norm: l.FF.Norm})
		if !ok1 || !ok2 {
			return nil, false
		}
		f.blocks = append(f.blocks, a, b)
	}
	if head != nil {
		t, ok := newFSteps[T](rd, head)
		if !ok {
			return nil, false
		}
		f.transform = t
	}
	if !tablesOf[T](e.Tokens, e.Positions, e.TokenTypes) {
		return nil, false
	}
	return f, true
}

// tablesOf checks every row of the tables is a dense T column (rows are
// read directly).
func tablesOf[T float](tables ...*embedding.Model) bool {
	for _, e := range tables {
		for _, w := range e.Weights {
			if w == nil {
				continue
			}
			if _, ok := w.Value().(*mat.Dense[T]); !ok {
				return false
			}
		}
	}
	return true
}

// maskedLM returns the node of the transformed hidden states (dim×m) at
// the given positions of every sequence, in order.
func (f *fBERT[T]) maskedLM(inputs []bertInput, positions [][]int) mat.Tensor {
	e := f.m.Embeddings
	dIn := e.Tokens.Dim
	grads := newRowGrads[T]()
	var qs []span
	n := 0
	for _, in := range inputs {
		qs = append(qs, span{off: n, n: len(in.ids)})
		n += len(in.ids)
	}
	x0 := make([]T, n*dIn)
	for s, in := range inputs {
		for i, id := range in.ids {
			at := qs[s].off + i
			row := x0[at*dIn : (at+1)*dIn]
			tok := grads.lookup(e.Tokens, id, at, 1)
			pos := grads.lookup(e.Positions, i, at, 1)
			typ := grads.lookup(e.TokenTypes, in.types[i], at, 1)
			for j := range row {
				row[j] = tok[j] + pos[j] + typ[j]
			}
		}
	}
	var at []int
	for s, ps := range positions {
		for _, p := range ps {
			at = append(at, qs[s].off+p)
		}
	}
	sc := f.norm.sc
	op := &fusedOp[T]{grads: grads, dim: f.dim, m: len(at), sc: sc}
	op.run = func(train bool) ([]T, func([]T)) {
		// Every intermediate goes back to sc once read (scratch.go).
		x, nb := f.norm.forward(x0, n, train)
		var pb backFn[T]
		if f.projector != nil {
			p := *f.projector
			px := p.forward(x, n)
			sc.put(x)
			x = px
			pb = func(g []T) []T {
				gx := sc.get(n * p.in)
				p.backwardTo(gx, p.in, g, p.out, n, false)
				return gx
			}
		}
		h, hb := runBlocks(f.blocks, x, qs, nil, train)
		if !same(h, x) {
			sc.put(x)
		}
		d := f.dim
		sel := sc.get(len(at) * d)
		for k, r := range at {
			copy(sel[k*d:(k+1)*d], h[r*d:(r+1)*d])
		}
		sc.put(h)
		y, tb := runSteps(f.transform, sel, len(at), train)
		if !same(y, sel) {
			sc.put(sel)
		}
		if !train {
			return y, nil
		}
		return y, func(g []T) {
			gsel := tb(g)
			gh := sc.zeros(n * d)
			for k, r := range at {
				row := gh[r*d : (r+1)*d]
				for j, v := range gsel[k*d : (k+1)*d] {
					row[j] += v
				}
			}
			if !same(gsel, g) {
				sc.put(gsel)
			}
			gx := hb(gh)
			if !same(gx, gh) {
				sc.put(gh)
			}
			if pb != nil {
				px := pb(gx)
				sc.put(gx)
				gx = px
			}
			g0 := nb(gx)
			sc.put(gx)
			grads.accumulate(g0, dIn)
			sc.put(g0)
		}
	}
	return newFusedNode(op)
}

// fusedMaskedLM returns the fused hidden-state node for the masked-LM
// loss, or nil when the model is not eligible.
func fusedMaskedLM(fwd Forward, m *bert.ModelForMaskedLM, inputs []bertInput, positions [][]int, cache *packCache) mat.Tensor {
	if fwd == ForwardGraph {
		return nil
	}
	head := m.Layers[:len(m.Layers)-1]
	switch m.Bert.Embeddings.Tokens.Weights[0].Value().(type) {
	case *mat.Dense[float32]:
		if f, ok := fusedBERTOf[float32](training, m.Bert, head); ok {
			f.usePacks(cache)
			f.useBackPacks(cache)
			f.useScratch(scratchOf[float32](cache))
			return f.maskedLM(inputs, positions)
		}
	case *mat.Dense[float64]:
		if f, ok := fusedBERTOf[float64](training, m.Bert, head); ok {
			f.usePacks(cache)
			f.useBackPacks(cache)
			f.useScratch(scratchOf[float64](cache))
			return f.maskedLM(inputs, positions)
		}
	}
	return nil
}

// ---- BART ----

type fEmbedder[T float] struct {
	b     bartEmbedder
	scale T
	norm  *fNorm[T]
}

func newFEmbedder[T float](rd reading, b bartEmbedder) (fEmbedder[T], bool) {
	f := fEmbedder[T]{b: b, scale: 1}
	if b.e.Config.ScaleEmbedding {
		s, ok := bufferScalar[T](b.e.ScaleFactor)
		if !ok {
			return f, false
		}
		f.scale = s
	}
	if b.e.Config.NormalizeEmbedding {
		n, ok := newFNorm[T](rd, b.e.Norm)
		if !ok {
			return f, false
		}
		f.norm = &n
	}
	return f, tablesOf[T](b.table, b.e.PositionalEncoder.Embeddings)
}

// embed fills the rows of the sequences (ids per sequence) and returns
// the batch matrix, before the embedding norm.
func (f fEmbedder[T]) embed(seqs [][]int, grads *rowGrads[T], base int) ([]T, []span) {
	pos := f.b.e.PositionalEncoder
	d := f.b.table.Dim
	ss := spansOf(seqs)
	x := make([]T, rowsOf(ss)*d)
	for s, ids := range seqs {
		for i, id := range ids {
			at := ss[s].off + i
			tok := grads.lookup(f.b.table, id, base+at, f.scale)
			p := grads.lookup(pos.Embeddings, i+pos.Config.Offset, base+at, 1)
			row := x[at*d : (at+1)*d]
			for j := range row {
				t := tok[j]
				if f.b.e.Config.ScaleEmbedding {
					t *= f.scale
				}
				row[j] = t + p[j]
			}
		}
	}
	return x, ss
}

type fBART[T float] struct {
	enc, dec           fEmbedder[T]
	encBlocks          []fBlock[T]
	decBlocks          []fBlock[T]
	encFinal, decFinal *fNorm[T]
	dim                int
}

func fusedBARTOf[T float](rd reading, s seq2Seq) (*fBART[T], bool) {
	if _, ok := s.enc.table.Weights[0].Value().(*mat.Dense[T]); !ok {
		return nil, false
	}
	f := &fBART[T]{dim: s.enc.table.Dim}
	var ok bool
	if f.enc, ok = newFEmbedder[T](rd, s.enc.bartEmbedder); !ok {
		return nil, false
	}
	if f.dec, ok = newFEmbedder[T](rd, s.dec.bartEmbedder); !ok {
		return nil, false
	}
	for _, l := range s.enc.layers {
		a, ok1 := attBlock[T](rd, l.self, false)
		b, ok2 := ffBlock[T](rd, l.ff)
		if !ok1 || !ok2 {
			return nil, false
		}
		f.encBlocks = append(f.encBlocks, a, b)
	}
	for _, l := range s.dec.layers {
		a, ok1 := attBlock[T](rd, l.self, false)
		c, ok2 := attBlock[T](rd, l.cross, true)
		b, ok3 := ffBlock[T](rd, l.ff)
		if !ok1 || !ok2 || !ok3 {
			return nil, false
		}
		f.decBlocks = append(f.decBlocks, a, c, b)
	}
	final := func(cfgOn bool, ln *layernorm.Model) (*fNorm[T], bool) {
		if !cfgOn {
			return nil, true
		}
		n, ok := newFNorm[T](rd, ln)
		return &n, ok
	}
	if f.encFinal, ok = final(s.enc.final.Config.FinalLayerNorm, s.enc.final.LayerNorm); !ok {
		return nil, false
	}
	if f.decFinal, ok = final(s.dec.final.Config.FinalLayerNorm, s.dec.final.LayerNorm); !ok {
		return nil, false
	}
	return f, true
}

// normOpt applies an optional norm.
func normOpt[T float](n *fNorm[T], x []T, rows int, train bool) ([]T, backFn[T]) {
	if n == nil {
		return x, func(g []T) []T { return g }
	}
	y, b := n.forward(x, rows, train)
	return y, b
}

// seq2seq returns the node of the decoder's hidden states (dim×total
// decoder positions) for the sources and decoder inputs.
func (f *fBART[T]) seq2seq(sources, decoderInputs [][]int) mat.Tensor {
	grads := newRowGrads[T]()
	d := f.dim
	xe, es := f.enc.embed(sources, grads, 0)
	ne := rowsOf(es)
	// Decoder rows come after the encoder's in the gradient matrix.
	xd, ds := f.dec.embed(decoderInputs, grads, ne)
	nd := rowsOf(ds)
	op := &fusedOp[T]{grads: grads, dim: d, m: nd}
	op.run = func(train bool) ([]T, func([]T)) {
		x, enb := normOpt(f.enc.norm, xe, ne, train)
		x, eb := runBlocks(f.encBlocks, x, es, nil, train)
		x, efb := normOpt(f.encFinal, x, ne, train)
		mem := &memory[T]{x: x, ss: es}
		if train {
			mem.grad = make([]T, ne*d)
		}
		y, dnb := normOpt(f.dec.norm, xd, nd, train)
		y, db := runBlocks(f.decBlocks, y, ds, mem, train)
		y, dfb := normOpt(f.decFinal, y, nd, train)
		if !train {
			return y, nil
		}
		return y, func(g []T) {
			gd := dnb(db(dfb(g)))
			ge := enb(eb(efb(mem.grad)))
			all := make([]T, 0, (ne+nd)*d)
			all = append(append(all, ge...), gd...)
			grads.accumulate(all, d)
		}
	}
	return newFusedNode(op)
}

func fusedSeq2Seq(fwd Forward, s seq2Seq, sources, decoderInputs [][]int, cache *packCache) mat.Tensor {
	if fwd == ForwardGraph {
		return nil
	}
	switch s.enc.table.Weights[0].Value().(type) {
	case *mat.Dense[float32]:
		if f, ok := fusedBARTOf[float32](training, s); ok {
			usePacks(cache, f.encBlocks)
			usePacks(cache, f.decBlocks)
			useBackPacks(cache, f.encBlocks)
			useBackPacks(cache, f.decBlocks)
			useScratch(scratchOf[float32](cache), f.encBlocks)
			useScratch(scratchOf[float32](cache), f.decBlocks)
			return f.seq2seq(sources, decoderInputs)
		}
	case *mat.Dense[float64]:
		if f, ok := fusedBARTOf[float64](training, s); ok {
			usePacks(cache, f.encBlocks)
			usePacks(cache, f.decBlocks)
			useBackPacks(cache, f.encBlocks)
			useBackPacks(cache, f.decBlocks)
			useScratch(scratchOf[float64](cache), f.encBlocks)
			useScratch(scratchOf[float64](cache), f.decBlocks)
			return f.seq2seq(sources, decoderInputs)
		}
	}
	return nil
}
