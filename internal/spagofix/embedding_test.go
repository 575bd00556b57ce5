package spagofix_test

import (
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/spagofix"
	"github.com/gopeft/gopeft/internal/testmodels"
)

func TestRenewEmbeddings(t *testing.T) {
	m := testmodels.BART(t) // decoded from gob: every table lost its gradient index
	old := m.Bart.Embeddings
	require.True(t, spagofix.NeedsRenew(old))
	rows := old.Weights

	reps, err := spagofix.RenewEmbeddings(m)
	require.NoError(t, err)
	assert.Len(t, reps, 3, "shared table and two positional tables")
	fresh := m.Bart.Embeddings
	assert.NotSame(t, old, fresh)
	assert.False(t, spagofix.NeedsRenew(fresh))
	assert.Same(t, fresh, m.Bart.Encoder.Embeddings.SharedEmbeddings.Model, "every slot of the shared table moves")
	assert.Same(t, fresh, m.Bart.Decoder.Embeddings.SharedEmbeddings.Model)
	assert.Same(t, rows[0], fresh.Weights[0], "rows are the same params")

	// A gradient on a row no longer crashes: the index records it.
	fresh.Weights[5].SetRequiresGrad(true)
	e, err := fresh.Embedding(5)
	require.NoError(t, err)
	e.AccGrad(fresh.Weights[5].Value().(mat.Matrix).OnesLike())
	assert.Equal(t, 1, fresh.CountEmbedWithGrad())
	assert.True(t, fresh.Weights[5].HasGrad())
}

func TestUndoAndFreshModels(t *testing.T) {
	m := testmodels.BART(t)
	old := m.Bart.Embeddings
	reps, err := spagofix.RenewEmbeddings(m)
	require.NoError(t, err)
	for i := len(reps) - 1; i >= 0; i-- {
		reps[i].Undo()
	}
	assert.Same(t, old, m.Bart.Embeddings)
	assert.Same(t, old, m.Bart.Decoder.Embeddings.SharedEmbeddings.Model)

	// A model built in memory needs nothing.
	built := &struct {
		nn.Module
		E *embedding.Model
	}{E: embedding.New[float32](4, 2)}
	reps, err = spagofix.RenewEmbeddings(built)
	require.NoError(t, err)
	assert.Empty(t, reps)
}
