package finetune_test

import (
	"math"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// The mixed calls are inference: a plain model as loaded (weights that
// require gradients) is fine, and without per-sample rows the logits are
// PredictMaskedLM's (the transpose). A sample's input rows change only
// that sample.
func TestMixedMaskedLMLogitsOnPlainModel(t *testing.T) {
	m := testmodels.BERT(t)
	e := m.Bert.Embeddings.Tokens
	require.True(t, e.Weights[7].RequiresGrad() || m.Bert.Embeddings.Norm.W.RequiresGrad(), "a plain model as cybertron loads it")
	batch := []finetune.MaskedInput{
		{Tokens: []string{"[CLS]", "the", "[MASK]", "is", "red", "[SEP]"}, Positions: []int{2}},
		{Tokens: []string{"[CLS]", "the", "apple", "[MASK]", "[SEP]"}, Positions: []int{3, 1}},
	}
	got, err := finetune.MixedMaskedLMLogits(m, batch, nil)
	require.NoError(t, err)
	var inputs []finetune.SequenceInput
	for _, ex := range batch {
		inputs = append(inputs, finetune.SequenceInput{Tokens: ex.Tokens, Positions: ex.Positions})
	}
	pred, err := finetune.PredictMaskedLM(m, inputs)
	require.NoError(t, err)
	for s := range batch {
		p := pred[s].Logits // positions × vocab
		vocab := p.Shape()[1]
		require.Equal(t, []int{vocab, len(batch[s].Positions)}, got[s].Shape())
		worst := 0.0
		for j := range batch[s].Positions {
			for v := 0; v < vocab; v++ {
				worst = math.Max(worst, math.Abs(p.ScalarAt(j, v).F64()-got[s].ScalarAt(v, j).F64()))
			}
		}
		assert.Less(t, worst, 1e-5, "sample %d", s)
	}

	// Override "the" for sample 1 only.
	the := m.Bert.Embeddings.Vocab.MustID("the")
	row := rows.Get(e.Weights[the].Value().(mat.Matrix), 0, e.Dim)
	for i := range row {
		row[i] += 0.5
	}
	over := mat.NewDense[float32](mat.WithShape(e.Dim, 1), mat.WithBacking(toF32(row)))
	rs := []finetune.SampleRows{{}, {Input: map[*embedding.Model]map[int]mat.Matrix{e: {the: over}}}}
	got2, err := finetune.MixedMaskedLMLogits(m, batch, rs)
	require.NoError(t, err)
	assert.Equal(t, got[0].Data().F64(), got2[0].Data().F64(), "sample 0 keeps the model's rows")
	assert.NotEqual(t, got[1].Data().F64(), got2[1].Data().F64(), "sample 1 sees its row")
}

func toF32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}
