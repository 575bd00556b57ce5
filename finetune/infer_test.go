package finetune_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/mat/float"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/trainabletokens"
)

func inputsOf(sentences [][]string) []finetune.SequenceInput {
	in := make([]finetune.SequenceInput, len(sentences))
	for i, s := range sentences {
		in[i] = finetune.SequenceInput{Tokens: s}
	}
	return in
}

// rowDiff is the largest |got[k, :] - want| over a prediction row k.
func rowDiff(t *testing.T, logits mat.Matrix, k int, want mat.Tensor) float64 {
	t.Helper()
	v := logits.Shape()[1]
	got := rows.Get(logits, k, v)
	w := want.Value().Data().F64()
	require.Len(t, w, v)
	worst := 0.0
	for i := range got {
		worst = math.Max(worst, math.Abs(got[i]-w[i]))
	}
	return worst
}

func TestPredictMaskedLMMatchesCybertron(t *testing.T) {
	for _, tt := range []struct {
		name      string
		model     func(t testing.TB) *bert.ModelForMaskedLM
		sentences [][]string
	}{
		{"fresh float32", func(testing.TB) *bert.ModelForMaskedLM { return tinyBERT[float32](1) }, bertSentences},
		{"fresh float64", func(testing.TB) *bert.ModelForMaskedLM { return tinyBERT[float64](1) }, bertSentences},
		{"gob round trip", func(t testing.TB) *bert.ModelForMaskedLM { return loaded(t, roundTrip(t, tinyBERT[float32](1))) }, bertSentences},
		{"testdata bert-tiny", func(t testing.TB) *bert.ModelForMaskedLM { return testmodels.BERT(t) }, [][]string{
			{"[CLS]", "the", "[MASK]", "sat", "on", "the", "table", ".", "[SEP]"},
			{"[CLS]", "[MASK]", "[SEP]", "the", "[SEP]"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.model(t)
			// One batch of all sentences, positions from the [MASK]s.
			got, err := finetune.PredictMaskedLM(m, inputsOf(tt.sentences))
			require.NoError(t, err)
			require.Len(t, got, len(tt.sentences))
			worst := 0.0
			for s, tokens := range tt.sentences {
				want := m.Predict(tokens)
				require.Equal(t, maskPositions(tokens), got[s].Positions)
				for k, p := range got[s].Positions {
					worst = max(worst, rowDiff(t, got[s].Logits, k, want[p]))
				}
			}
			t.Logf("max |diff| against Predict: %.3g", worst)
			assert.LessOrEqual(t, worst, forwardTolerance)
		})
	}
}

func TestPredictMaskedLMExplicitPositions(t *testing.T) {
	m := tinyBERT[float32](1)
	tokens := bertSentences[0]
	got, err := finetune.PredictMaskedLM(m, []finetune.SequenceInput{{Tokens: tokens, Positions: []int{5, 0}}})
	require.NoError(t, err)
	require.Equal(t, []int{5, 0}, got[0].Positions)
	h := m.Bert.EncodeTokens(tokens)
	for k, p := range []int{5, 0} {
		assert.LessOrEqual(t, rowDiff(t, got[0].Logits, k, m.Layers.Forward(h[p])[0]), forwardTolerance)
	}
	// No [MASK] and no positions: an empty prediction, not an error.
	got, err = finetune.PredictMaskedLM(m, []finetune.SequenceInput{{Tokens: []string{"[CLS]", "the", "[SEP]"}}})
	require.NoError(t, err)
	assert.Empty(t, got[0].Positions)
	assert.Equal(t, 0, got[0].Logits.Shape()[0])
}

// setRow overwrites one row of a table (or linear weight) with values.
func setRow[T float.DType](t *testing.T, data []T, id, dim int, values []T) []T {
	t.Helper()
	old := append([]T(nil), data[id*dim:(id+1)*dim]...)
	copy(data[id*dim:(id+1)*dim], values)
	return old
}

// forced waits for every value: spago computes op values asynchronously,
// so a value read after the model changes could see the change.
func forced(ps map[int]mat.Tensor) map[int]mat.Tensor {
	for _, p := range ps {
		p.Value()
	}
	return ps
}

// Rows given for one sequence act as if the model held them, for that
// sequence only.
func TestPredictMaskedLMPerSequenceRows(t *testing.T) {
	m := tinyBERT[float32](1)
	dim := m.Bert.Embeddings.Tokens.Dim
	id, _ := m.Bert.Embeddings.Vocab.ID("cat")
	row := make([]float32, dim)
	for i := range row {
		row[i] = float32(i%5) * 0.3
	}
	r := mat.NewDense[float32](mat.WithShape(dim, 1), mat.WithBacking(row))
	sentences := [][]string{bertSentences[0], bertSentences[0]} // "the cat [MASK] ..."
	in := inputsOf(sentences)
	in[0].Rows = map[int]mat.Tensor{id: r}
	in[0].OutputRows = map[int]mat.Tensor{id: r}
	got, err := finetune.PredictMaskedLM(m, in)
	require.NoError(t, err)

	plain := forced(m.Predict(sentences[1]))
	// The same rows written into the model (token table and decoder).
	tok := mat.Data[float32](m.Bert.Embeddings.Tokens.Weights[id].Value())
	oldTok := append([]float32(nil), tok...)
	copy(tok, row)
	dec := m.Layers[len(m.Layers)-1].(*linear.Model)
	oldDec := setRow(t, mat.Data[float32](dec.W.Value()), id, dim, row)
	swapped := forced(m.Predict(sentences[0]))
	copy(tok, oldTok)
	setRow(t, mat.Data[float32](dec.W.Value()), id, dim, oldDec)

	p := got[0].Positions[0]
	assert.LessOrEqual(t, rowDiff(t, got[0].Logits, 0, swapped[p]), forwardTolerance, "sequence with its own rows")
	assert.LessOrEqual(t, rowDiff(t, got[1].Logits, 0, plain[p]), forwardTolerance, "sequence without")
	assert.Greater(t, rowDiff(t, got[0].Logits, 0, plain[p]), 1e-3, "the rows must change the output")
}

// An active trainable-tokens adapter is what the model computes with: the
// fast path gives what cybertron's Predict gives inside Do.
func TestPredictMaskedLMWithActiveAdapter(t *testing.T) {
	m := testmodels.BERT(t)
	vocab := m.Bert.Embeddings.Vocab
	ids := []int{}
	for _, w := range []string{"the", "table"} {
		id, ok := vocab.ID(w)
		require.True(t, ok)
		ids = append(ids, id)
	}
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: ids}, "")
	require.NoError(t, err)
	for _, p := range tm.TrainableParams() {
		d := mat.Data[float32](p.Value())
		for i := range d {
			d[i] += 0.25
		}
	}
	tokens := []string{"[CLS]", "the", "[MASK]", "sat", "on", "the", "table", ".", "[SEP]"}
	require.NoError(t, tm.Do(func() error {
		got, err := finetune.PredictMaskedLM(m, inputsOf([][]string{tokens}))
		require.NoError(t, err)
		want := m.Predict(tokens)
		assert.LessOrEqual(t, rowDiff(t, got[0].Logits, 0, want[2]), forwardTolerance)
		return nil
	}))
}

