package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/trainabletokens"
)

// inspect reports the rows that look untrained (package untrained): for a
// model, per table; for an adapter with --model, its token ids whose base
// rows look untrained. The tiny BERT's last row is zero after conversion.
func TestInspectUntrainedRows(t *testing.T) {
	dir := workdir(t)
	var mi modelInfo
	ok(t, dir, &mi, "inspect", "bert")
	require.NotEmpty(t, mi.Tables)
	assert.Equal(t, []int{1037}, mi.Tables[0].Untrained)
	assert.Contains(t, mi.Tables[0].UntrainedSummary, "1 of 1038 rows look untrained (1 zero")
	r := gopeft(t, dir, "inspect", "bert")
	assert.Contains(t, r.stdout, "  untrained: 1 of 1038 rows look untrained")

	m, err := models.LoadBERT(filepath.Join(dir, "bert"))
	require.NoError(t, err)
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: []int{5, 1037}}, "")
	require.NoError(t, err)
	require.NoError(t, tm.Save(filepath.Join(dir, "ad"), "", trainabletokens.SaveOptions{BaseModelNameOrPath: "bert"}))
	var ai adapterInfo
	ok(t, dir, &ai, "inspect", "ad", "--model", "bert")
	assert.Equal(t, []int{1037}, ai.UntrainedBaseRows)
	r = gopeft(t, dir, "inspect", "ad", "--model", "bert")
	assert.Contains(t, r.stdout, "untrained: the base rows of tokens [1037] look untrained in bert")
}
