package finetune

// Fast inference on the fused forward (fused.go): the batch as one matrix,
// blocked products, no graph. It reads any cybertron BERT/BART model as it
// is at the call — merged, or with a trainabletokens adapter active (the
// adapter's rows are the model's rows then; call inside tm.Do so they
// cannot change meanwhile) — and needs no weight to be frozen.
//
// Per-sequence rows: every input may replace token-embedding rows and
// output-projection rows for itself only (SequenceInput.Rows/OutputRows,
// Seq2SeqInput.Rows/OutputRows), so one batch can run each sequence with
// its own adapter.

import (
	"fmt"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers/wordpiecetokenizer"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/internal/gemm"
)

// SequenceInput is one sequence of a BERT inference batch.
type SequenceInput struct {
	// Tokens are vocabulary terms, [CLS] … [SEP], as cybertron's Predict
	// and Classify take them. The token type switches after every [SEP].
	Tokens []string
	// Positions are the positions whose masked-LM logits are wanted; nil
	// means every "[MASK]" token, as cybertron's Predict. ClassifySequences
	// ignores it (and OutputRows).
	Positions []int
	// Rows, if not nil, replaces token-embedding rows for this sequence
	// only: token id → a row of dim values (a dim×1 or 1×dim matrix of the
	// model's dtype).
	Rows map[int]mat.Tensor
	// OutputRows likewise replaces rows of the masked-LM output projection
	// (the decoder; its bias is kept) for this sequence. For a tied head
	// pass the same map as Rows.
	OutputRows map[int]mat.Tensor
}

// MaskedLMPrediction is the masked-LM output of one sequence.
type MaskedLMPrediction struct {
	// Positions are the predicted positions, in order.
	Positions []int
	// Logits has one row of vocabulary logits per position
	// (len(Positions)×vocab), in the model's dtype.
	Logits mat.Matrix
}

// PredictMaskedLM returns the masked-LM logits of every input at its
// positions: cybertron's ModelForMaskedLM.Predict for a whole batch, on
// the fused forward. Values equal cybertron's to float rounding.
func PredictMaskedLM(m *bert.ModelForMaskedLM, inputs []SequenceInput) ([]MaskedLMPrediction, error) {
	return (*Predictor)(nil).PredictMaskedLM(m, inputs)
}

// Predictor runs the fast inference functions (PredictMaskedLM,
// ClassifySequences, GenerateBART) and keeps the linear weights of the
// models it serves packed for the matrix products between calls, as a
// training Task does: a weight is repacked only when its values change
// (checked at every call with a hash of its values), so repeated calls
// skip the per-call packing. It holds one packed copy of those weights,
// the vocabulary projection included (V×d values: 31 MB for BERT's 30,522
// × 256, 1 GB for 250,000 × 1,024), and reuses its intermediate buffers
// between calls (never the results it returns). A nil *Predictor packs on
// every call, as the package functions do, and keeps nothing. Safe for
// concurrent use.
type Predictor struct{ cache *packCache }

// NewPredictor returns a Predictor with an empty cache.
func NewPredictor() *Predictor { return &Predictor{cache: newPackCache()} }

func (p *Predictor) packs() *packCache {
	if p == nil {
		return nil
	}
	return p.cache
}

// PredictMaskedLM is the package's PredictMaskedLM with p's packed weights.
func (p *Predictor) PredictMaskedLM(m *bert.ModelForMaskedLM, inputs []SequenceInput) ([]MaskedLMPrediction, error) {
	if err := checkMaskedLM(inference, m); err != nil {
		return nil, err
	}
	dec, ok := m.Layers[len(m.Layers)-1].(*linear.Model)
	if !ok || dec == nil || dec.W == nil || dec.B == nil {
		return nil, unsupportedf("masked-LM output layer %T: expected a *linear.Model with weight and bias", m.Layers[len(m.Layers)-1])
	}
	switch m.Bert.Embeddings.Tokens.Weights[0].Value().(type) {
	case *mat.Dense[float32]:
		return predictMaskedLM[float32](m, dec, inputs, p.packs())
	case *mat.Dense[float64]:
		return predictMaskedLM[float64](m, dec, inputs, p.packs())
	}
	return nil, unsupportedf("embedding rows of type %T: expected *mat.Dense[float32] or *mat.Dense[float64]", m.Bert.Embeddings.Tokens.Weights[0].Value())
}

