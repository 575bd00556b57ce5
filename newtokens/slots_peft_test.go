package newtokens_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/trainabletokens"
)

// Words placed in reserved slots give a plain Trainable Tokens adapter on
// those ids: it loads into the unchanged base checkpoint (no resize, no
// tokenizer or bias mismatch), where it predicts exactly what the trained
// model predicts, and PEFT's structural rules accept it against the
// original testdata model.
func TestReservedSlotAdapterLoadsIntoUnchangedBase(t *testing.T) {
	m := testmodels.BERT(t)
	tok, err := newtokens.NewBERTTokenizer(m.Bert.Embeddings.Vocab, nil, true)
	require.NoError(t, err)
	res, err := newtokens.AddTokens(m, tok, []string{"zorblax", "quindle"}, &newtokens.Options{Reserved: true})
	require.NoError(t, err)
	require.Equal(t, []int{5, 6}, res.IDs)
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: res.IDs}, "")
	require.NoError(t, err)
	for k, p := range tm.TrainableParams() { // "training"
		v := rows.Get(p.Value().(mat.Matrix), 0, 32)
		for i := range v {
			v[i] += 0.01 * float64((k+1)*(i%5))
		}
		require.NoError(t, rows.Set(p.Value().(mat.Matrix), 0, v))
	}
	require.NoError(t, tm.Sync())
	dir := filepath.Join(t.TempDir(), "adapter")
	require.NoError(t, tm.Save(dir, "", trainabletokens.SaveOptions{BaseModelNameOrPath: "bert-tiny"}))

	base := testmodels.BERT(t) // the original checkpoint: [unused0] at id 5
	assert.Equal(t, len(m.Bert.Embeddings.Tokens.Weights), len(base.Bert.Embeddings.Tokens.Weights))
	loaded, err := trainabletokens.Load(base, dir, "")
	require.NoError(t, err)
	trained := []string{"[CLS]", "the", "zorblax", "is", "[MASK]", "quindle", "[SEP]"}
	original := []string{"[CLS]", "the", "[unused0]", "is", "[MASK]", "[unused1]", "[SEP]"}
	want, err := finetune.MaskedLMLogits(m, trained, []int{2, 4}, tm.LogitsFunc(m.Layers[3].(*linear.Model)))
	require.NoError(t, err)
	got, err := finetune.MaskedLMLogits(base, original, []int{2, 4}, loaded.LogitsFunc(base.Layers[3].(*linear.Model)))
	require.NoError(t, err)
	assert.Equal(t, want.Value().(mat.Matrix).Data().F64(), got.Value().(mat.Matrix).Data().F64())

	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("no %s with torch for the PEFT check: %v", py, err)
	}
	script := filepath.Join(testmodels.Dir("peft"), "make_fixtures.py")
	out, err := exec.Command(py, script, "--check", dir, "--model", testmodels.Dir(testmodels.BERTName)).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "ok config")
	assert.True(t, strings.Contains(string(out), "trainable_tokens_delta F32 [2, 32]"), "%s", out)
}
