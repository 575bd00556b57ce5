package trainabletokens

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/newtokens"
)

var newWords = []string{"zorblax", "quindle", "flumph", "vintral"}

// grownBERT is the tiny BERT with the four new words added (ids 1038-1041).
func grownBERT(t *testing.T) *bert.ModelForMaskedLM {
	t.Helper()
	m := testmodels.BERT(t)
	res, err := newtokens.AddTokens(m, nil, newWords, nil)
	require.NoError(t, err)
	require.Equal(t, []int{1038, 1039, 1040, 1041}, res.IDs)
	return m
}

// PEFT's default output after a vocabulary resize (testdata/peft/bert-tiny-resized,
// written by make_fixtures.py: deltas plus whole embedding layers) loads into
// a model grown to the same vocabulary, and the rows are applied.
func TestLoadPEFTResizedOutput(t *testing.T) {
	m := grownBERT(t)
	tm, err := Load(m, fixture("bert-tiny-resized"), "")
	require.NoError(t, err)
	ids := []int{1038, 1039, 1040, 1041, 5}
	rs, err := tm.Rows(DefaultAdapterName, "")
	require.NoError(t, err)
	for k, id := range ids {
		assert.Equal(t, fixtureRow(id, 32), paramValues(rs[k]), "row of id %d", id)
	}
	// The merged model holds the rows in the table and the tied decoder.
	plain, err := tm.MergeAndUnload(true)
	require.NoError(t, err)
	pm := plain.(*bert.ModelForMaskedLM)
	for _, id := range ids {
		assert.Equal(t, fixtureRow(id, 32), paramValues(pm.Bert.Embeddings.Tokens.Weights[id]))
	}

	// Into the base as it was: refused, saying how to grow it.
	_, err = Load(testmodels.BERT(t), fixture("bert-tiny-resized"), "")
	require.ErrorIs(t, err, ErrInvalidAdapterFile)
	assert.Contains(t, err.Error(), "token_indices[0] = 1038 is outside the vocabulary")
	assert.Contains(t, err.Error(), "grow the model first with newtokens.AddTokens")
}

// SaveOptions.SaveEmbeddingLayers writes PEFT's save_embedding_layers form;
// it loads back, passes PEFT's rules, and a model whose base rows differ
// refuses it.
func TestSaveEmbeddingLayers(t *testing.T) {
	m := grownBERT(t)
	ids := []int{1038, 1039, 1040, 1041}
	tm, err := New(m, Config{TokenIndices: ids}, "")
	require.NoError(t, err)
	perturb(t, tm, DefaultAdapterName, 3)
	tokens := bertTokens(m, 1038, 1040, 7)
	want := bertOut(t, tm, m, tokens)
	dir := filepath.Join(t.TempDir(), "adapter")
	require.NoError(t, tm.Save(dir, "", SaveOptions{SaveEmbeddingLayers: true}))
	_, ts := readTensors(t, filepath.Join(dir, WeightsFile))
	assert.Equal(t, []string{
		"base_model.model.bert.embeddings.word_embeddings.base_layer.weight",
		"base_model.model.bert.embeddings.word_embeddings.trainable_tokens_delta",
		"base_model.model.cls.predictions.decoder.base_layer.bias",
		"base_model.model.cls.predictions.decoder.base_layer.weight",
		"base_model.model.cls.predictions.decoder.trainable_tokens_delta",
	}, keys(ts))
	assert.Equal(t, []int{1042, 32}, ts["base_model.model.bert.embeddings.word_embeddings.base_layer.weight"].shape)
	assert.Equal(t, []int{1042}, ts["base_model.model.cls.predictions.decoder.base_layer.bias"].shape)

	fresh := grownBERT(t)
	tm2, err := Load(fresh, dir, "")
	require.NoError(t, err)
	assertBits(t, want, bertOut(t, tm2, fresh, tokens))

	// A base whose rows differ from the saved layers.
	other := grownBERT(t)
	other.Bert.Embeddings.Tokens.Weights[7].Value().Data().F32()[3] += 1
	_, err = Load(other, dir, "")
	require.ErrorIs(t, err, ErrInvalidAdapterFile)
	assert.Contains(t, err.Error(), "differs from the model at row 7, column 3")

	if err := exec.Command("/usr/bin/python3", "-c", "import torch").Run(); err != nil {
		t.Skip("PEFT's rules need /usr/bin/python3 with torch")
	}
	out, err := exec.Command("/usr/bin/python3", filepath.Join(testmodels.Dir("peft"), "make_fixtures.py"),
		"--check", dir, "--model", testmodels.Dir("bert-tiny")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "vocabulary from the saved embedding layer")
}

