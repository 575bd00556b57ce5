package finetune_test

import (
	"math"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/losses"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/attention/multiheadattention"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/rows"
)

// probe is one parameter element whose gradient is checked.
type probe struct {
	name  string
	param *nn.Param
	index int
}

// checkGradients compares the backward gradient of each probe with a
// central finite difference of loss (float64 models: eps 1e-5).
func checkGradients(t *testing.T, loss func() mat.Tensor, probes []probe) {
	t.Helper()
	l := loss()
	backward(t, l)
	const eps = 1e-5
	for _, p := range probes {
		require.True(t, p.param.HasGrad(), "%s has no gradient", p.name)
		analytic := p.param.Grad().Data().F64()[p.index]
		_, data, err := rows.Floats(p.param.Value().(mat.Matrix))
		require.NoError(t, err)
		require.NotNil(t, data, "probes need float64 params")
		orig := data[p.index]
		data[p.index] = orig + eps
		plus := loss().Value().Item().F64()
		data[p.index] = orig - eps
		minus := loss().Value().Item().F64()
		data[p.index] = orig
		numeric := (plus - minus) / (2 * eps)
		assert.InDelta(t, numeric, analytic, 1e-6+1e-4*math.Abs(numeric), "%s[%d]: numeric %g analytic %g", p.name, p.index, numeric, analytic)
	}
}

func TestMaskedLMGradientsMatchFiniteDifferences(t *testing.T) {
	m := tinyBERT[float64](11)
	vocab := m.Bert.Embeddings.Vocab
	batch := []finetune.MaskedExample{
		{Tokens: bertSentences[0], Targets: map[int]int{3: vocab.MustID("sat")}},
		{Tokens: bertSentences[1], Targets: map[int]int{2: vocab.MustID("big"), 8: vocab.MustID("park"), 4: vocab.MustID("ran")}},
	}
	layer := m.Bert.Encoder.Layers[1]
	head := layer.SelfAttention.Attention.Heads[1]
	out := m.Layers[3].(*linear.Model)
	probes := []probe{
		{"token row cat", m.Bert.Embeddings.Tokens.Weights[vocab.MustID("cat")], 3},
		{"token row the (used 3 times)", m.Bert.Embeddings.Tokens.Weights[vocab.MustID("the")], 8},
		{"position row 2", m.Bert.Embeddings.Positions.Weights[2], 0},
		{"token type row 1", m.Bert.Embeddings.TokenTypes.Weights[1], 5},
		{"head query W", head.Query.W, 7},
		{"head key B", head.Key.B, 1},
		{"head value W", head.Value.W, 12},
		{"output merge W", layer.SelfAttention.Attention.OutputMerge.W, 20},
		{"attention norm gain", layer.SelfAttention.Norm.W, 4},
		{"ffn W", layer.FF.MLP[0].(*linear.Model).W, 33},
		{"mlm transform W", m.Layers[0].(*linear.Model).W, 17},
		{"mlm output W (target row)", out.W, vocab.MustID("park")*16 + 2},
		{"mlm output B", out.B, vocab.MustID("sat")},
	}
	checkGradients(t, func() mat.Tensor {
		loss, err := finetune.MaskedLMLoss(m, batch, nil)
		require.NoError(t, err)
		return loss
	}, probes)
}

func TestSequenceClassificationGradientsMatchFiniteDifferences(t *testing.T) {
	m := tinyBERTClassifier[float64](12)
	batch := []finetune.ClassificationExample{
		{Tokens: []string{"[CLS]", "the", "cat", "sat", "[SEP]"}, Label: 2},
		{Tokens: []string{"[CLS]", "a", "dog", "ran", "[SEP]", "in", "the", "park", "[SEP]"}, Label: 0},
	}
	vocab := m.Bert.Embeddings.Vocab
	probes := []probe{
		{"token row dog", m.Bert.Embeddings.Tokens.Weights[vocab.MustID("dog")], 1},
		{"layer 0 head 0 key W", m.Bert.Encoder.Layers[0].SelfAttention.Attention.Heads[0].Key.W, 9},
		{"pooler W", m.Bert.Pooler.Model[0].(*linear.Model).W, 30},
		{"classifier W", m.Classifier.W, 5},
		{"classifier B", m.Classifier.B, 2},
	}
	checkGradients(t, func() mat.Tensor {
		loss, err := finetune.SequenceClassificationLoss(m, batch)
		require.NoError(t, err)
		return loss
	}, probes)
}