// ClassifySequences returns the classifier logits (labels×1) of every
// input: cybertron's ModelForSequenceClassification.Classify for a whole
// batch, on the fused forward.
func ClassifySequences(m *bert.ModelForSequenceClassification, inputs []SequenceInput) ([]mat.Matrix, error) {
	return (*Predictor)(nil).ClassifySequences(m, inputs)
}

// ClassifySequences is the package's ClassifySequences with p's packed
// weights.
func (p *Predictor) ClassifySequences(m *bert.ModelForSequenceClassification, inputs []SequenceInput) ([]mat.Matrix, error) {
	if err := checkSequenceClassification(inference, m); err != nil {
		return nil, err
	}
	switch m.Bert.Embeddings.Tokens.Weights[0].Value().(type) {
	case *mat.Dense[float32]:
		return classifySequences[float32](m, inputs, p.packs())
	case *mat.Dense[float64]:
		return classifySequences[float64](m, inputs, p.packs())
	}
	return nil, unsupportedf("embedding rows of type %T: expected *mat.Dense[float32] or *mat.Dense[float64]", m.Bert.Embeddings.Tokens.Weights[0].Value())
}

// rowMap converts a per-sequence row replacement map, checking every row.
func rowMap[T float](what string, rs map[int]mat.Tensor, rows, dim int) (map[int][]T, error) {
	return convertRows[T](rs, rows, dim, true,
		func(id int) string { return fmt.Sprintf("%s: token id %d", what, id) },
		func(id int) string { return fmt.Sprintf("%s: row of token id %d", what, id) })
}

// convertRows is the one conversion of replacement rows (id → a row of dim
// values; SequenceInput.Rows/OutputRows, Seq2SeqInput.Rows/OutputRows,
// SampleRows.Input/Output) to slices: every id must be in [0, limit) and
// every row a *mat.Dense[T] of dim values (after Value() when unwrap is
// set). idName and rowName name an id and its row in errors. Nothing is
// copied: the slices alias the rows. An empty map gives nil.
func convertRows[T float, V mat.Tensor](rs map[int]V, limit, dim int, unwrap bool, idName, rowName func(id int) string) (map[int][]T, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	out := make(map[int][]T, len(rs))
	for id, r := range rs {
		if id < 0 || id >= limit {
			return nil, invalidf("%s out of range [0, %d)", idName(id), limit)
		}
		var t mat.Tensor = r
		if unwrap && t != nil {
			t = t.Value()
		}
		d, err := denseRow[T](t, dim)
		if err != nil {
			return nil, invalidf("%s %v", rowName(id), err)
		}
		out[id] = d
	}
	return out, nil
}

// denseRow returns the values of a row that must be a *mat.Dense[T] of
// dim values.
func denseRow[T float](v mat.Tensor, dim int) ([]T, error) {
	if v == nil {
		return nil, fmt.Errorf("is nil")
	}
	d, ok := v.(*mat.Dense[T])
	if !ok {
		var z T
		return nil, fmt.Errorf("is %T, expected *mat.Dense[%T]", v, z)
	}
	if d == nil {
		return nil, fmt.Errorf("is nil")
	}
	if d.Size() != dim {
		return nil, fmt.Errorf("has %d values, expected %d", d.Size(), dim)
	}
	return mat.Data[T](d), nil
}

// rowOf returns row id of table e, or its replacement in over (nil: none).
func rowOf[T float](e *embedding.Model, id int, over map[rowUse][]T) []T {
	if r, ok := over[rowUse{e, id}]; ok {
		return r
	}
	return mat.Data[T](e.Weights[id].Value())
}

// tokenOverrides keys an id-keyed token-row map (rowMap) by the tables it
// replaces rows of (nil stays nil).
func tokenOverrides[T float](rows map[int][]T, tables ...*embedding.Model) map[rowUse][]T {
	if rows == nil {
		return nil
	}
	over := make(map[rowUse][]T, len(rows)*len(tables))
	for _, e := range tables {
		for id, v := range rows {
			over[rowUse{e, id}] = v
		}
	}
	return over
}