func TestClassifySequencesMatchesCybertron(t *testing.T) {
	for _, m := range []*bert.ModelForSequenceClassification{tinyBERTClassifier[float32](2), loaded(t, roundTrip(t, tinyBERTClassifier[float32](2)))} {
		got, err := finetune.ClassifySequences(m, inputsOf(bertSentences))
		require.NoError(t, err)
		require.Len(t, got, len(bertSentences))
		for s, tokens := range bertSentences {
			assert.LessOrEqual(t, maxAbsDiff(t, got[s], m.Classify(tokens)), forwardTolerance)
		}
	}
}

func TestInferenceErrors(t *testing.T) {
	m := tinyBERT[float32](1)
	dim := m.Bert.Embeddings.Tokens.Dim
	good := mat.NewDense[float32](mat.WithShape(dim, 1))
	for _, tt := range []struct {
		name string
		in   []finetune.SequenceInput
		want string
	}{
		{"no inputs", nil, "no inputs"},
		{"no tokens", []finetune.SequenceInput{{}}, "no tokens"},
		{"unknown token", []finetune.SequenceInput{{Tokens: []string{"[CLS]", "zebra"}}}, "zebra"},
		{"position out of range", []finetune.SequenceInput{{Tokens: bertSentences[0], Positions: []int{99}}}, "position 99"},
		{"position twice", []finetune.SequenceInput{{Tokens: bertSentences[0], Positions: []int{1, 1}}}, "twice"},
		{"row id out of range", []finetune.SequenceInput{{Tokens: bertSentences[0], Rows: map[int]mat.Tensor{-1: good}}}, "token id -1"},
		{"nil row", []finetune.SequenceInput{{Tokens: bertSentences[0], Rows: map[int]mat.Tensor{3: nil}}}, "nil"},
		{"row size", []finetune.SequenceInput{{Tokens: bertSentences[0], Rows: map[int]mat.Tensor{3: mat.NewDense[float32](mat.WithShape(2, 1))}}}, "expected 16"},
		{"row dtype", []finetune.SequenceInput{{Tokens: bertSentences[0], OutputRows: map[int]mat.Tensor{3: mat.NewDense[float64](mat.WithShape(dim, 1))}}}, "float32"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := finetune.PredictMaskedLM(m, tt.in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := finetune.PredictMaskedLM(nil, inputsOf(bertSentences))
	assert.Error(t, err)
	_, err = finetune.ClassifySequences(nil, inputsOf(bertSentences))
	assert.Error(t, err)
	_, err = finetune.GenerateBART(nil, []finetune.Seq2SeqInput{{Source: []int{0, 2}}}, finetune.GenerateOptions{})
	assert.Error(t, err)
	b := tinyBART[float32](bartVariants[0], 3)
	_, err = finetune.GenerateBART(b, []finetune.Seq2SeqInput{{Source: []int{0, 2}}}, finetune.GenerateOptions{MaxLength: -1})
	assert.ErrorContains(t, err, "MaxLength -1")
	_, err = finetune.GenerateBART(b, []finetune.Seq2SeqInput{{Source: []int{0, 999}}}, finetune.GenerateOptions{})
	assert.ErrorContains(t, err, "999")
	_, err = finetune.GenerateBART(b, []finetune.Seq2SeqInput{{}}, finetune.GenerateOptions{})
	assert.ErrorContains(t, err, "no source")
}

// cybertronGreedy decodes as cybertron's own inference does, recomputing
// the whole decoder every step; it returns the ids and each step's logits.
func cybertronGreedy(m *bart.ModelForConditionalGeneration, src []int, maxLen int) ([]int, [][]float64) {
	cfg := m.Bart.Config
	out := []int{cfg.DecoderStartTokenID}
	var steps [][]float64
	enc := m.Bart.Encoder.Encode(src)
	pad := m.PadMask.Value().Data().F64()
	for len(out) < maxLen {
		dec, _ := m.Bart.Decoder.Decode(enc, out, nil, 1)
		l := m.Projection.Forward(dec[len(dec)-1])[0].Value().Data().F64()
		steps = append(steps, l)
		if len(out) == 1 && cfg.ForceBosTokenToBeGenerated {
			out = append(out, cfg.BosTokenID)
			continue
		}
		best := 0
		for i := range l {
			if l[i]+pad[i] > l[best]+pad[best] {
				best = i
			}
		}
		out = append(out, best)
		if best == cfg.EosTokenID {
			break
		}
	}
	return out, steps
}

func TestGenerateBARTMatchesCybertron(t *testing.T) {
	var cases []modelCase
	for _, v := range bartVariants {
		cases = append(cases, modelCase{v.name, func(testing.TB) *bart.ModelForConditionalGeneration { return tinyBART[float32](v, 3) }, bartPairs})
	}
	cases = append(cases, testdataBARTCase())
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.model(t)
			for _, force := range []bool{false, true} {
				m.Bart.Config.ForceBosTokenToBeGenerated = force
				var in []finetune.Seq2SeqInput
				for _, p := range tt.pairs {
					in = append(in, finetune.Seq2SeqInput{Source: p.Source})
				}
				logits := map[[2]int][]float64{}
				got, err := finetune.GenerateBARTWithLogits(m, in, finetune.GenerateOptions{MaxLength: 7}, func(seq, step int, l []float64) {
					logits[[2]int{seq, step}] = l
				})
				require.NoError(t, err)
				worst := 0.0
				for s, p := range tt.pairs {
					want, steps := cybertronGreedy(m, p.Source, 7)
					assert.Equal(t, want, got[s], "source %d force_bos %v", s, force)
					for step, w := range steps {
						g, ok := logits[[2]int{s, step}]
						require.True(t, ok, "source %d step %d", s, step)
						for i := range w {
							worst = max(worst, math.Abs(g[i]-w[i]))
						}
					}
				}
				t.Logf("force_bos %v: max |diff| of step logits %.3g", force, worst)
				assert.LessOrEqual(t, worst, forwardTolerance)
			}
		})
	}
}

