package recipes_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/trainabletokens"
)

// Misuse is refused with an error that says what to do: a nil adapter, an
// adapter of another model, k < 0; inference inside Do returns.
func TestRecipesMisuse(t *testing.T) {
	m := testmodels.BERT(t)
	other := testmodels.BERT(t)
	tok, err := newtokens.NewBERTTokenizer(m.Bert.Embeddings.Vocab, nil, true)
	require.NoError(t, err)
	cat := m.Bert.Embeddings.Vocab.MustID("cat")
	examples := []finetune.MaskedExample{{Tokens: []string{"[CLS]", "the", "[MASK]", "[SEP]"}, Targets: map[int]int{2: cat}}}

	_, err = recipes.TrainMLM(m, nil, examples, recipes.TrainOptions{Quiet: true})
	require.ErrorContains(t, err, "the adapter model is nil")

	tmOther, err := trainabletokens.New(other, trainabletokens.Config{TokenIndices: []int{cat}}, "")
	require.NoError(t, err)
	_, err = recipes.TrainMLM(m, tmOther, examples, recipes.TrainOptions{Quiet: true})
	require.ErrorContains(t, err, "belongs to another model")
	_, err = recipes.EvaluateMLM(m, tmOther, examples)
	require.ErrorContains(t, err, "belongs to another model")
	_, err = recipes.TopPredictions(m, tmOther, tok, "the [MASK] .", 3)
	require.ErrorContains(t, err, "belongs to another model")

	_, err = recipes.TopPredictions(m, nil, tok, "the [MASK] .", -1)
	require.ErrorContains(t, err, "k = -1; expected k >= 0")
	got, err := recipes.TopPredictions(m, nil, tok, "the [MASK] .", 0)
	require.NoError(t, err)
	assert.Empty(t, got)

	// Inference inside Do, also with a change waiting, returns.
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: []int{cat}}, "")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		done <- tm.Do(func() error {
			changed := make(chan error, 1)
			go func() { changed <- tm.Disable() }()
			time.Sleep(50 * time.Millisecond)
			if _, err := recipes.TopPredictions(m, tm, tok, "the [MASK] .", 3); err != nil {
				return err
			}
			_, err := recipes.EvaluateMLM(m, tm, examples)
			go func() { <-changed }()
			return err
		})
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("recipes inference inside Do deadlocked")
	}
}