// bertBatch is a validated BERT batch.
type bertBatch[T float] struct {
	inputs []bertInput
	qs     []span
	n      int
	// over holds per sequence the rows that replace rows of the embedding
	// tables (nil, or a nil map: the model's own rows). PredictMaskedLM and
	// ClassifySequences replace token rows only; MixedMaskedLMLogits any
	// table's rows.
	over []map[rowUse][]T
}

// add appends one validated sequence with its overrides.
func (b *bertBatch[T]) add(in bertInput, over map[rowUse][]T) {
	b.inputs = append(b.inputs, in)
	b.over = append(b.over, over)
	b.qs = append(b.qs, span{off: b.n, n: len(in.ids)})
	b.n += len(in.ids)
}

func newBERTBatch[T float](m *bert.Model, inputs []SequenceInput) (*bertBatch[T], error) {
	if len(inputs) == 0 {
		return nil, invalidf("no inputs")
	}
	e := m.Embeddings
	b := &bertBatch[T]{}
	for s, in := range inputs {
		if len(in.Tokens) == 0 {
			return nil, invalidf("input %d has no tokens", s)
		}
		bi, err := bertTokens(m, in.Tokens)
		if err != nil {
			return nil, fmt.Errorf("input %d: %w", s, err)
		}
		r, err := rowMap[T](fmt.Sprintf("input %d Rows", s), in.Rows, tableRows(e.Tokens), e.Tokens.Dim)
		if err != nil {
			return nil, err
		}
		b.add(bi, tokenOverrides(r, e.Tokens))
	}
	return b, nil
}

// encode runs the encoder over the batch: n×dim hidden states.
func (f *fBERT[T]) encode(b *bertBatch[T]) []T {
	e := f.m.Embeddings
	dIn := e.Tokens.Dim
	x0 := make([]T, b.n*dIn)
	for s, in := range b.inputs {
		for i, id := range in.ids {
			at := b.qs[s].off + i
			row := x0[at*dIn : (at+1)*dIn]
			tok := rowOf(e.Tokens, id, b.over[s])
			pos := rowOf(e.Positions, i, b.over[s])
			typ := rowOf(e.TokenTypes, in.types[i], b.over[s])
			for j := range row {
				row[j] = tok[j] + pos[j] + typ[j]
			}
		}
	}
	x, _ := f.norm.forward(x0, b.n, false)
	if f.projector != nil {
		x = f.projector.forward(x, b.n)
	}
	h, _ := runBlocks(f.blocks, x, b.qs, nil, false)
	return h
}

// maskedHidden returns the masked-LM head's transform of the hidden states
// h (n×dim, from encode) at batch rows at: len(at)×dim.
func (f *fBERT[T]) maskedHidden(h []T, at []int) []T {
	d := f.dim
	sel := make([]T, len(at)*d)
	for k, r := range at {
		copy(sel[k*d:(k+1)*d], h[r*d:(r+1)*d])
	}
	y, _ := runSteps(f.transform, sel, len(at), false)
	return y
}

func predictMaskedLM[T float](m *bert.ModelForMaskedLM, dec *linear.Model, inputs []SequenceInput, cache *packCache) ([]MaskedLMPrediction, error) {
	f, ok := fusedBERTOf[T](inference, m.Bert, m.Layers[:len(m.Layers)-1])
	if !ok {
		return nil, unsupportedf("BERT model has a module or dtype the fused forward does not support")
	}
	f.usePacks(cache)
	f.useScratch(scratchOf[T](cache)) // intermediates reused across calls
	head, ok := newFLinear[T](inference, dec)
	if !ok || head.in != f.dim {
		return nil, unsupportedf("masked-LM output layer does not match the hidden size %d", f.dim)
	}
	if cache != nil {
		head.pk = packedT(cache, &head)
	}
	b, err := newBERTBatch[T](m.Bert, inputs)
	if err != nil {
		return nil, err
	}
	outs := make([]map[int][]T, len(inputs))
	for s, in := range inputs {
		if outs[s], err = rowMap[T](fmt.Sprintf("input %d OutputRows", s), in.OutputRows, head.out, head.in); err != nil {
			return nil, err
		}
	}
	positions := make([][]int, len(inputs))
	var at []int
	for s, in := range inputs {
		ps := in.Positions
		if ps == nil {
			ps = []int{}
			for i, t := range in.Tokens {
				if t == wordpiecetokenizer.DefaultMaskToken {
					ps = append(ps, i)
				}
			}
		}
		seen := map[int]bool{}
		for _, p := range ps {
			if p < 0 || p >= len(in.Tokens) {
				return nil, invalidf("input %d: position %d out of range [0, %d)", s, p, len(in.Tokens))
			}
			if seen[p] {
				return nil, invalidf("input %d: position %d listed twice", s, p)
			}
			seen[p] = true
			at = append(at, b.qs[s].off+p)
		}
		positions[s] = append([]int(nil), ps...)
	}
	counts := make([]int, len(positions))
	for s, ps := range positions {
		counts[s] = len(ps)
	}
	logits := sampleLogits(head, f.maskedHidden(f.encode(b), at), counts, outs)
	out := make([]MaskedLMPrediction, len(inputs))
	k := 0
	for s, ps := range positions {
		v := head.out
		l := logits[k*v : (k+len(ps))*v : (k+len(ps))*v]
		out[s] = MaskedLMPrediction{Positions: ps, Logits: mat.NewDense[T](mat.WithShape(len(ps), v), mat.WithBacking(l))}
		k += len(ps)
	}
	return out, nil
}

