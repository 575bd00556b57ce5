package registry_test

import (
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/registry"
)

// The families cybertron maps onto its BERT and BART keep their own
// Hugging Face module paths and classes, so PEFT's target_modules and keys
// port: ELECTRA's table is electra.embeddings.word_embeddings and its tied
// head generator_lm_head; Marian and Pegasus keep model.shared / lm_head.
func TestFamilyLayouts(t *testing.T) {
	for _, tt := range []struct {
		name                   string
		describe               func(t *testing.T) (*registry.Layout, error)
		modelType, class       string
		module, input, output  string
		inputNames, matchNames []string
	}{
		{"bert", func(t *testing.T) (*registry.Layout, error) { return registry.Describe(testmodels.BERT(t)) },
			"bert", "BertForMaskedLM", "transformers.models.bert.modeling_bert", "bert.embeddings.word_embeddings", "cls.predictions.decoder",
			nil, []string{"word_embeddings", "cls.predictions.decoder"}},
		{"electra", func(t *testing.T) (*registry.Layout, error) { return registry.Describe(testmodels.ELECTRA(t)) },
			"electra", "ElectraForMaskedLM", "transformers.models.electra.modeling_electra", "electra.embeddings.word_embeddings", "generator_lm_head",
			[]string{"Bert.Embeddings.Tokens"}, []string{"word_embeddings", "electra.embeddings.word_embeddings", "generator_lm_head"}},
		{"electra encoder", func(t *testing.T) (*registry.Layout, error) { return registry.Describe(testmodels.ELECTRA(t).Bert) },
			"electra", "ElectraModel", "transformers.models.electra.modeling_electra", "embeddings.word_embeddings", "",
			nil, []string{"embeddings.word_embeddings"}},
		{"electra token classification", func(t *testing.T) (*registry.Layout, error) {
			b := testmodels.ELECTRA(t).Bert
			b.Config.ID2Label = map[string]string{"0": "A", "1": "B"}
			return registry.Describe(bert.NewModelForTokenClassification[float32](b))
		}, "electra", "ElectraForTokenClassification", "transformers.models.electra.modeling_electra", "electra.embeddings.word_embeddings", "",
			nil, []string{"electra.embeddings.word_embeddings"}},
		{"marian", func(t *testing.T) (*registry.Layout, error) { return registry.Describe(testmodels.Marian(t)) },
			"marian", "MarianMTModel", "transformers.models.marian.modeling_marian", "model.shared", "lm_head",
			[]string{"model.encoder.embed_tokens", "model.decoder.embed_tokens"}, []string{"embed_tokens", "model.shared", "lm_head"}},
		{"pegasus", func(t *testing.T) (*registry.Layout, error) { return registry.Describe(testmodels.Pegasus(t)) },
			"pegasus", "PegasusForConditionalGeneration", "transformers.models.pegasus.modeling_pegasus", "model.shared", "lm_head",
			[]string{"model.encoder.embed_tokens", "model.decoder.embed_tokens"}, []string{"embed_tokens", "model.shared", "lm_head"}},
		{"pegasus base", func(t *testing.T) (*registry.Layout, error) { return registry.Describe(testmodels.Pegasus(t).Bart) },
			"pegasus", "PegasusModel", "transformers.models.pegasus.modeling_pegasus", "shared", "",
			[]string{"encoder.embed_tokens"}, []string{"shared"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := tt.describe(t)
			require.NoError(t, err)
			assert.Equal(t, tt.modelType, l.ModelType)
			assert.Equal(t, tt.class, l.HFClass)
			assert.Equal(t, tt.module, l.HFModule)
			require.NotNil(t, l.Input())
			assert.Equal(t, tt.input, l.Input().HFPath)
			for _, n := range tt.inputNames {
				assert.Contains(t, l.Input().Names, n)
			}
			if tt.output == "" {
				assert.Empty(t, l.Outputs)
			} else {
				require.Len(t, l.Outputs, 1)
				assert.Equal(t, tt.output, l.Outputs[0].HFPath)
				assert.Same(t, l.Input(), l.Outputs[0].Of)
			}
			for _, n := range tt.matchNames {
				tabs, err := l.Match(registry.Targets{Names: []string{n}})
				require.NoError(t, err, n)
				require.Len(t, tabs, 1)
				assert.Same(t, l.Input(), tabs[0], n)
			}
			// BERT's paths do not name an ELECTRA module, and the other way round.
			wrong := map[string]string{"electra": "bert.embeddings.word_embeddings", "bert": "electra.embeddings.word_embeddings"}[tt.modelType]
			if wrong != "" && tt.output != "" {
				_, err := l.Match(registry.Targets{Names: []string{wrong}})
				assert.ErrorIs(t, err, registry.ErrTargetNotFound)
			}
		})
	}
}
