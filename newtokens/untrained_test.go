package newtokens

import (
	"math"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// shrinkRow scales row id of an embedding table by f, as a row left at a
// tiny initialisation looks.
func shrinkRow(t *testing.T, m mat.Matrix, f float64) {
	t.Helper()
	vals := rows.Get(m, 0, m.Size())
	for j := range vals {
		vals[j] *= f
	}
	require.NoError(t, rows.Set(m, 0, vals))
}

// meanWithout is the test's own mean of rows, leaving out the given ids and
// zero rows.
func meanWithout(rs [][]float64, skip ...int) []float64 {
	keep := make([][]float64, 0, len(rs))
	drop := map[int]bool{}
	for _, id := range skip {
		drop[id] = true
	}
	for i, r := range rs {
		if !drop[i] {
			keep = append(keep, r)
		}
	}
	return meanNonZero(keep)
}

// Untrained rows (zero, or far and small) stay out of InitMean's mean and
// out of InitSubtokenMean's average, and Result says which they were.
func TestInitSkipsUntrainedRows(t *testing.T) {
	m := testmodels.BERT(t)
	tok := bertTok(t, m)
	e := m.Bert.Embeddings.Tokens
	v := len(e.Weights)
	theID, ok := tok.ID("the")
	require.True(t, ok)
	shrinkRow(t, e.Weights[theID].Value().(mat.Matrix), 1e-3)
	before := tableRows(e)

	res, err := AddTokens(m, tok, []string{"zorblax"}, nil)
	require.NoError(t, err)
	assert.Equal(t, []int{theID, v - 1}, res.Untrained, "the shrunk row and the zero last row")
	got := tableRows(e)[res.IDs[0]]
	requireClose(t, meanWithout(before, theID), got, "mean without the untrained rows")
	assert.Greater(t, maxAbsDiff(meanNonZero(before), got), 1e-7, "the shrunk row would have changed the mean")

	// "theapple" tokenizes to "the" (untrained now) plus other pieces:
	// the average leaves "the" out.
	res, err = AddTokens(m, tok, []string{"theapple"}, &Options{Init: InitSubtokenMean})
	require.NoError(t, err)
	pt := res.PerToken[0]
	assert.Contains(t, pt.SkippedUntrained, theID)
	assert.NotContains(t, pt.Subtokens, theID)
	require.NotEmpty(t, pt.Subtokens)
	want := make([]float64, e.Dim)
	for _, id := range pt.Subtokens {
		for j, x := range before[id] {
			want[j] += x / float64(len(pt.Subtokens))
		}
	}
	requireClose(t, want, tableRows(e)[res.IDs[0]], "subtoken mean without the untrained row")
}

func TestSubtokenMeanAllUntrainedFallsBack(t *testing.T) {
	m := testmodels.BERT(t)
	tok := bertTok(t, m)
	e := m.Bert.Embeddings.Tokens
	ids, _, err := tok.Encode("thethe")
	require.NoError(t, err)
	require.NotEmpty(t, ids)
	for _, id := range ids {
		shrinkRow(t, e.Weights[id].Value().(mat.Matrix), 0)
	}
	before := tableRows(e)
	res, err := AddTokens(m, tok, []string{"thethe"}, &Options{Init: InitSubtokenMean})
	require.NoError(t, err)
	pt := res.PerToken[0]
	assert.Equal(t, InitMean, pt.Init)
	assert.Empty(t, pt.Subtokens)
	assert.ElementsMatch(t, dedupeInts(ids), dedupeInts(pt.SkippedUntrained))
	requireClose(t, meanNonZero(before), tableRows(e)[res.IDs[0]], "fallback to the mean")
}

func dedupeInts(xs []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func maxAbsDiff(a, b []float64) float64 {
	w := 0.0
	for i := range a {
		if d := a[i] - b[i]; d > w {
			w = d
		} else if -d > w {
			w = -d
		}
	}
	return w
}

// BART: Result.Untrained is empty on the tiny BART (no zero rows).
func TestUntrainedBARTNone(t *testing.T) {
	m := testmodels.BART(t)
	res, err := AddTokens(m, bartTok(t), []string{"zorblax"}, nil)
	require.NoError(t, err)
	assert.Empty(t, res.Untrained)
	assert.True(t, res.OutputTied)
	assert.Empty(t, res.OutputUntrained)
}

// A row holding NaN (a diverged or corrupted row) no longer poisons the
// mean: it is reported and left out.
func TestInitMeanSkipsNonFiniteRows(t *testing.T) {
	m := testmodels.BERT(t)
	tok := bertTok(t, m)
	e := m.Bert.Embeddings.Tokens
	before := tableRows(e)
	vals := rows.Get(e.Weights[40].Value().(mat.Matrix), 0, e.Dim)
	vals[3] = math.NaN()
	require.NoError(t, rows.Set(e.Weights[40].Value().(mat.Matrix), 0, vals))
	res, err := AddTokens(m, tok, []string{"zorblax"}, nil)
	require.NoError(t, err)
	assert.Contains(t, res.Untrained, 40)
	requireClose(t, meanWithout(before, 40), tableRows(e)[res.IDs[0]], "mean without the NaN row")
}
