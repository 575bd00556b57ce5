package finetune_test

import (
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// forwardTolerance is the largest max-abs difference accepted between the
// training forward and cybertron's inference forward (float32).
const forwardTolerance = 1e-5

var bertSentences = [][]string{
	{"[CLS]", "the", "cat", "[MASK]", "on", "the", "mat", "[SEP]"},
	{"[CLS]", "a", "[MASK]", "dog", "ran", "[SEP]", "in", "the", "[MASK]", "[SEP]"},
	{"[CLS]", "[MASK]", "[SEP]"},
}

func maskPositions(tokens []string) []int {
	var ps []int
	for i, tok := range tokens {
		if tok == "[MASK]" {
			ps = append(ps, i)
		}
	}
	return ps
}

func TestMaskedLMForwardMatchesCybertron(t *testing.T) {
	tests := []struct {
		name      string
		model     func(t testing.TB) *bert.ModelForMaskedLM
		sentences [][]string
	}{
		{"fresh", func(testing.TB) *bert.ModelForMaskedLM { return tinyBERT[float32](1) }, bertSentences},
		{"gob round trip", func(t testing.TB) *bert.ModelForMaskedLM { return loaded(t, roundTrip(t, tinyBERT[float32](1))) }, bertSentences},
		{"testdata bert-tiny", func(t testing.TB) *bert.ModelForMaskedLM { return loaded(t, testmodels.BERT(t)) }, [][]string{
			{"[CLS]", "the", "[MASK]", "sat", "on", "the", "table", ".", "[SEP]"},
			{"[CLS]", "[MASK]", "[SEP]", "the", "[SEP]"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.model(t)
			worstHidden, worstLogits := maskedLMDiffs(t, m, tt.sentences, true)
			t.Logf("max |diff|: hidden %.3g, MLM logits %.3g", worstHidden, worstLogits)
			assert.LessOrEqual(t, worstHidden, forwardTolerance)
			assert.LessOrEqual(t, worstLogits, forwardTolerance)
		})
	}
}

// maskedLMDiffs runs each sentence through finetune's training forward and
// through cybertron's inference and returns the largest differences of the
// hidden states (when hidden; the graph path's EncodeBERT) and of the MLM
// logits at the [MASK] positions.
func maskedLMDiffs(t *testing.T, m *bert.ModelForMaskedLM, sentences [][]string, hidden bool) (worstHidden, worstLogits float64) {
	t.Helper()
	for _, tokens := range sentences {
		if hidden {
			want := m.Bert.EncodeTokens(tokens)
			got, err := finetune.EncodeBERT(m.Bert, tokens)
			require.NoError(t, err)
			require.Len(t, got, len(want))
			for i := range want {
				worstHidden = max(worstHidden, maxAbsDiff(t, got[i], want[i]))
			}
		}
		positions := maskPositions(tokens)
		logits, err := finetune.MaskedLMLogits(m, tokens, positions, nil)
		require.NoError(t, err)
		predicted := m.Predict(tokens)
		for j, p := range positions {
			worstLogits = max(worstLogits, maxAbsDiff(t, column(logits, j), predicted[p]))
		}
	}
	return worstHidden, worstLogits
}

func TestSequenceClassificationForwardMatchesCybertron(t *testing.T) {
	for _, tt := range []struct {
		name  string
		model func(t *testing.T) *bert.ModelForSequenceClassification
	}{
		{"fresh", func(*testing.T) *bert.ModelForSequenceClassification { return tinyBERTClassifier[float32](2) }},
		{"gob round trip", func(t *testing.T) *bert.ModelForSequenceClassification {
			return loaded(t, roundTrip(t, tinyBERTClassifier[float32](2)))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.model(t)
			worst := 0.0
			for _, tokens := range bertSentences {
				got, err := finetune.SequenceClassificationLogits(m, tokens)
				require.NoError(t, err)
				worst = max(worst, maxAbsDiff(t, got, m.Classify(tokens)))
			}
			t.Logf("max |diff| of classifier logits: %.3g", worst)
			assert.LessOrEqual(t, worst, forwardTolerance)
		})
	}
}

// modelCase is one BART model to compare with cybertron, and its pairs.
type modelCase struct {
	name  string
	model func(t testing.TB) *bart.ModelForConditionalGeneration
	pairs []finetune.Seq2SeqExample
}

// testdataBARTCase is the converted tiny BART with pairs over its vocabulary.
func testdataBARTCase() modelCase {
	return modelCase{"testdata bart-tiny", func(t testing.TB) *bart.ModelForConditionalGeneration {
		return loaded(t, testmodels.BART(t))
	}, []finetune.Seq2SeqExample{
		{Source: []int{0, 100, 200, 300, 2}, Target: []int{0, 400, 500, 2}},
		{Source: []int{0, 1099, 2}, Target: []int{0, 7, 8, 9, 10, 11, 2}},
	}}
}

var bartPairs = []finetune.Seq2SeqExample{
	{Source: []int{0, 5, 6, 7, 8, 2}, Target: []int{0, 9, 10, 11, 2}},
	{Source: []int{0, 12, 2}, Target: []int{13, 14, 15, 16, 17, 18, 19, 2}},
	{Source: []int{3}, Target: []int{4}},
}

func TestBARTForwardMatchesCybertron(t *testing.T) {
	var cases []modelCase
	for _, v := range bartVariants {
		cases = append(cases,
			modelCase{v.name + "/fresh", func(testing.TB) *bart.ModelForConditionalGeneration { return tinyBART[float32](v, 3) }, bartPairs},
			modelCase{v.name + "/gob round trip", func(t testing.TB) *bart.ModelForConditionalGeneration {
				return loaded(t, roundTrip(t, tinyBART[float32](v, 3)))
			}, bartPairs},
		)
	}
	cases = append(cases, testdataBARTCase())

	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.model(t)
			var worstEnc, worstDec, worstLogits float64
			for _, pair := range tt.pairs {
				decIn := append([]int{m.Bart.Config.DecoderStartTokenID}, pair.Target[:len(pair.Target)-1]...)

				wantEnc := m.Bart.Encoder.Encode(pair.Source)
				gotEnc, err := finetune.EncodeBART(m.Bart, pair.Source)
				require.NoError(t, err)
				require.Len(t, gotEnc, len(wantEnc))
				for i := range wantEnc {
					worstEnc = max(worstEnc, maxAbsDiff(t, gotEnc[i], wantEnc[i]))
				}

				// The decoders get the same (cybertron's) encoder states.
				wantDec, _ := m.Bart.Decoder.Decode(wantEnc, decIn, nil, 1)
				gotDec, err := finetune.DecodeBART(m.Bart, wantEnc, decIn)
				require.NoError(t, err)
				require.Len(t, gotDec, len(wantDec))
				for i := range wantDec {
					worstDec = max(worstDec, maxAbsDiff(t, gotDec[i], wantDec[i]))
				}

				logits, err := finetune.ConditionalGenerationLogits(m, pair.Source, decIn, nil)
				require.NoError(t, err)
				wantLogits := m.Projection.Forward(wantDec...)
				for j := range wantLogits {
					worstLogits = max(worstLogits, maxAbsDiff(t, column(logits, j), wantLogits[j]))
				}
			}
			t.Logf("max |diff|: encoder %.3g, decoder %.3g, logits %.3g", worstEnc, worstDec, worstLogits)
			assert.LessOrEqual(t, worstEnc, forwardTolerance)
			assert.LessOrEqual(t, worstDec, forwardTolerance)
			assert.LessOrEqual(t, worstLogits, forwardTolerance)
		})
	}
}