// vocabLogits returns y·Wᵀ + b (rows×out) for an output projection l
// (W out×in, out the vocabulary). With Wᵀ packed (a Predictor's cache)
// it is one product; otherwise it computes W·yᵀ so that the GEMM reads W
// in place (nothing vocabulary-sized is packed per call; the few rows of
// y are), then transposes the out×rows result in blocks, adding the bias.
// Both compute every element by the same operations.
func vocabLogits[T float](l fLinear[T], y []T, rows int) []T {
	out := make([]T, rows*l.out)
	if rows == 0 {
		return out
	}
	if l.pk != nil {
		l.forwardTo(out, l.out, y, l.in, rows)
		return out
	}
	// tmp = b·1ᵀ + W·yᵀ (out×rows): the bias first, as forwardTo adds it.
	tmp := make([]T, l.out*rows)
	parFor(l.out, max(1, elementChunk/rows), func(lo, hi int) {
		for v := lo; v < hi; v++ {
			r := tmp[v*rows : (v+1)*rows]
			for i := range r {
				r[i] = l.b[v]
			}
		}
	})
	gemm.Gemm(false, true, l.out, rows, l.in, l.w, l.in, y, l.in, tmp, rows, true)
	const blk = 64
	parFor((l.out+blk-1)/blk, 16, func(b0, b1 int) {
		for v0 := b0 * blk; v0 < min(l.out, b1*blk); v0 += blk {
			v1 := min(l.out, v0+blk)
			r := 0
			for ; r+4 <= rows; r += 4 { // four rows per pass: 4 contiguous reads per v
				d0 := out[r*l.out+v0 : r*l.out+v1]
				d1 := out[(r+1)*l.out+v0 : (r+1)*l.out+v1]
				d2 := out[(r+2)*l.out+v0 : (r+2)*l.out+v1]
				d3 := out[(r+3)*l.out+v0 : (r+3)*l.out+v1]
				d1, d2, d3 = d1[:len(d0)], d2[:len(d0)], d3[:len(d0)]
				for i := range d0 {
					src := tmp[(v0+i)*rows+r : (v0+i)*rows+r+4 : (v0+i)*rows+r+4]
					d0[i], d1[i], d2[i], d3[i] = src[0], src[1], src[2], src[3]
				}
			}
			for ; r < rows; r++ {
				dst := out[r*l.out+v0 : r*l.out+v1]
				for i := range dst {
					dst[i] = tmp[(v0+i)*rows+r]
				}
			}
		}
	})
	return out
}