func TestConditionalGenerationGradientsMatchFiniteDifferences(t *testing.T) {
	for _, v := range bartVariants {
		t.Run(v.name, func(t *testing.T) {
			m := tinyBART[float64](v, 13)
			enc, dec := m.Bart.Encoder.Layers[0], m.Bart.Decoder.Layers[1]
			probes := []probe{
				{"shared row 7 (source)", m.Bart.Embeddings.Weights[7], 2},
				{"shared row 10 (target)", m.Bart.Embeddings.Weights[10], 6},
				{"shared row 2 (decoder start)", m.Bart.Embeddings.Weights[2], 0},
				{"decoder cross-attention value W", crossAttention(t, dec).Heads[1].Value.W, 40},
				{"decoder self-attention query W", selfAttention(t, dec.SelfAttention).Heads[0].Query.W, 3},
				{"encoder self-attention output W", selfAttention(t, enc.SelfAttention).OutputMerge.W, 100},
				{"projection W", m.Projection.W, 11*16 + 5},
				{"projection B", m.Projection.B, 9},
			}
			if v.normalize {
				probes = append(probes, probe{"encoder embedding norm B", m.Bart.Encoder.Embeddings.Norm.B, 3})
			}
			checkGradients(t, func() mat.Tensor {
				loss, err := finetune.ConditionalGenerationLoss(m, bartPairs[:2], nil)
				require.NoError(t, err)
				return loss
			}, probes)
			if !v.normalize {
				assert.False(t, m.Bart.Encoder.Embeddings.Norm.W.HasGrad(), "embedding norm is disabled but got a gradient")
			}
		})
	}
}

func TestCrossEntropyMatchesSpagoLosses(t *testing.T) {
	values := []float64{0.3, -1.2, 2.0, 0.5, 0.1, -0.4, 1.7, 0.9, -2.2, 0.0, 3.1, -0.7} // 4 classes × 3 columns
	targets := []int{2, 0, 3}
	logits := mat.NewDense[float64](mat.WithShape(4, 3), mat.WithBacking(values), mat.WithGrad(true))
	loss, err := finetune.CrossEntropy(logits, targets)
	require.NoError(t, err)
	backward(t, loss)

	ref := mat.NewDense[float64](mat.WithShape(4, 3), mat.WithBacking(append([]float64(nil), values...)), mat.WithGrad(true))
	var terms []mat.Tensor
	for j, c := range targets {
		terms = append(terms, losses.CrossEntropy(ag.ColView(ref, j), c))
	}
	refLoss := ag.Mean(terms)
	backward(t, refLoss)

	assert.InDelta(t, refLoss.Value().Item().F64(), loss.Value().Item().F64(), 1e-12)
	assert.InDeltaSlice(t, ref.Grad().Data().F64(), logits.Grad().Data().F64(), 1e-12)
}

// BART blocks are interface values; these unwrap the attention models the
// probes need, for a fresh (value) model.
func selfAttention(t *testing.T, b any) *multiheadattention.Model {
	t.Helper()
	switch v := b.(type) {
	case bart.PreNormSelfAttentionBlock:
		return v.Attention
	case bart.PostNormSelfAttentionBlock:
		return v.Attention
	}
	t.Fatalf("unexpected self-attention block %T", b)
	return nil
}

func crossAttention(t *testing.T, l *bart.DecoderLayer) *multiheadattention.Model {
	t.Helper()
	switch v := l.CrossAttention.(type) {
	case bart.PreNormCrossAttentionBlock:
		return v.Attention
	case bart.PostNormCrossAttentionBlock:
		return v.Attention
	}
	t.Fatalf("unexpected cross-attention block %T", l.CrossAttention)
	return nil
}
