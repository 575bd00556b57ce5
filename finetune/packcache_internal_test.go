package finetune

import (
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
)

// A Task's packed weights give the loss without them bit for bit, are
// reused while the weights stand still, and are repacked when a weight
// changes in place.
func TestPackCacheFollowsWeights(t *testing.T) {
	m := testmodels.BERT(t)
	require.NoError(t, PrepareLoaded(m))
	for _, p := range AllParams(m) {
		p.SetRequiresGrad(false)
	}
	m.Bert.Embeddings.Tokens.Weights[100].SetRequiresGrad(true) // a trainable row: the fused path
	vocab := m.Bert.Embeddings.Vocab
	id, ok := vocab.ID("the")
	require.True(t, ok)
	ex := MaskedExample{Tokens: []string{"[CLS]", "the", "[MASK]", "sat", "[SEP]"}, Targets: map[int]int{2: id}}
	loss := func(c *packCache) float64 {
		l, err := maskedLMLoss(m, []MaskedExample{ex}, nil, ForwardAuto, c)
		require.NoError(t, err)
		return l.Value().Item().F64()
	}
	c := newPackCache()
	plain := loss(nil)
	assert.Equal(t, plain, loss(c), "packed weights change nothing")
	require.NotEmpty(t, c.m)
	entries := len(c.m)
	before := map[packKey]any{}
	for k, e := range c.m {
		before[k] = e.packed
	}
	assert.Equal(t, plain, loss(c))
	for k, e := range c.m {
		assert.Same(t, before[k], e.packed, "reused while unchanged")
	}
	assert.Len(t, c.m, entries)

	// Change one value of one frozen weight in place.
	w := m.Bert.Encoder.Layers[0].FF.MLP[0].(*linear.Model).W
	data := mat.Data[float32](w.Value())
	old := data[7]
	data[7] += 0.5
	changed := loss(nil)
	require.NotEqual(t, plain, changed)
	assert.Equal(t, changed, loss(c), "the changed weight is repacked")
	data[7] = old
	assert.Equal(t, plain, loss(c))
}

func TestHashValues(t *testing.T) {
	a := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	h := hashValues(a)
	for i := range a {
		b := append([]float32(nil), a...)
		b[i] = -b[i]
		assert.NotEqual(t, h, hashValues(b), "element %d", i)
	}
	assert.Equal(t, h, hashValues(append([]float32(nil), a...)))
	assert.NotEqual(t, hashValues(a[:8]), hashValues(a))
	assert.Equal(t, uint64(0), hashValues([]float64(nil)))

	// Negating any two values (two sign bits) changes the hash; the first
	// hash (one multiply per word and lane) missed pairs whose words met
	// in the same lane one step apart, such as values 1 and 9.
	v := make([]float32, 600)
	for i := range v {
		v[i] = float32(i) + 0.5
	}
	hv := hashValues(v)
	for i := range v {
		v[i] = -v[i]
		for j := i + 1; j < len(v); j++ {
			v[j] = -v[j]
			if hashValues(v) == hv {
				t.Fatalf("negating values %d and %d leaves the hash", i, j)
			}
			v[j] = -v[j]
		}
		v[i] = -v[i]
	}

	// Large slices are hashed in chunks in parallel: a change in any
	// chunk, or in the ragged last one, still changes the hash.
	big := make([]float32, 2*hashChunk+5)
	for i := range big {
		big[i] = float32(i % 1000)
	}
	hb := hashValues(big)
	assert.Equal(t, hb, hashValues(append([]float32(nil), big...)))
	for _, i := range []int{0, hashChunk - 1, hashChunk, 2*hashChunk + 4} {
		old := big[i]
		big[i] = -1
		assert.NotEqual(t, hb, hashValues(big), "element %d", i)
		big[i] = old
	}
	assert.NotEqual(t, hb, hashValues(big[:2*hashChunk]))
	// A wholly different first chunk changes it too.
	big2 := append([]float32(nil), big...)
	for i := range hashChunk {
		big2[i] = float32(i % 999)
	}
	assert.NotEqual(t, hb, hashValues(big2))
}
