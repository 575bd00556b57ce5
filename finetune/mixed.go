package finetune

// Mixed batches: one inference pass over a batch whose samples each use
// their own embedding rows (one adapter per sample). The fused forward
// already computes every sequence independently (linear layers and norms
// per row, attention per sequence), so the only per-sample parts are the
// embedding lookups and the output rows of a tied projection. Both go
// through the same code as PredictMaskedLM and GenerateBART: the lookups
// take a per-sample row override (bertBatch.over, fEmbedder.embedSeqs),
// and each sample's logits are the projection's product plus the product
// of its overridden output rows (sampleLogits), computed exactly as
// tying.Logits computes them for one sample.

import (
	"fmt"
	"slices"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
)

// SampleRows are the rows one sample of a mixed batch uses instead of the
// model's own: Input[table][id] replaces row id of an embedding table the
// model reads (BERT's Tokens, Positions, TokenTypes; BART's shared table and
// positional tables), Output[id] replaces row id of the output projection's
// weight (the logits of id for this sample are Output[id]·h + B[id]). Rows
// are dim×1 (or 1×dim) dense matrices of the model's dtype; they are read,
// never kept or changed. A nil or empty SampleRows means the model's own
// rows.
type SampleRows struct {
	Input  map[*embedding.Model]map[int]mat.Matrix
	Output map[int]mat.Matrix
}

// MaskedInput is one sample of a masked-LM inference batch: vocabulary
// terms (as MaskedLMLogits takes them) and the positions whose logits are
// wanted.
type MaskedInput struct {
	Tokens    []string
	Positions []int
}

// MixedMaskedLMLogits runs a batch of masked-LM samples in one fused
// inference pass, sample s with the rows of rows[s] (nil rows: every
// sample uses the model's own rows), and returns per sample its logits,
// vocab × len(Positions) (column j for Positions[j]), as
// MaskedLMLogits(m, tokens, positions, logits) returns them for a model
// that holds those rows: bit for bit when the output projection is the
// model's linear Layers[3] and the overridden output rows are applied as
// tying.Logits applies them.
//
// It is inference: weights that require gradients are read as they are
// (none is computed), the output layer must be a *linear.Model, and m must
// not be changed while the call runs. Errors wrap ErrInvalidInput and name the bad
// sample, id or row; nothing is computed before everything is validated.
func MixedMaskedLMLogits(m *bert.ModelForMaskedLM, batch []MaskedInput, rows []SampleRows) ([]mat.Matrix, error) {
	if err := checkMaskedLM(inference, m); err != nil {
		return nil, err
	}
	if len(batch) == 0 {
		return nil, invalidf("empty batch")
	}
	if rows != nil && len(rows) != len(batch) {
		return nil, invalidf("%d samples but %d SampleRows", len(batch), len(rows))
	}
	out, ok := m.Layers[len(m.Layers)-1].(*linear.Model)
	if !ok {
		return nil, invalidf("mixed batches need a *linear.Model output layer, the model has %T", m.Layers[len(m.Layers)-1])
	}
	inputs := make([]bertInput, len(batch))
	positions := make([][]int, len(batch))
	for s, ex := range batch {
		in, err := bertTokens(m.Bert, ex.Tokens)
		if err != nil {
			return nil, inExample(s, err)
		}
		if err := checkPositions(ex.Positions, len(ex.Tokens)); err != nil {
			return nil, inExample(s, err)
		}
		inputs[s], positions[s] = in, ex.Positions
	}
	e := m.Bert.Embeddings
	tables := []*embedding.Model{e.Tokens, e.Positions, e.TokenTypes}
	head := m.Layers[:len(m.Layers)-1]
	switch e.Tokens.Weights[0].Value().(type) {
	case *mat.Dense[float32]:
		return mixedMaskedLM[float32](m, head, out, tables, inputs, positions, rows)
	case *mat.Dense[float64]:
		return mixedMaskedLM[float64](m, head, out, tables, inputs, positions, rows)
	}
	return nil, invalidf("token table rows are %T, expected a float32 or float64 dense matrix", e.Tokens.Weights[0].Value())
}

