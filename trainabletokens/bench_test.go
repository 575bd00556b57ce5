package trainabletokens_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/trainabletokens"
)

// BenchmarkMergeUnmerge is Merge(safe) then Unmerge of a 10-row adapter on
// the tiny BERT (the table and its tied decoder): O(k·dim), whatever the
// vocabulary (examples/benchmark shows it flat from 1,000 to 250,000 rows).
func BenchmarkMergeUnmerge(b *testing.B) {
	m := testmodels.BERT(b)
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: []int{5, 6, 7, 8, 9, 10, 11, 12, 13, 14}}, "")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		require.NoError(b, tm.Merge(true))
		require.NoError(b, tm.Unmerge())
	}
}

// BenchmarkNew is injection: freezing, the tying check over the whole
// table (tying.Detect, O(vocab·dim)) and the row swap.
func BenchmarkNew(b *testing.B) {
	m := testmodels.BERT(b)
	cfg := trainabletokens.Config{TokenIndices: []int{5, 6, 7, 8, 9, 10, 11, 12, 13, 14}}
	b.ReportAllocs()
	for b.Loop() {
		tm, err := trainabletokens.New(m, cfg, "")
		require.NoError(b, err)
		_, err = tm.Unload()
		require.NoError(b, err)
	}
}
