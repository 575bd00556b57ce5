package trainabletokens

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/safetensors"
)

// tensorNames lists the tensor keys of a saved adapter.
func tensorNames(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, WeightsFile))
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	h, err := safetensors.ReadHeader(f, fi.Size(), f.Name())
	require.NoError(t, err)
	var out []string
	for _, tn := range h.Tensors {
		out = append(out, tn.Name)
	}
	return out
}

// TargetModules ["lm_head"] on a tied model: PEFT wraps lm_head, so the
// file holds lm_head's key (not the table's), and it loads back.
func TestLMHeadTargetWritesPEFTKey(t *testing.T) {
	m := loadedBART(t)
	tm, err := New(m, Config{TokenIndices: []int{5, 9}, TargetModules: []string{"lm_head"}}, "")
	require.NoError(t, err)
	perturb(t, tm, "default", 3)
	dir := t.TempDir()
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	assert.Equal(t, []string{"base_model.model.lm_head.trainable_tokens_delta"}, tensorNames(t, dir))
	var cfg map[string]any
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &cfg))
	assert.Equal(t, []any{"lm_head"}, cfg["target_modules"])
	want := bartOut(t, tm, m, []int{0, 5, 9, 2})
	_, err = tm.Unload()
	require.NoError(t, err)

	tm2, err := Load(m, dir, "")
	require.NoError(t, err)
	assert.Equal(t, want, bartOut(t, tm2, m, []int{0, 5, 9, 2}))
	_, err = tm2.Unload()
	require.NoError(t, err)
}

// An output head that is not a copy of its table (untied) cannot be a
// target: the input table must not train in its place.
func TestUntiedHeadTargetRefused(t *testing.T) {
	m := loadedBERT(t)
	w := m.Layers[3].(*linear.Model).W.Value().(mat.Matrix)
	v := rows.Get(w, 7, 32)
	v[0] += 1
	require.NoError(t, rows.Set(w, 7, v)) // row 7 differs: the decoder is untied
	before := snapshot(m)
	for _, cfg := range []Config{
		{TokenIndices: []int{5}, TargetModules: []string{"cls.predictions.decoder"}},
		{TokenIndices: []int{5}, TargetRegex: `cls\.predictions\.decoder`},
	} {
		_, err := New(m, cfg, "")
		require.ErrorIs(t, err, ErrInvalidConfig)
		assert.ErrorContains(t, err, "is an output head whose weights are not a copy of bert.embeddings.word_embeddings")
		requireSame(t, before, m)
	}
	// Targeting the table itself stays possible.
	tm, err := New(m, Config{TokenIndices: []int{5}, TargetModules: []string{"word_embeddings"}}, "")
	require.NoError(t, err)
	_, err = tm.Unload()
	require.NoError(t, err)
}

// An untrained adapter is a bit-exact no-op on every id, including the
// last vocabulary row, which cybertron's BERT converter leaves zero in the
// table while the tied decoder holds the real row. Before, injecting that
// id wrote the zeros into the decoder copy.
func TestUntrainedAdapterNoOpOnZeroTableRow(t *testing.T) {
	m := loadedBERT(t)
	last := len(m.Bert.Embeddings.Tokens.Weights) - 1
	dec := m.Layers[3].(*linear.Model).W.Value().(mat.Matrix)
	require.True(t, rows.Zero(m.Bert.Embeddings.Tokens.Weights[last].Value().(mat.Matrix), 0, 32), "precondition: the converter left the last row zero")
	require.False(t, rows.Zero(dec, last, 32), "precondition: the decoder holds the real row")
	tokens := []string{"[CLS]", "the", "[MASK]", "is", "red", "[SEP]"}
	base := predict(m, tokens)
	decRow := rows.Get(dec, last, 32)
	before := snapshot(m)

	tm, err := New(m, Config{TokenIndices: []int{5, last}}, "")
	require.NoError(t, err)
	assert.Equal(t, base, predict(m, tokens), "active untrained adapter")
	assert.Equal(t, decRow, rows.Get(dec, last, 32))
	require.NoError(t, tm.Merge(true))
	assert.Equal(t, base, predict(m, tokens), "merged untrained adapter")
	assert.Equal(t, decRow, rows.Get(dec, last, 32))
	require.NoError(t, tm.Unmerge())

	// Trained, the row reaches the decoder as for every other id.
	rs, err := tm.Rows("default", "")
	require.NoError(t, err)
	v := rows.Get(rs[1].Value().(mat.Matrix), 0, 32)
	v[0] = 0.5
	require.NoError(t, rows.Set(rs[1].Value().(mat.Matrix), 0, v))
	require.NoError(t, tm.Sync())
	assert.Equal(t, v, rows.Get(dec, last, 32))
	_, err = tm.Unload()
	require.NoError(t, err)
	requireSame(t, before, m)
}
