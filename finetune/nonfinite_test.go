package finetune_test

import (
	"math"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/rows"
)

func rowValues(ps []*nn.Param) [][]float64 {
	var out [][]float64
	for _, p := range ps {
		v := p.Value().(mat.Matrix)
		out = append(out, rows.Get(v, 0, v.Size()))
	}
	return out
}

// A non-finite learning rate is refused up front; an update that
// overflows stops training with an error naming the step and the table
// row, and the rows keep their values from the last finite step.
func TestTrainerStopsOnNonFinite(t *testing.T) {
	m := tinyBERT[float32](31)
	vocab := m.Bert.Embeddings.Vocab
	the := vocab.MustID("the")
	e := m.Bert.Embeddings.Tokens
	trained := []*nn.Param{e.Weights[the]}
	frozenWithRows(m, trained...)
	batch := []finetune.MaskedExample{{Tokens: bertSentences[0], Targets: map[int]int{3: vocab.MustID("sat")}}}
	task, err := finetune.MaskedLMTask(m, batch, nil)
	require.NoError(t, err)

	for _, lr := range []float64{math.Inf(1), math.NaN(), math.Inf(-1), -1} {
		_, err := finetune.NewTrainer(finetune.Config{TokenParams: trained, LR: lr, Quiet: true})
		require.Error(t, err, "lr %v", lr)
		assert.Regexp(t, "LR must be (positive|finite)", err.Error())
	}

	tr, err := finetune.NewTrainer(finetune.Config{TokenParams: trained, Optimizer: finetune.OptimizerSGD, LR: 0.1, Quiet: true})
	require.NoError(t, err)
	_, err = tr.Step(task, []int{0})
	require.NoError(t, err)
	good := rowValues(trained)

	// float32 rows: the update lr·g overflows to ±Inf.
	huge, err := finetune.NewTrainer(finetune.Config{TokenParams: trained, Optimizer: finetune.OptimizerSGD, LR: math.MaxFloat64, Quiet: true})
	require.NoError(t, err)
	_, err = huge.Step(task, []int{0})
	require.ErrorIs(t, err, finetune.ErrNotFinite)
	assert.ErrorContains(t, err, "step 1")
	assert.ErrorContains(t, err, "of Bert.Embeddings.Tokens")
	assert.Equal(t, good, rowValues(trained), "the rows keep their last finite values")
	_, err = huge.Train(task)
	require.ErrorIs(t, err, finetune.ErrNotFinite)
	assert.Equal(t, good, rowValues(trained))
	for _, r := range trained {
		assert.False(t, r.HasGrad())
	}
}

// Params that are not parameters of the task's model (an adapter injected
// into another model) are refused instead of "training" with nothing
// updated.
func TestTrainerRefusesParamsOfAnotherModel(t *testing.T) {
	m := tinyBERT[float32](32)
	other := tinyBERT[float32](33)
	vocab := m.Bert.Embeddings.Vocab
	row := other.Bert.Embeddings.Tokens.Weights[vocab.MustID("the")]
	frozenWithRows(other, row)
	batch := []finetune.MaskedExample{{Tokens: bertSentences[0], Targets: map[int]int{3: vocab.MustID("sat")}}}
	task, err := finetune.MaskedLMTask(m, batch, nil)
	require.NoError(t, err)
	tr, err := finetune.NewTrainer(finetune.Config{TokenParams: []*nn.Param{row}, Quiet: true})
	require.NoError(t, err)
	_, err = tr.Train(task)
	require.ErrorContains(t, err, "is not a parameter of the task's model")
	_, err = tr.Step(task, []int{0})
	require.ErrorContains(t, err, "is not a parameter of the task's model")
}