// sampleLogits is vocabLogits for a batch of samples with their own output
// rows: sample s owns counts[s] consecutive rows of y, and the logits of
// every id in outRows[s] (outRows nil: none) are recomputed from its own
// row as tying.Logits computes them for the sample alone: one k×in by
// in×counts[s] product of its rows (in id order) onto the bias. gemm
// computes every element by the same operations whatever the shape or
// operand layout, so each sample's values are bit for bit those of the
// sample run alone. Both PredictMaskedLM/GenerateBART and the Mixed*
// functions compute their logits here.
func sampleLogits[T float](l fLinear[T], y []T, counts []int, outRows []map[int][]T) []T {
	total := 0
	for _, n := range counts {
		total += n
	}
	logits := vocabLogits(l, y, total)
	off := 0
	for s, n := range counts {
		if outRows != nil && len(outRows[s]) > 0 && n > 0 {
			ids := sortedKeys(outRows[s])
			r := make([]T, 0, len(ids)*l.in)
			for _, id := range ids {
				r = append(r, outRows[s][id]...)
			}
			yk := make([]T, len(ids)*n) // bias first, as vocabLogits
			for k, id := range ids {
				for c := range n {
					yk[k*n+c] = l.b[id]
				}
			}
			gemm.Gemm(false, true, len(ids), n, l.in, r, l.in, y[off*l.in:], l.in, yk, n, true)
			for k, id := range ids {
				for c, v := range yk[k*n : (k+1)*n] {
					logits[(off+c)*l.out+id] = v
				}
			}
		}
		off += n
	}
	return logits
}

func classifySequences[T float](m *bert.ModelForSequenceClassification, inputs []SequenceInput, cache *packCache) ([]mat.Matrix, error) {
	f, ok := fusedBERTOf[T](inference, m.Bert, nil)
	if !ok {
		return nil, unsupportedf("BERT model has a module or dtype the fused forward does not support")
	}
	pool, ok1 := newFSteps[T](inference, m.Bert.Pooler.Model)
	cls, ok2 := newFLinear[T](inference, m.Classifier)
	if !ok1 || !ok2 || cls.in != f.dim {
		return nil, unsupportedf("BERT pooler or classifier is not supported by the fused forward")
	}
	f.usePacks(cache)
	f.useScratch(scratchOf[T](cache)) // intermediates reused across calls
	usePacks(cache, nil, pool)
	if cache != nil {
		cls.pk = packedT(cache, &cls)
	}
	b, err := newBERTBatch[T](m.Bert, inputs)
	if err != nil {
		return nil, err
	}
	h := f.encode(b)
	d := f.dim
	first := make([]T, len(inputs)*d)
	for s, q := range b.qs {
		copy(first[s*d:(s+1)*d], h[q.off*d:(q.off+1)*d])
	}
	p, _ := runSteps(pool, first, len(inputs), false)
	y := cls.forward(p, len(inputs))
	out := make([]mat.Matrix, len(inputs))
	for s := range out {
		out[s] = mat.NewDense[T](mat.WithShape(cls.out, 1), mat.WithBacking(y[s*cls.out:(s+1)*cls.out:(s+1)*cls.out]))
	}
	return out, nil
}

// ---- BART ----

// Seq2SeqInput is one source of a BART generation batch.
type Seq2SeqInput struct {
	// Source are the token ids of the source, <s> … </s>.
	Source []int
	// Rows, if not nil, replaces rows of the shared token table (encoder
	// and decoder inputs) for this sequence only: token id → dim values.
	Rows map[int]mat.Tensor
	// OutputRows replaces rows of the output Projection (bias kept) for
	// this sequence; for BART's tied head pass the same map as Rows.
	OutputRows map[int]mat.Tensor
}

// GenerateOptions controls GenerateBART.
type GenerateOptions struct {
	// MaxLength caps the generated ids (decoder start token included);
	// 0 means the model config's max_length, or max_position_embeddings
	// when that is unset or larger.
	MaxLength int
}

// GenerateBART decodes every source greedily, as cybertron's own BART
// inference would step by step (Encoder.Encode, Decoder.Decode,
// Projection, PadMask): starting from decoder_start_token_id, forcing
// bos_token after it when the config asks for it
// (force_bos_token_to_be_generated), stopping at eos_token or the maximum
// length. It encodes the batch once and keeps each decoder layer's keys and
// values (self- and cross-attention), so every step costs one position.
// It returns the generated ids of each source, decoder start included.
func GenerateBART(m *bart.ModelForConditionalGeneration, inputs []Seq2SeqInput, opts GenerateOptions) ([][]int, error) {
	return (*Predictor)(nil).GenerateBART(m, inputs, opts)
}

