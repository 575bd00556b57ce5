package models_test

import (
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/activation"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/hfact"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/internal/walk"
	"github.com/gopeft/gopeft/models"
)

// functionOf lists every LayerNorm eps and every activation module of m.
func functionOf(m nn.Model) (eps []float64, acts []string) {
	walk.WalkAll(m, func(n walk.Node) {
		switch v := n.Value.(type) {
		case *layernorm.Model:
			eps = append(eps, v.Eps.Value().(mat.Matrix).Item().F64())
		case *activation.Model:
			acts = append(acts, n.Path+"="+actName(v.Activation))
		case *hfact.GELU:
			acts = append(acts, n.Path+"=erf")
		}
	})
	return eps, acts
}

func allEqual(t *testing.T, want float64, got []float64) {
	t.Helper()
	require.NotEmpty(t, got)
	for i, v := range got {
		assert.InDelta(t, want, v, want*1e-6, "LayerNorm %d", i)
	}
}

func TestLoadBERTGivesHuggingFacesFunction(t *testing.T) {
	m, err := models.LoadBERT(testmodels.ConvertedDir(t, testmodels.BERTName))
	require.NoError(t, err)
	eps, acts := functionOf(m)
	allEqual(t, 1e-12, eps) // config.json's layer_norm_eps
	assert.ElementsMatch(t, []string{
		"Bert.Encoder.Layers.0.FF.MLP.1=erf", "Bert.Encoder.Layers.1.FF.MLP.1=erf",
		"Bert.Pooler.Model.1=Tanh", "Layers.1=erf",
	}, acts)

	// Calling it again changes nothing.
	require.NoError(t, models.HFFunction(m))
	eps2, acts2 := functionOf(m)
	assert.Equal(t, eps, eps2)
	assert.Equal(t, acts, acts2)

	// Back to cybertron's function, and forth again.
	require.NoError(t, models.CybertronFunction(m))
	eps, acts = functionOf(m)
	allEqual(t, 1e-5, eps)
	assert.ElementsMatch(t, []string{
		"Bert.Encoder.Layers.0.FF.MLP.1=GELU", "Bert.Encoder.Layers.1.FF.MLP.1=GELU",
		"Bert.Pooler.Model.1=Tanh", "Layers.1=GELU",
	}, acts)
	require.NoError(t, models.HFFunction(m))
	eps, acts = functionOf(m)
	allEqual(t, 1e-12, eps)
	assert.Contains(t, acts, "Layers.1=erf")
}

func TestLoadBARTGivesHuggingFacesFunction(t *testing.T) {
	m, err := models.LoadBART(testmodels.ConvertedDir(t, testmodels.BARTName))
	require.NoError(t, err)
	eps, acts := functionOf(m)
	allEqual(t, 1e-5, eps)
	require.NotEmpty(t, acts)
	for _, a := range acts {
		if a[len(a)-5:] == "=Tanh" { // the classification head's
			continue
		}
		assert.Regexp(t, `=erf$`, a)
	}
}

func TestHuggingFaceFunctionSurvivesSaveAndLoad(t *testing.T) {
	m := testmodels.BERT(t)
	dir := testmodels.ConvertedDir(t, testmodels.BERTName)
	require.NoError(t, models.Save(m, dir))
	back, err := models.LoadBERT(dir)
	require.NoError(t, err)
	tokens := []string{"[CLS]", "the", "[MASK]", "is", "red", ".", "[SEP]"}
	want := m.Predict(tokens)[2].Value().(mat.Matrix).Data().F64()
	got := back.Predict(tokens)[2].Value().(mat.Matrix).Data().F64()
	assert.Equal(t, want, got)
	_, acts := functionOf(back)
	assert.Contains(t, acts, "Layers.1=erf")
}

func TestHFFunctionRefusesBadInput(t *testing.T) {
	assert.ErrorContains(t, models.HFFunction(nil), "nil model")
	assert.ErrorContains(t, models.HFFunction(linear.New[float32](2, 2)), "no cybertron BERT or BART")
	assert.ErrorContains(t, models.CybertronFunction(linear.New[float32](2, 2)), "no cybertron BERT or BART")

	for _, c := range []struct {
		edit func(*bert.Config)
		msg  string
	}{
		{func(c *bert.Config) { c.LayerNormEps = -1 }, "layer_norm_eps is -1"},
		{func(c *bert.Config) { c.LayerNormEps = 2 }, "layer_norm_eps is 2"},
		{func(c *bert.Config) { c.HiddenAct = "quick_gelu" }, `activation "quick_gelu"`},
	} {
		m, err := models.LoadBERT(testmodels.ConvertedDir(t, testmodels.BERTName))
		require.NoError(t, err)
		require.NoError(t, models.CybertronFunction(m))
		before, beforeActs := functionOf(m)
		c.edit(&m.Bert.Config)
		assert.ErrorContains(t, models.HFFunction(m), c.msg)
		after, afterActs := functionOf(m)
		assert.Equal(t, before, after, "a refused call leaves the model as it was")
		assert.Equal(t, beforeActs, afterActs)
	}

	// A missing layer_norm_eps is BertConfig's default.
	m := testmodels.BERT(t)
	m.Bert.Config.LayerNormEps = 0
	require.NoError(t, models.HFFunction(m))
	eps, _ := functionOf(m)
	allEqual(t, 1e-12, eps)
}

func actName(a activation.Activation) string {
	switch a {
	case activation.GELU:
		return "GELU"
	case activation.Tanh:
		return "Tanh"
	case activation.ReLU:
		return "ReLU"
	}
	return "other"
}