func mixedMaskedLM[T float](m *bert.ModelForMaskedLM, head []nn.StandardModel, out *linear.Model, tables []*embedding.Model, inputs []bertInput, positions [][]int, rows []SampleRows) ([]mat.Matrix, error) {
	f, ok := fusedBERTOf[T](inference, m.Bert, head)
	if !ok {
		return nil, invalidf("the model is not eligible for the fused forward (a module or dtype it does not know)")
	}
	over, outRows, err := sampleOverrides[T](rows, len(inputs), tables, out)
	if err != nil {
		return nil, err
	}
	h, at := f.inferMaskedLM(inputs, positions, over)
	return mixedLogits(out, h, f.dim, at, outRows)
}

// checkPositions validates the positions of one sample.
func checkPositions(positions []int, n int) error {
	if len(positions) == 0 {
		return invalidf("no positions")
	}
	seen := map[int]bool{}
	for _, p := range positions {
		if p < 0 || p >= n {
			return invalidf("position %d out of range [0, %d)", p, n)
		}
		if seen[p] {
			return invalidf("position %d listed twice", p)
		}
		seen[p] = true
	}
	return nil
}

// inferMaskedLM is maskedLM's forward without autograd, on the encode
// path of PredictMaskedLM: the transformed hidden states (rows) at the
// positions of every sample, in order, and the number of rows per sample.
func (f *fBERT[T]) inferMaskedLM(inputs []bertInput, positions [][]int, over []map[rowUse][]T) ([]T, []int) {
	b := &bertBatch[T]{}
	for s, in := range inputs {
		var o map[rowUse][]T
		if over != nil {
			o = over[s]
		}
		b.add(in, o)
	}
	var at []int
	counts := make([]int, len(inputs))
	for s, ps := range positions {
		for _, p := range ps {
			at = append(at, b.qs[s].off+p)
		}
		counts[s] = len(ps)
	}
	return f.maskedHidden(f.encode(b), at), counts
}

// MixedConditionalGenerationLogits runs a batch of BART samples (source
// ids and decoder input ids, teacher forcing) in one fused inference pass,
// sample s with the rows of rows[s] (nil rows: the model's own), and
// returns per sample the logits at every decoder position,
// vocab × len(decoderInputs[s]), as ConditionalGenerationLogits returns
// them for a model that holds those rows. Input overrides apply to the
// encoder's and the decoder's lookups alike (BART shares one table).
// Conditions and errors as for MixedMaskedLMLogits; the output is
// m.Projection.
func MixedConditionalGenerationLogits(m *bart.ModelForConditionalGeneration, sources, decoderInputs [][]int, rows []SampleRows) ([]mat.Matrix, error) {
	s, err := seq2SeqOf(inference, m)
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, invalidf("empty batch")
	}
	if len(decoderInputs) != len(sources) {
		return nil, invalidf("%d sources but %d decoder inputs", len(sources), len(decoderInputs))
	}
	if rows != nil && len(rows) != len(sources) {
		return nil, invalidf("%d samples but %d SampleRows", len(sources), len(rows))
	}
	for i := range sources {
		if err := s.enc.checkIDs("source", sources[i]); err != nil {
			return nil, inExample(i, err)
		}
		if err := s.dec.checkIDs("decoder input", decoderInputs[i]); err != nil {
			return nil, inExample(i, err)
		}
	}
	tables := []*embedding.Model{s.enc.table, s.dec.table, s.enc.e.PositionalEncoder.Embeddings, s.dec.e.PositionalEncoder.Embeddings}
	switch s.enc.table.Weights[0].Value().(type) {
	case *mat.Dense[float32]:
		return mixedSeq2Seq[float32](s, m.Projection, tables, sources, decoderInputs, rows)
	case *mat.Dense[float64]:
		return mixedSeq2Seq[float64](s, m.Projection, tables, sources, decoderInputs, rows)
	}
	return nil, invalidf("token table rows are %T, expected a float32 or float64 dense matrix", s.enc.table.Weights[0].Value())
}