// GenerateBART is the package's GenerateBART with p's packed weights.
func (p *Predictor) GenerateBART(m *bart.ModelForConditionalGeneration, inputs []Seq2SeqInput, opts GenerateOptions) ([][]int, error) {
	return generateBART(m, inputs, opts, nil, p.packs())
}

// generateBART is GenerateBART; onLogits, if set, sees every step's
// logits (before the pad mask) of every sequence still decoding.
func generateBART(m *bart.ModelForConditionalGeneration, inputs []Seq2SeqInput, opts GenerateOptions, onLogits func(seq, step int, logits []float64), cache *packCache) ([][]int, error) {
	s, err := seq2SeqOf(inference, m)
	if err != nil {
		return nil, err
	}
	if opts.MaxLength < 0 {
		return nil, invalidf("MaxLength %d is negative", opts.MaxLength)
	}
	if len(inputs) == 0 {
		return nil, invalidf("no inputs")
	}
	for i, in := range inputs {
		if len(in.Source) == 0 {
			return nil, invalidf("input %d has no source ids", i)
		}
		if err := s.enc.checkIDs(fmt.Sprintf("input %d source", i), in.Source); err != nil {
			return nil, err
		}
	}
	switch s.enc.table.Weights[0].Value().(type) {
	case *mat.Dense[float32]:
		return generate[float32](m, s, inputs, opts, onLogits, cache)
	case *mat.Dense[float64]:
		return generate[float64](m, s, inputs, opts, onLogits, cache)
	}
	return nil, unsupportedf("embedding rows of type %T: expected *mat.Dense[float32] or *mat.Dense[float64]", s.enc.table.Weights[0].Value())
}

// embedRow writes one BART embedding row (scaled token + position) into
// dst, with the rows of over replacing the tables' own.
func (f fEmbedder[T]) embedRow(dst []T, id, pos int, over map[rowUse][]T) {
	p := f.b.e.PositionalEncoder
	tok := rowOf(f.b.table, id, over)
	pr := rowOf(p.Embeddings, pos+p.Config.Offset, over)
	for j := range dst {
		t := tok[j]
		if f.b.e.Config.ScaleEmbedding {
			t *= f.scale
		}
		dst[j] = t + pr[j]
	}
}

// embedSeqs embeds whole sequences for inference (GenerateBART's encoder,
// MixedConditionalGenerationLogits), sequence s with the rows of over[s]
// (over nil: the model's own): n×dim rows and the sequences' spans.
func (f fEmbedder[T]) embedSeqs(seqs [][]int, over []map[rowUse][]T) ([]T, []span) {
	d := f.b.table.Dim
	ss := spansOf(seqs)
	x := make([]T, rowsOf(ss)*d)
	for s, ids := range seqs {
		var o map[rowUse][]T
		if over != nil {
			o = over[s]
		}
		for p, id := range ids {
			at := ss[s].off + p
			f.embedRow(x[at*d:(at+1)*d], id, p, o)
		}
	}
	return x, ss
}

// kv holds keys and values of one attention over one sequence: rows of
// all heads side by side (t×w each).
type kv[T float] struct{ k, v []T }

// project returns x's keys and values (n rows) for every head.
func (a *fAttention[T]) project(x []T, n int) kv[T] {
	_, k, v, _, ld := a.projections(nil, 0, x, n, false)
	return a.kvOf(k, v, ld, n)
}

// selfProject returns the queries of x (n rows, ldq apart) and its keys
// and values, for self-attention.
func (a *fAttention[T]) selfProject(x []T, n int) (q []T, ldq int, c kv[T]) {
	q, k, v, ldq, ld := a.projections(x, n, x, n, true)
	return q, ldq, a.kvOf(k, v, ld, n)
}

// kvOf is the kv of n rows of keys and values ld apart.
func (a *fAttention[T]) kvOf(k, v []T, ld, n int) kv[T] {
	w := len(a.heads) * a.dh
	if ld == w {
		return kv[T]{k: k[:n*w], v: v[:n*w]}
	}
	c := kv[T]{k: make([]T, n*w), v: make([]T, n*w)}
	for r := 0; r < n; r++ {
		copy(c.k[r*w:(r+1)*w], k[r*ld:])
		copy(c.v[r*w:(r+1)*w], v[r*ld:])
	}
	return c
}