// Rows given for one source act as if the shared table and projection held
// them, for that source only.
func TestGenerateBARTPerSequenceRows(t *testing.T) {
	m := tinyBART[float32](bartVariants[0], 3)
	d := m.Bart.Config.DModel
	id := 6
	row := make([]float32, d)
	for i := range row {
		row[i] = float32(i%3) - 0.7
	}
	r := mat.NewDense[float32](mat.WithShape(d, 1), mat.WithBacking(row))
	src := bartPairs[0].Source
	in := []finetune.Seq2SeqInput{{Source: src, Rows: map[int]mat.Tensor{id: r}, OutputRows: map[int]mat.Tensor{id: r}}, {Source: src}}
	logits := map[[2]int][]float64{}
	_, err := finetune.GenerateBARTWithLogits(m, in, finetune.GenerateOptions{MaxLength: 4}, func(seq, step int, l []float64) {
		logits[[2]int{seq, step}] = l
	})
	require.NoError(t, err)
	_, plain := cybertronGreedy(m, src, 4)
	tab := mat.Data[float32](m.Bart.Embeddings.Weights[id].Value())
	oldTab := append([]float32(nil), tab...)
	copy(tab, row)
	oldProj := setRow(t, mat.Data[float32](m.Projection.W.Value()), id, d, row)
	_, swapped := cybertronGreedy(m, src, 4)
	copy(tab, oldTab)
	setRow(t, mat.Data[float32](m.Projection.W.Value()), id, d, oldProj)
	diff := func(a, b []float64) float64 {
		w := 0.0
		for i := range a {
			w = max(w, math.Abs(a[i]-b[i]))
		}
		return w
	}
	assert.LessOrEqual(t, diff(logits[[2]int{0, 0}], swapped[0]), forwardTolerance)
	assert.LessOrEqual(t, diff(logits[[2]int{1, 0}], plain[0]), forwardTolerance)
	assert.Greater(t, diff(logits[[2]int{0, 0}], plain[0]), 1e-3)
}

