package trainabletokens

import (
	"sync"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
)

// TestConcurrentInferenceWhileSwitching runs inference from many goroutines
// while another one keeps changing adapters. Every prediction must be
// exactly the base output or exactly the trained output: never a mix.
func TestConcurrentInferenceWhileSwitching(t *testing.T) {
	m := loadedBERT(t)
	tokens := []string{"[CLS]", "the", "[MASK]", "is", "red", "[SEP]"}
	base := predict(m, tokens)
	ids := []int{m.Bert.Embeddings.Vocab.MustID("the"), m.Bert.Embeddings.Vocab.MustID("red")}
	tm, err := New(m, Config{TokenIndices: ids}, "a")
	require.NoError(t, err)
	for _, p := range tm.TrainableParams() {
		v := rows.Get(p.Value().(mat.Matrix), 0, 32)
		for i := range v {
			v[i] *= 3
		}
		require.NoError(t, rows.Set(p.Value().(mat.Matrix), 0, v))
	}
	require.NoError(t, tm.Sync())
	var trained map[int][]float64
	require.NoError(t, tm.Do(func() error { trained = predict(m, tokens); return nil }))
	require.NotEqual(t, base, trained)

	const readers, rounds = 6, 15
	var wg sync.WaitGroup
	results := make(chan map[int][]float64, readers*rounds)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				_ = tm.Do(func() error { results <- predict(m, tokens); return nil })
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		ops := []func() error{
			func() error { return tm.SetActive() },
			func() error { return tm.SetActive("a") },
			func() error { return tm.Merge(true) },
			tm.Unmerge,
			tm.Disable,
			tm.Enable,
		}
		for i := 0; i < 60; i++ {
			assert.NoError(t, ops[i%len(ops)]())
		}
	}()
	wg.Wait()
	close(results)
	n := 0
	for got := range results {
		n++
		ok := equalBits(got, base) || equalBits(got, trained)
		assert.True(t, ok, "prediction %d is neither the base nor the trained output", n)
	}
	assert.Equal(t, readers*rounds, n)
}

func equalBits(a, b map[int][]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y := b[k]
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
	}
	return true
}