// attendOne is the attention of one query row per sequence over that
// sequence's keys and values: b×d in, b×d out.
func (a *fAttention[T]) attendOne(x []T, caches []*kv[T]) []T {
	q, _, _, ldq, _ := a.projections(x, len(caches), nil, 0, false)
	return a.attendQ(q, ldq, caches)
}

// attendQ is attendOne from the queries (one row per sequence, ldq apart).
func (a *fAttention[T]) attendQ(q []T, ldq int, caches []*kv[T]) []T {
	b := len(caches)
	h, dh := len(a.heads), a.dh
	w := h * dh
	ctx := make([]T, b*w)
	parFor(b*h, 1, func(lo, hi int) {
		var scores []T
		for task := lo; task < hi; task++ {
			s, j := task/h, task%h
			c := caches[s]
			t := len(c.k) / w
			if cap(scores) < t {
				scores = make([]T, t)
			}
			sc := scores[:t]
			qv := q[s*ldq+j*dh : s*ldq+(j+1)*dh]
			for r := range sc {
				kr := c.k[r*w+j*dh : r*w+(j+1)*dh]
				var dot T
				for i, v := range qv {
					dot += v * kr[i]
				}
				sc[r] = dot
			}
			softmaxRow(sc, a.heads[j].scale)
			out := ctx[s*w+j*dh : s*w+(j+1)*dh]
			for r, p := range sc {
				vr := c.v[r*w+j*dh : r*w+(j+1)*dh]
				for i, v := range vr {
					out[i] += p * v
				}
			}
		}
	})
	return a.out.forward(ctx, b)
}

// stepBlock runs a residual block on one row per sequence, with att the
// attention (nil for a feed-forward block).
func (b fBlock[T]) stepBlock(x []T, rows int, att func(nx []T) []T) []T {
	inner := func(x []T) []T {
		if b.att == nil {
			y, _ := runSteps(b.ffn, x, rows, false)
			return y
		}
		return att(x)
	}
	if b.pre {
		nx, _ := b.norm.forward(x, rows, false)
		return addInto(x, inner(nx))
	}
	y, _ := b.norm.forward(addInto(x, inner(x)), rows, false)
	return y
}