// A Predictor gives the package functions' values bit for bit, call after
// call, and follows a weight changed in place between calls.
func TestPredictorReusesPackedWeights(t *testing.T) {
	m := tinyBERT[float32](1)
	p := finetune.NewPredictor()
	want, err := finetune.PredictMaskedLM(m, inputsOf(bertSentences))
	require.NoError(t, err)
	for range 2 {
		got, err := p.PredictMaskedLM(m, inputsOf(bertSentences))
		require.NoError(t, err)
		for s := range want {
			assert.Equal(t, want[s].Logits.Data().F64(), got[s].Logits.Data().F64())
		}
	}
	w := mat.Data[float32](m.Bert.Encoder.Layers[1].FF.MLP[0].(*linear.Model).W.Value())
	old := w[3]
	w[3] += 0.75
	changed, err := finetune.PredictMaskedLM(m, inputsOf(bertSentences))
	require.NoError(t, err)
	got, err := p.PredictMaskedLM(m, inputsOf(bertSentences))
	require.NoError(t, err)
	assert.Equal(t, changed[0].Logits.Data().F64(), got[0].Logits.Data().F64(), "the changed weight is repacked")
	assert.NotEqual(t, want[0].Logits.Data().F64(), got[0].Logits.Data().F64())
	w[3] = old

	c := tinyBERTClassifier[float32](2)
	wc, err := finetune.ClassifySequences(c, inputsOf(bertSentences))
	require.NoError(t, err)
	gc, err := p.ClassifySequences(c, inputsOf(bertSentences))
	require.NoError(t, err)
	for s := range wc {
		assert.Equal(t, wc[s].Data().F64(), gc[s].Data().F64())
	}

	b := tinyBART[float32](bartVariants[1], 3)
	in := []finetune.Seq2SeqInput{{Source: bartPairs[0].Source}, {Source: bartPairs[1].Source}}
	wb, err := finetune.GenerateBART(b, in, finetune.GenerateOptions{MaxLength: 6})
	require.NoError(t, err)
	gb, err := p.GenerateBART(b, in, finetune.GenerateOptions{MaxLength: 6})
	require.NoError(t, err)
	assert.Equal(t, wb, gb)

	var nilP *finetune.Predictor // packs per call, like the functions
	ng, err := nilP.PredictMaskedLM(m, inputsOf(bertSentences))
	require.NoError(t, err)
	assert.Equal(t, want[0].Logits.Data().F64(), ng[0].Logits.Data().F64())
}