// The BART fixture flags must reach the forward pass: the variants give
// different encoder outputs for the same weights.
func TestBARTVariantsDiffer(t *testing.T) {
	var outs [][]mat.Tensor
	for _, v := range bartVariants {
		m := tinyBART[float32](v, 3)
		enc, err := finetune.EncodeBART(m.Bart, bartPairs[0].Source)
		require.NoError(t, err)
		outs = append(outs, enc)
	}
	for i := 1; i < len(outs); i++ {
		assert.Greater(t, maxAbsDiff(t, outs[0][0], outs[i][0]), 1e-3, bartVariants[i].name)
	}
}

// A gob-decoded BART holds its blocks as pointers (cybertron registers the
// pointer types), a fresh one as values: the round-trip cases above cover
// both layouts.
func TestGobRoundTripChangesBARTBlockLayout(t *testing.T) {
	fresh := tinyBART[float32](bartVariants[0], 3)
	decoded := roundTrip(t, fresh)
	assert.IsType(t, bart.PostNormSelfAttentionBlock{}, fresh.Bart.Encoder.Layers[0].SelfAttention)
	assert.IsType(t, &bart.PostNormSelfAttentionBlock{}, decoded.Bart.Encoder.Layers[0].SelfAttention)
	assert.IsType(t, &bart.PostNormCrossAttentionBlock{}, decoded.Bart.Decoder.Layers[0].CrossAttention)
	assert.IsType(t, &bart.PostNormFeedForwardBlock{}, decoded.Bart.Decoder.Layers[0].FF)
}