func TestSaveEmbeddingLayersBART(t *testing.T) {
	m := testmodels.BART(t)
	tm, err := New(m, Config{TokenIndices: []int{50, 60}}, "")
	require.NoError(t, err)
	perturb(t, tm, DefaultAdapterName, 4)
	src := []int{0, 50, 60, 2}
	want := bartOut(t, tm, m, src)
	dir := filepath.Join(t.TempDir(), "adapter")
	require.NoError(t, tm.Save(dir, "", SaveOptions{SaveEmbeddingLayers: true}))
	_, ts := readTensors(t, filepath.Join(dir, WeightsFile))
	for _, mod := range []string{"model.shared", "model.encoder.embed_tokens", "model.decoder.embed_tokens", "lm_head"} {
		require.Contains(t, ts, "base_model.model."+mod+".base_layer.weight")
		assert.Equal(t, []int{1100, 32}, ts["base_model.model."+mod+".base_layer.weight"].shape)
	}
	assert.NotContains(t, ts, "base_model.model.lm_head.base_layer.bias", "BART's lm_head has no bias")
	fresh := testmodels.BART(t)
	tm2, err := Load(fresh, dir, "")
	require.NoError(t, err)
	assertBits(t, want, bartOut(t, tm2, fresh, src))
	var _ *bart.ModelForConditionalGeneration = fresh
}

// PEFT's adapter_model.bin (torch.save, testdata/peft/bert-tiny-bin written by
// make_fixtures.py) loads like the safetensors fixture.
func TestLoadPEFTPickle(t *testing.T) {
	m := testmodels.BERT(t)
	tm, err := Load(m, fixture("bert-tiny-bin"), "")
	require.NoError(t, err)
	rs, err := tm.Rows(DefaultAdapterName, "")
	require.NoError(t, err)
	for k, id := range []int{200, 5, 100, 7} {
		assert.Equal(t, fixtureRow(id, 32), paramValues(rs[k]), "row of id %d", id)
	}
	m2 := testmodels.BERT(t)
	tm2, err := Load(m2, fixture("bert-tiny"), "")
	require.NoError(t, err)
	tokens := bertTokens(m, 200, 5, 100)
	assertBits(t, bertOut(t, tm2, m2, tokens), bertOut(t, tm, m, tokens))
}

// The new-token workflow from PyTorch (testdata/peft/bert-tiny-newtokens,
// written by make_fixtures.py as transformers + PEFT save it: the adapter
// plus the tokenizer with added_tokens.json): the tokenizer next to the
// adapter names the added tokens; growing the model with them gives the
// same ids, and the adapter loads.
func TestLoadPEFTNewTokenDirectory(t *testing.T) {
	dir := fixture("bert-tiny-newtokens")
	adTok, err := newtokens.LoadTokenizer(dir)
	require.NoError(t, err)
	require.Equal(t, 1042, adTok.VocabSize())
	var words []string
	var ids []int
	for _, a := range adTok.Added() {
		words, ids = append(words, a.Content), append(ids, a.ID)
	}
	require.Equal(t, newWords, words)

	m := testmodels.BERT(t)
	baseTok, err := newtokens.LoadTokenizer(testmodels.Dir("bert-tiny"))
	require.NoError(t, err)
	res, err := newtokens.AddTokens(m, baseTok, words, nil)
	require.NoError(t, err)
	require.Equal(t, ids, res.IDs, "the model grown here gives the words the tokenizer's ids")
	enc, _, err := adTok.Encode("the zorblax is red .")
	require.NoError(t, err)
	assert.Contains(t, enc, 1038)

	tm, err := Load(m, dir, "")
	require.NoError(t, err)
	rs, err := tm.Rows(DefaultAdapterName, "")
	require.NoError(t, err)
	for k, id := range ids {
		assert.Equal(t, fixtureRow(id, 32), paramValues(rs[k]), "row of id %d", id)
	}
}

// The same for BART (testdata/peft/bart-tiny-resized): the four tied deltas
// and their whole layers load into a BART grown to 1104 tokens.
func TestLoadPEFTResizedOutputBART(t *testing.T) {
	m := testmodels.BART(t)
	tok, err := newtokens.LoadTokenizer(testmodels.Dir("bart-tiny"))
	require.NoError(t, err)
	res, err := newtokens.AddTokens(m, tok, newWords, nil)
	require.NoError(t, err)
	require.Equal(t, []int{1100, 1101, 1102, 1103}, res.IDs)
	tm, err := Load(m, fixture("bart-tiny-resized"), "")
	require.NoError(t, err)
	rs, err := tm.Rows(DefaultAdapterName, "")
	require.NoError(t, err)
	for k, id := range res.IDs {
		assert.Equal(t, fixtureRow(id, 32), paramValues(rs[k]), "row of id %d", id)
	}
	_, err = Load(testmodels.BART(t), fixture("bart-tiny-resized"), "")
	require.ErrorIs(t, err, ErrInvalidAdapterFile)
	assert.Contains(t, err.Error(), "grow the model first with newtokens.AddTokens")
}