func generate[T float](m *bart.ModelForConditionalGeneration, s seq2Seq, inputs []Seq2SeqInput, opts GenerateOptions, onLogits func(seq, step int, logits []float64), cache *packCache) ([][]int, error) {
	f, ok := fusedBARTOf[T](inference, s)
	if !ok {
		return nil, unsupportedf("BART model has a module or dtype the fused forward does not support")
	}
	usePacks(cache, f.encBlocks)
	usePacks(cache, f.decBlocks)
	proj, ok := newFLinear[T](inference, m.Projection)
	if ok && cache != nil {
		proj.pk = packedT(cache, &proj)
	}
	if !ok || proj.in != f.dim {
		return nil, unsupportedf("BART Projection does not match d_model %d", f.dim)
	}
	d, vocab := f.dim, proj.out
	tableN := tableRows(s.enc.table)
	rows := make([]map[rowUse][]T, len(inputs))
	outs := make([]map[int][]T, len(inputs))
	for i, in := range inputs {
		r, err := rowMap[T](fmt.Sprintf("input %d Rows", i), in.Rows, tableN, d)
		if err != nil {
			return nil, err
		}
		rows[i] = tokenOverrides(r, s.enc.table, s.dec.table)
		if outs[i], err = rowMap[T](fmt.Sprintf("input %d OutputRows", i), in.OutputRows, vocab, d); err != nil {
			return nil, err
		}
	}
	var pad []float64
	if m.PadMask != nil && m.PadMask.Value() != nil {
		if pm, ok := m.PadMask.Value().(mat.Matrix); ok && pm.Size() == vocab {
			pad = pm.Data().F64()
		}
	}
	cfg := m.Bart.Config
	maxLen := opts.MaxLength
	if maxLen == 0 {
		maxLen = cfg.MaxLength
	}
	if limit := s.dec.maxLen(); maxLen <= 0 || maxLen > limit {
		maxLen = limit
	}
	if cfg.DecoderStartTokenID < 0 || cfg.DecoderStartTokenID >= tableN {
		return nil, invalidf("decoder_start_token_id %d out of range [0, %d)", cfg.DecoderStartTokenID, tableN)
	}
	outIDs := make([][]int, len(inputs))
	for i := range inputs {
		outIDs[i] = []int{cfg.DecoderStartTokenID}
	}
	if maxLen <= 1 {
		return outIDs, nil
	}

	// Encoder, whole batch.
	sources := make([][]int, len(inputs))
	for i, in := range inputs {
		sources[i] = in.Source
	}
	xe, es := f.enc.embedSeqs(sources, rows)
	ne := rowsOf(es)
	x, _ := normOpt(f.enc.norm, xe, ne, false)
	x, _ = runBlocks(f.encBlocks, x, es, nil, false)
	x, _ = normOpt(f.encFinal, x, ne, false)

	layers := len(f.decBlocks) / 3
	self := make([][]*kv[T], layers)  // [layer][seq]
	cross := make([][]*kv[T], layers) // [layer][seq]
	for l := 0; l < layers; l++ {
		att := f.decBlocks[3*l+1].att
		all := att.project(x, ne)
		w := len(att.heads) * att.dh
		self[l] = make([]*kv[T], len(inputs))
		cross[l] = make([]*kv[T], len(inputs))
		for i, sp := range es {
			cross[l][i] = &kv[T]{k: all.k[sp.off*w : (sp.off+sp.n)*w], v: all.v[sp.off*w : (sp.off+sp.n)*w]}
			self[l][i] = &kv[T]{}
		}
	}

	active := make([]int, len(inputs)) // sequences still decoding
	for i := range inputs {
		active[i] = i
	}
	forceBOS := cfg.ForceBosTokenToBeGenerated && cfg.BosTokenID >= 0 && cfg.BosTokenID < vocab
	for step := 0; len(active) > 0; step++ {
		// Feed the last id of every active sequence at position step.
		b := len(active)
		y := make([]T, b*d)
		for r, i := range active {
			ids := outIDs[i]
			f.dec.embedRow(y[r*d:(r+1)*d], ids[len(ids)-1], step, rows[i])
		}
		y, _ = normOpt(f.dec.norm, y, b, false)
		for l := 0; l < layers; l++ {
			sb, cb, fb := f.decBlocks[3*l], f.decBlocks[3*l+1], f.decBlocks[3*l+2]
			sc := make([]*kv[T], b)
			cc := make([]*kv[T], b)
			for r, i := range active {
				sc[r], cc[r] = self[l][i], cross[l][i]
			}
			y = sb.stepBlock(y, b, func(nx []T) []T {
				q, ldq, nw := sb.att.selfProject(nx, b)
				w := len(sb.att.heads) * sb.att.dh
				for r := range sc {
					sc[r].k = append(sc[r].k, nw.k[r*w:(r+1)*w]...)
					sc[r].v = append(sc[r].v, nw.v[r*w:(r+1)*w]...)
				}
				return sb.att.attendQ(q, ldq, sc)
			})
			y = cb.stepBlock(y, b, func(nx []T) []T { return cb.att.attendOne(nx, cc) })
			y = fb.stepBlock(y, b, nil)
		}
		y, _ = normOpt(f.decFinal, y, b, false)
		ones := make([]int, b)
		stepOuts := make([]map[int][]T, b)
		for r, i := range active {
			ones[r], stepOuts[r] = 1, outs[i]
		}
		logits := sampleLogits(proj, y, ones, stepOuts)
		next := active[:0]
		for r, i := range active {
			l := logits[r*vocab : (r+1)*vocab]
			if onLogits != nil {
				lf := make([]float64, vocab)
				for j, v := range l {
					lf[j] = float64(v)
				}
				onLogits(i, step, lf)
			}
			var id int
			if len(outIDs[i]) == 1 && forceBOS {
				id = cfg.BosTokenID
			} else {
				best, bv := -1, 0.0
				for j, v := range l {
					x := float64(v)
					if pad != nil {
						x += pad[j]
					}
					if best < 0 || x > bv {
						best, bv = j, x
					}
				}
				id = best
			}
			outIDs[i] = append(outIDs[i], id)
			if id != cfg.EosTokenID && len(outIDs[i]) < maxLen {
				next = append(next, i)
			}
		}
		active = next
	}
	return outIDs, nil
}
