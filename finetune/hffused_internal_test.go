package finetune

import (
	"testing"

	"github.com/nlpodyssey/spago/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/hfact"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// With Hugging Face's function (exact GELU modules, config eps) the
// testdata models still take the fused path.
func TestFusedPathTakesHuggingFaceModules(t *testing.T) {
	setFrozen := func(m nn.Model) {
		for _, p := range AllParams(m) {
			p.SetRequiresGrad(false)
		}
	}
	bm := testmodels.BERT(t)
	setFrozen(bm)
	require.IsType(t, &hfact.GELU{}, bm.Layers[1])
	f, ok := fusedBERTOf[float32](training, bm.Bert, bm.Layers[:len(bm.Layers)-1])
	require.True(t, ok, "BERT with hfact.GELU must be fused")
	assert.Equal(t, float32(1e-12), f.norm.eps, "embedding LayerNorm eps")
	require.Len(t, f.transform, 3)
	assert.Equal(t, geluErf, f.transform[1].act)
	assert.Equal(t, float32(1e-12), f.transform[2].norm.eps, "MLM transform LayerNorm eps")

	am := testmodels.BART(t)
	setFrozen(am)
	s, err := seq2SeqOf(training, am)
	require.NoError(t, err)
	_, ok = fusedBARTOf[float32](training, s)
	require.True(t, ok, "BART with hfact.GELU must be fused")
}