func mixedSeq2Seq[T float](s seq2Seq, out *linear.Model, tables []*embedding.Model, sources, decs [][]int, rows []SampleRows) ([]mat.Matrix, error) {
	f, ok := fusedBARTOf[T](inference, s)
	if !ok {
		return nil, invalidf("the model is not eligible for the fused forward (a module or dtype it does not know)")
	}
	if out == nil {
		return nil, invalidf("the model has no Projection")
	}
	over, outRows, err := sampleOverrides[T](rows, len(sources), tables, out)
	if err != nil {
		return nil, err
	}
	xe, es := f.enc.embedSeqs(sources, over)
	ne := rowsOf(es)
	xd, ds := f.dec.embedSeqs(decs, over)
	nd := rowsOf(ds)
	x, _ := normOpt(f.enc.norm, xe, ne, false)
	x, _ = runBlocks(f.encBlocks, x, es, nil, false)
	x, _ = normOpt(f.encFinal, x, ne, false)
	mem := &memory[T]{x: x, ss: es}
	y, _ := normOpt(f.dec.norm, xd, nd, false)
	y, _ = runBlocks(f.decBlocks, y, ds, mem, false)
	y, _ = normOpt(f.decFinal, y, nd, false)
	counts := make([]int, len(decs))
	for i, d := range decs {
		counts[i] = len(d)
	}
	return mixedLogits(out, y, f.dim, counts, outRows)
}

// sampleOverrides validates rows and converts them (convertRows, as the
// SequenceInput rows are converted) to per-sample lookup maps (nil when no
// sample overrides anything) and output rows.
func sampleOverrides[T float](rows []SampleRows, n int, tables []*embedding.Model, out *linear.Model) ([]map[rowUse][]T, []map[int][]T, error) {
	if rows == nil {
		return nil, nil, nil
	}
	known := map[*embedding.Model]bool{}
	for _, t := range tables {
		known[t] = true
	}
	ws := out.W.Value().Shape()
	if len(ws) != 2 {
		return nil, nil, invalidf("output weight shape %v, expected vocab × dim", ws)
	}
	vocab, dim := ws[0], ws[1]
	over := make([]map[rowUse][]T, n)
	outRows := make([]map[int][]T, n)
	for s, r := range rows {
		over[s] = map[rowUse][]T{}
		for e, byID := range r.Input {
			if !known[e] {
				return nil, nil, invalidf("sample %d: SampleRows.Input names an embedding table the model does not read", s)
			}
			in, err := convertRows[T](byID, tableRows(e), e.Dim, false,
				func(id int) string { return fmt.Sprintf("sample %d: input row id %d", s, id) },
				func(id int) string { return fmt.Sprintf("sample %d: input row %d:", s, id) })
			if err != nil {
				return nil, nil, err
			}
			for id, d := range in {
				over[s][rowUse{e, id}] = d
			}
		}
		o, err := convertRows[T](r.Output, vocab, dim, false,
			func(id int) string { return fmt.Sprintf("sample %d: output row id %d", s, id) },
			func(id int) string { return fmt.Sprintf("sample %d: output row %d:", s, id) })
		if err != nil {
			return nil, nil, err
		}
		outRows[s] = o
	}
	return over, outRows, nil
}

// mixedLogits returns per sample the vocab × counts[s] logits of h (rows:
// the hidden states of every sample in order, dim wide), computed by
// sampleLogits as PredictMaskedLM and GenerateBART compute theirs, and
// laid out as MaskedLMLogits returns them.
func mixedLogits[T float](out *linear.Model, h []T, dim int, counts []int, outRows []map[int][]T) ([]mat.Matrix, error) {
	w, ok1 := out.W.Value().(*mat.Dense[T])
	b, ok2 := out.B.Value().(*mat.Dense[T])
	if !ok1 || !ok2 || w.Shape()[1] != dim || b.Size() != w.Shape()[0] {
		return nil, invalidf("output layer W %v / B %v does not match hidden size %d and the model's dtype", out.W.Value().Shape(), out.B.Value().Shape(), dim)
	}
	vocab := w.Shape()[0]
	l := fLinear[T]{w: mat.Data[T](w), b: mat.Data[T](b), out: vocab, in: dim}
	all := sampleLogits(l, h, counts, outRows) // rows × vocab
	res := make([]mat.Matrix, len(counts))
	off := 0
	for s, n := range counts {
		y := transpose(all[off*vocab:(off+n)*vocab], n, vocab)
		res[s] = mat.NewDense[T](mat.WithShape(vocab, n), mat.WithBacking(y))
		off += n
	}
	return res, nil
}

func sortedKeys[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
