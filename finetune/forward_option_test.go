package finetune_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
)

// The forward is an argument of the call: a bad one is refused before any
// graph exists, and two goroutines may use different forwards at once
// (SetFusedForward was a process-wide switch that raced with running losses).
func TestForwardOption(t *testing.T) {
	m := tinyBERT[float64](21)
	vocab := m.Bert.Embeddings.Vocab
	row := m.Bert.Embeddings.Tokens.Weights[vocab.MustID("the")]
	frozenWithRows(m, row)
	batch := []finetune.MaskedExample{{Tokens: bertSentences[0], Targets: map[int]int{3: vocab.MustID("sat")}}}

	for _, bad := range [][]finetune.Forward{{finetune.Forward(7)}, {finetune.ForwardAuto, finetune.ForwardGraph}} {
		_, err := finetune.MaskedLMLoss(m, batch, nil, bad...)
		require.ErrorIs(t, err, finetune.ErrInvalidInput)
		_, err = finetune.MaskedLMTask(m, batch, nil, bad...)
		require.ErrorIs(t, err, finetune.ErrInvalidInput)
		_, err = finetune.MaskedLMLogits(m, bertSentences[0], []int{3}, nil, bad...)
		require.ErrorIs(t, err, finetune.ErrInvalidInput)
	}
	assert.Equal(t, "graph", finetune.ForwardGraph.String())

	var wg sync.WaitGroup
	losses := make([]float64, 8)
	for i := range losses {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l, err := finetune.MaskedLMLoss(m, batch, nil, finetune.Forward(i%2))
			if assert.NoError(t, err) {
				losses[i] = l.Value().Item().F64()
			}
		}(i)
	}
	wg.Wait()
	for i := range losses {
		assert.InDelta(t, losses[0], losses[i], 1e-10, "loss %d", i)
	}
}
