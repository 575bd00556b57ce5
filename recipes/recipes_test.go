package recipes_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/trainabletokens"
)

// TestNewTokensLearn is the project's claim in numbers: on the tiny BERT,
// training only the rows of four new words lowers their masked-LM loss on
// held-out sentences by a clear margin and lifts top-1 accuracy far above
// chance (1 in the vocabulary).
func TestNewTokensLearn(t *testing.T) {
	m := testmodels.BERT(t)
	words, err := testmodels.ReadLines("new_tokens.txt")
	require.NoError(t, err)
	res, err := newtokens.AddTokens(m, nil, words, nil)
	require.NoError(t, err)
	train, err := testmodels.ReadLines("mlm_train.txt")
	require.NoError(t, err)
	eval, err := testmodels.ReadLines("mlm_eval.txt")
	require.NoError(t, err)
	trainEx, err := recipes.MaskOccurrences(res.Tokenizer, train, res.IDs)
	require.NoError(t, err)
	evalEx, err := recipes.MaskOccurrences(res.Tokenizer, eval, res.IDs)
	require.NoError(t, err)
	require.NotEmpty(t, evalEx)

	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: res.IDs}, "")
	require.NoError(t, err)
	before, err := recipes.EvaluateMLM(m, tm, evalEx)
	require.NoError(t, err)
	losses, err := recipes.TrainMLM(m, tm, trainEx, recipes.TrainOptions{Epochs: 3, LR: 0.05, Seed: 1, Quiet: true})
	require.NoError(t, err)
	after, err := recipes.EvaluateMLM(m, tm, evalEx)
	require.NoError(t, err)
	t.Logf("steps %d, train loss %.3f -> %.3f; eval before: %v; after: %v", len(losses), losses[0], losses[len(losses)-1], before, after)

	chance := 1 / float64(res.NewVocabSize)
	assert.Less(t, after.Loss, before.Loss-1.0, "held-out loss falls by more than 1 nat")
	assert.Greater(t, after.Accuracy, 0.5, "top-1 accuracy on new words")
	assert.Greater(t, after.Accuracy, 50*chance)
}