// A Predictor whose vocabulary projection spans several packed blocks
// follows row changes in any block (as an adapter's rows swapped in and
// out between calls), repacking only those blocks: after every change its
// predictions equal the functions' (nothing cached) bit for bit.
func TestPredictorFollowsChangedProjectionRows(t *testing.T) {
	m, batch := mediumBERT(2600) // 3 blocks of packed columns
	in := make([]finetune.SequenceInput, 2)
	for i := range in {
		in[i] = finetune.SequenceInput{Tokens: batch[i].Tokens}
	}
	dec := m.Layers[len(m.Layers)-1].(*linear.Model)
	w := mat.Data[float32](dec.W.Value())
	dim := dec.W.Value().Shape()[1]
	p := finetune.NewPredictor()
	check := func(what string) {
		t.Helper()
		want, err := finetune.PredictMaskedLM(m, in)
		require.NoError(t, err)
		got, err := p.PredictMaskedLM(m, in)
		require.NoError(t, err)
		for s := range want {
			require.Equal(t, want[s].Logits.Data().F32(), got[s].Logits.Data().F32(), "%s, sequence %d", what, s)
		}
	}
	check("first call")
	for _, row := range []int{2599, 5, 1500} {
		old := append([]float32(nil), w[row*dim:(row+1)*dim]...)
		for j := range dim {
			w[row*dim+j] = 0.25 * float32(j%7)
		}
		check(fmt.Sprintf("row %d changed", row))
		copy(w[row*dim:(row+1)*dim], old)
		check(fmt.Sprintf("row %d restored", row))
	}
}
