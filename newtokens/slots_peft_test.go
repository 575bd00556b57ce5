package newtokens_test

import (
	"encoding/json"
	"math"
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

	// PyTorch: the original checkpoint (float64, transformers' BertForMaskedLM
	// as testdata/hfref.py re-implements it) with the adapter's rows put in
	// place of the slot rows of the tied table, as PEFT's Trainable Tokens
	// does, gives the logits gopeft gives.
	ids, _, err := tok.Encode("the zorblax is [MASK] quindle")
	require.NoError(t, err)
	cls, _ := tok.ID("[CLS]")
	sep, _ := tok.ID("[SEP]")
	ids = append(append([]int{cls}, ids...), sep)
	terms, err := tok.Decode(ids)
	require.NoError(t, err)
	positions := []int{2, 4}
	goLogits, err := finetune.MaskedLMLogits(m, terms, positions, tm.LogitsFunc(m.Layers[3].(*linear.Model)))
	require.NoError(t, err)
	idsJSON, _ := json.Marshal(ids)
	posJSON, _ := json.Marshal(positions)
	prog := `
import json, struct, sys, torch
sys.path.insert(0, sys.argv[1])
import hfref
cfg, P = hfref.load_model("bert-tiny")
table = P["bert.embeddings.word_embeddings.weight"].clone()
adir = sys.argv[2]
ids = json.load(open(adir + "/adapter_config.json"))["token_indices"]
data = open(adir + "/adapter_model.safetensors", "rb").read()
n = struct.unpack("<Q", data[:8])[0]
hdr = json.loads(data[8:8 + n])
info = hdr["base_model.model.bert.embeddings.word_embeddings.trainable_tokens_delta"]
b, e = info["data_offsets"]
rows = torch.frombuffer(bytearray(data[8 + n + b:8 + n + e]), dtype=torch.float32).reshape(info["shape"])
table[torch.tensor(ids)] = rows.double()
logits = hfref.bert_mlm_logits(P, cfg, table, json.loads(sys.argv[3]))
print(json.dumps(logits[torch.tensor(json.loads(sys.argv[4]))].tolist()))
`
	tout, err := exec.Command(py, "-c", prog, filepath.Dir(testmodels.Dir(testmodels.BERTName)), dir, string(idsJSON), string(posJSON)).CombinedOutput()
	require.NoError(t, err, "%s", tout)
	var torchLogits [][]float64
	require.NoError(t, json.Unmarshal(tout, &torchLogits), "%s", tout)
	g := goLogits.Value().(mat.Matrix)
	vocab := g.Shape()[0]
	require.Len(t, torchLogits, len(positions))
	worst := 0.0
	for j := range positions {
		require.Len(t, torchLogits[j], vocab)
		for v := 0; v < vocab; v++ {
			worst = math.Max(worst, math.Abs(torchLogits[j][v]-g.ScalarAt(v, j).F64()))
		}
	}
	t.Logf("max |gopeft - PyTorch| over %d logits: %g", vocab*len(positions), worst)
	assert.Less(t, worst, 1e-5, "reserved-slot adapter on the original checkpoint in PyTorch")
}
