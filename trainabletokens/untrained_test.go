package trainabletokens

import (
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
)

// An adapter on ids whose base rows look untrained says so in Report, from
// the base rows even while the adapter's own (trained) rows are swapped in.
func TestReportFlagsUntrainedBaseRows(t *testing.T) {
	m := loadedBERT(t)
	e := m.Bert.Embeddings.Tokens
	last := len(e.Weights) - 1 // zero: cybertron's converter leaves it so
	require.True(t, rows.Zero(e.Weights[last].Value().(mat.Matrix), 0, e.Dim))
	red := m.Bert.Embeddings.Vocab.MustID("red")

	tm, err := New(m, Config{TokenIndices: []int{red, last}}, "a")
	require.NoError(t, err)
	require.NoError(t, tm.AddAdapter("b", Config{TokenIndices: []int{red}}))
	// Train "a"'s rows away from zero: the report still names the base row.
	for _, p := range tm.TrainableParams() {
		vals := rows.Get(p.Value().(mat.Matrix), 0, e.Dim)
		for i := range vals {
			vals[i] += 0.5
		}
		require.NoError(t, rows.Set(p.Value().(mat.Matrix), 0, vals))
	}
	r, err := tm.Report()
	require.NoError(t, err)
	require.Len(t, r.Adapters, 2)
	assert.Equal(t, []int{last}, r.Adapters[0].Untrained)
	assert.Empty(t, r.Adapters[1].Untrained)
	s := r.String()
	assert.Contains(t, s, `adapter "a": warning: base rows of tokens [1037] look untrained`)
	assert.NotContains(t, s, `adapter "b": warning`)
}
