package finetune_test

import (
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
)

func TestMaskedLMInputErrors(t *testing.T) {
	m := tinyBERT[float32](41)
	cat := m.Bert.Embeddings.Vocab.MustID("cat")
	tests := []struct {
		name  string
		batch []finetune.MaskedExample
		want  string
	}{
		{"empty batch", nil, "empty batch"},
		{"unknown token", []finetune.MaskedExample{{Tokens: []string{"[CLS]", "zebra", "[MASK]"}, Targets: map[int]int{2: cat}}},
			`example 0: finetune: invalid input: token 1 "zebra" is not in the vocabulary`},
		{"empty sequence", []finetune.MaskedExample{{Targets: map[int]int{0: cat}}}, "example 0: finetune: invalid input: sequence is empty"},
		{"too long", []finetune.MaskedExample{{Tokens: []string{"[CLS]", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "[MASK]"}, Targets: map[int]int{12: cat}}},
			"sequence has 13 tokens; the model's position table allows at most 12"},
		{"no masked position", []finetune.MaskedExample{{Tokens: []string{"[CLS]", "[MASK]"}}}, "no masked position"},
		{"target position out of range", []finetune.MaskedExample{{Tokens: []string{"[CLS]", "[MASK]"}, Targets: map[int]int{5: cat}}},
			"target position 5 out of range [0, 2)"},
		{"target id out of range", []finetune.MaskedExample{
			{Tokens: []string{"[CLS]", "[MASK]"}, Targets: map[int]int{1: cat}},
			{Tokens: []string{"[CLS]", "[MASK]"}, Targets: map[int]int{1: 99}},
		}, "example 1: finetune: invalid input: target at position 1: id 99 out of range [0, 24)"},
		{"too many segments", []finetune.MaskedExample{{Tokens: []string{"[CLS]", "[SEP]", "a", "[SEP]", "[MASK]"}, Targets: map[int]int{4: cat}}},
			`token 4 "[MASK]" is in segment 2 (after 2 "[SEP]"); the token-type table allows segments [0, 2)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := finetune.MaskedLMLoss(m, tt.batch, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, finetune.ErrInvalidInput)
			assert.ErrorContains(t, err, tt.want)

			_, err = finetune.MaskedLMTask(m, tt.batch, nil)
			assert.ErrorIs(t, err, finetune.ErrInvalidInput, "tasks validate their examples up front")
		})
	}
}

func TestSequenceClassificationInputErrors(t *testing.T) {
	m := tinyBERTClassifier[float32](42)
	_, err := finetune.SequenceClassificationLoss(m, []finetune.ClassificationExample{{Tokens: []string{"[CLS]", "cat"}, Label: 3}})
	assert.ErrorIs(t, err, finetune.ErrInvalidInput)
	assert.ErrorContains(t, err, "label 3 out of range [0, 3)")
	_, err = finetune.SequenceClassificationLoss(m, []finetune.ClassificationExample{{Tokens: []string{"[CLS]", "Cat"}}})
	assert.ErrorContains(t, err, `token 1 "Cat" is not in the vocabulary`)
}

func TestConditionalGenerationInputErrors(t *testing.T) {
	m := tinyBART[float32](bartVariants[0], 43)
	long := make([]int, 13)
	tests := []struct {
		name string
		ex   finetune.Seq2SeqExample
		want string
	}{
		{"source id too large", finetune.Seq2SeqExample{Source: []int{0, 40}, Target: []int{5}}, "source token 1: id 40 out of range [0, 40)"},
		{"negative target id", finetune.Seq2SeqExample{Source: []int{0}, Target: []int{5, -1}}, "target token 1: id -1 out of range [0, 40)"},
		{"empty source", finetune.Seq2SeqExample{Target: []int{5}}, "source is empty"},
		{"empty target", finetune.Seq2SeqExample{Source: []int{5}}, "target is empty"},
		{"source too long", finetune.Seq2SeqExample{Source: long, Target: []int{5}}, "source has 13 tokens; the model's position table allows at most 12"},
		{"target too long", finetune.Seq2SeqExample{Source: []int{5}, Target: long}, "target has 13 tokens; the model's position table allows at most 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := finetune.ConditionalGenerationLoss(m, []finetune.Seq2SeqExample{tt.ex}, nil)
			assert.ErrorIs(t, err, finetune.ErrInvalidInput)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	_, err := finetune.EncodeBART(m.Bart, []int{41})
	assert.ErrorContains(t, err, "id 41 out of range [0, 40)")
	_, err = finetune.DecodeBART(m.Bart, nil, []int{1})
	assert.ErrorContains(t, err, "no encoder states")
}

func TestModelErrors(t *testing.T) {
	t.Run("nil models", func(t *testing.T) {
		_, err := finetune.MaskedLMLoss(nil, nil, nil)
		assert.ErrorIs(t, err, finetune.ErrUnsupportedModel)
		_, err = finetune.EncodeBERT(&bert.Model{}, []string{"a"})
		assert.ErrorIs(t, err, finetune.ErrUnsupportedModel)
		_, err = finetune.ConditionalGenerationLoss(&bart.ModelForConditionalGeneration{}, nil, nil)
		assert.ErrorIs(t, err, finetune.ErrUnsupportedModel)
	})
	t.Run("BERT without vocabulary", func(t *testing.T) {
		m := tinyBERT[float32](44)
		m.Bert.Embeddings.Vocab = nil
		_, err := finetune.EncodeBERT(m.Bert, []string{"a"})
		assert.ErrorContains(t, err, "Vocab is nil")
	})
	t.Run("unknown BART block", func(t *testing.T) {
		m := tinyBART[float32](bartVariants[0], 45)
		m.Bart.Decoder.Layers[1].FF = customFeedForward{}
		_, err := finetune.ConditionalGenerationLoss(m, bartPairs, nil)
		assert.ErrorIs(t, err, finetune.ErrUnsupportedModel)
		assert.ErrorContains(t, err, "BART decoder layer 1: finetune: unsupported model: feed-forward block of type finetune_test.customFeedForward")
	})
	t.Run("gob-loaded table with trainable rows", func(t *testing.T) {
		m := roundTrip(t, tinyBERT[float32](46)) // rows require gradients; no PrepareLoaded
		_, err := finetune.MaskedLMLoss(m, mlmExamples(t, m), nil)
		assert.ErrorIs(t, err, finetune.ErrUnsupportedModel)
		assert.ErrorContains(t, err, "call PrepareLoaded")

		require.NoError(t, finetune.PrepareLoaded(m))
		loss, err := finetune.MaskedLMLoss(m, mlmExamples(t, m), nil)
		require.NoError(t, err)
		backward(t, loss)
	})
	t.Run("gob-loaded frozen model needs no preparation", func(t *testing.T) {
		fresh := tinyBERT[float32](47)
		finetune.SetRequiresGrad(fresh, false)
		m := roundTrip(t, fresh)
		_, err := finetune.MaskedLMLoss(m, mlmExamples(t, m), nil)
		assert.NoError(t, err)
	})
}

type customFeedForward struct{}

func (customFeedForward) Forward(xs []mat.Tensor) []mat.Tensor { return xs }

func TestLogitsFunc(t *testing.T) {
	t.Run("called once per batch with every loss position", func(t *testing.T) {
		m := tinyBART[float32](bartVariants[0], 48)
		var shapes [][]int
		logits := func(h mat.Tensor) mat.Tensor {
			shapes = append(shapes, h.Value().Shape())
			return finetune.LinearLogits(m.Projection)(h)
		}
		own, err := finetune.ConditionalGenerationLoss(m, bartPairs, nil)
		require.NoError(t, err)
		custom, err := finetune.ConditionalGenerationLoss(m, bartPairs, logits)
		require.NoError(t, err)
		assert.Equal(t, own.Value().Item().F64(), custom.Value().Item().F64())
		assert.Equal(t, [][]int{{16, 5 + 8 + 1}}, shapes)
	})
	t.Run("wrong shape is an error, not a crash", func(t *testing.T) {
		m := tinyBERT[float32](49)
		one := func(h mat.Tensor) mat.Tensor {
			return mat.NewDense[float32](mat.WithShape(24, 1))
		}
		_, err := finetune.MaskedLMLoss(m, mlmExamples(t, m), one)
		assert.ErrorContains(t, err, "logits have 1 columns for 4 targets")
	})
}

func TestMaskTokens(t *testing.T) {
	m := tinyBERT[float32](50)
	vocab := m.Bert.Embeddings.Vocab
	tokens := []string{"[CLS]", "the", "cat", "sat", "[SEP]"}
	ex, err := finetune.MaskTokens(vocab, tokens, 2, 3)
	require.NoError(t, err)
	assert.Equal(t, []string{"[CLS]", "the", "[MASK]", "[MASK]", "[SEP]"}, ex.Tokens)
	assert.Equal(t, map[int]int{2: vocab.MustID("cat"), 3: vocab.MustID("sat")}, ex.Targets)
	assert.Equal(t, "cat", tokens[2], "the input is not modified")

	_, err = finetune.MaskTokens(vocab, tokens, 5)
	assert.ErrorContains(t, err, "mask position 5 out of range [0, 5)")
}

// PrepareLoaded changes no parameter: the same params, values and flags
// (gob output itself is not byte-stable: it encodes the configs' maps in
// random order).
func TestPrepareLoadedKeepsTheParams(t *testing.T) {
	m := roundTrip(t, tinyBART[float32](bartVariants[1], 51))
	params := finetune.AllParams(m)
	before := snapshot(params)
	flags := make([]bool, len(params))
	for i, p := range params {
		flags[i] = p.RequiresGrad()
	}
	require.NoError(t, finetune.PrepareLoaded(m))
	assert.ElementsMatch(t, params, finetune.AllParams(m))
	assert.Empty(t, changed(before))
	for i, p := range params {
		assert.Equal(t, flags[i], p.RequiresGrad())
	}
	assert.Same(t, m.Bart.Embeddings, m.Bart.Encoder.Embeddings.SharedEmbeddings.Model)
	assert.Same(t, m.Bart.Embeddings, m.Bart.Decoder.Embeddings.SharedEmbeddings.Model)
	assert.NoError(t, finetune.PrepareLoaded(m), "idempotent")
}
