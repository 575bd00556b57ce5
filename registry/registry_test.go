package registry_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/registry"
)

func TestDescribeCybertron(t *testing.T) {
	bertL, err := registry.Describe(testmodels.BERT(t))
	require.NoError(t, err)
	assert.Equal(t, "bert.ModelForMaskedLM", bertL.Architecture)
	require.NotNil(t, bertL.Input())
	assert.Equal(t, "bert.embeddings.word_embeddings", bertL.Input().HFPath)
	assert.Equal(t, "Bert.Embeddings.Tokens", bertL.Input().Path)
	require.Len(t, bertL.Outputs, 1)
	assert.Equal(t, "cls.predictions.decoder", bertL.Outputs[0].HFPath)

	bartM := testmodels.BART(t)
	bartL, err := registry.Describe(bartM)
	require.NoError(t, err)
	assert.Equal(t, "model.shared", bartL.Input().HFPath)
	assert.Same(t, bartM.Bart.Embeddings, bartL.Input().Embedding)
	assert.Contains(t, bartL.Input().Names, "model.decoder.embed_tokens")
	assert.Equal(t, "lm_head", bartL.Outputs[0].HFPath)
}

func TestMatch(t *testing.T) {
	bertL, err := registry.Describe(testmodels.BERT(t))
	require.NoError(t, err)
	bartL, err := registry.Describe(testmodels.BART(t))
	require.NoError(t, err)
	cases := []struct {
		name   string
		layout *registry.Layout
		t      registry.Targets
		want   []string
	}{
		{"default is input", bertL, registry.Targets{}, []string{"bert.embeddings.word_embeddings"}},
		{"exact HF path", bertL, registry.Targets{Names: []string{"bert.embeddings.word_embeddings"}}, []string{"bert.embeddings.word_embeddings"}},
		{"dotted suffix", bertL, registry.Targets{Names: []string{"word_embeddings"}}, []string{"bert.embeddings.word_embeddings"}},
		{"Go path", bertL, registry.Targets{Names: []string{"Bert.Embeddings.Tokens"}}, []string{"bert.embeddings.word_embeddings"}},
		{"two tables", bertL, registry.Targets{Names: []string{"word_embeddings", "token_type_embeddings"}}, []string{"bert.embeddings.word_embeddings", "bert.embeddings.token_type_embeddings"}},
		{"tied head name", bertL, registry.Targets{Names: []string{"cls.predictions.decoder"}}, []string{"bert.embeddings.word_embeddings"}},
		{"shared", bartL, registry.Targets{Names: []string{"shared"}}, []string{"model.shared"}},
		{"embed_tokens is the shared table", bartL, registry.Targets{Names: []string{"embed_tokens"}}, []string{"model.shared"}},
		{"encoder and decoder names are one table", bartL, registry.Targets{Names: []string{"encoder.embed_tokens", "decoder.embed_tokens"}}, []string{"model.shared"}},
		{"lm_head", bartL, registry.Targets{Names: []string{"lm_head"}}, []string{"model.shared"}},
		{"regex full match", bartL, registry.Targets{Regex: `model\.(en|de)coder\.embed_positions`}, []string{"model.encoder.embed_positions", "model.decoder.embed_positions"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.layout.Match(tc.t)
			require.NoError(t, err)
			var paths []string
			for _, g := range got {
				paths = append(paths, g.HFPath)
			}
			assert.Equal(t, tc.want, paths)
		})
	}
	t.Run("regex must match a whole name", func(t *testing.T) {
		_, err := bartL.Match(registry.Targets{Regex: "shared"})
		require.ErrorIs(t, err, registry.ErrTargetNotFound, "PEFT's re.fullmatch: 'shared' is not 'model.shared'")
		got, err := bartL.Match(registry.Targets{Regex: ".*shared"})
		require.NoError(t, err)
		assert.Equal(t, "model.shared", got[0].HFPath)
	})
	t.Run("not found lists paths", func(t *testing.T) {
		_, err := bertL.Match(registry.Targets{Names: []string{"embed_tokens"}})
		require.ErrorIs(t, err, registry.ErrTargetNotFound)
		assert.Contains(t, err.Error(), "bert.embeddings.word_embeddings")
		assert.Contains(t, err.Error(), "bert.embeddings.position_embeddings")
	})
}

// custom models: one implementing InputEmbedder, one found by walking.
type twoTables struct {
	nn.Module
	Text  *embedding.Model
	Image *embedding.Model
}

func (m *twoTables) InputEmbeddings() *embedding.Model { return m.Image }

type plain struct {
	nn.Module
	Encoder struct {
		EmbedTokens *embedding.Model
	}
	Other *embedding.Model
}

func TestDescribeCustom(t *testing.T) {
	tt := &twoTables{Text: embedding.New[float32](10, 4), Image: embedding.New[float32](5, 4)}
	l, err := registry.Describe(tt)
	require.NoError(t, err)
	assert.Same(t, tt.Image, l.Input().Embedding)
	assert.Equal(t, "image", l.Input().HFPath)

	p := &plain{Other: embedding.New[float32](3, 2)}
	p.Encoder.EmbedTokens = embedding.New[float32](7, 2)
	l, err = registry.Describe(p)
	require.NoError(t, err)
	assert.Same(t, p.Encoder.EmbedTokens, l.Input().Embedding, "name fallback embed_tokens")
	assert.Equal(t, "encoder.embed_tokens", l.Input().HFPath)

	_, err = registry.Describe(&struct{ nn.Module }{})
	assert.ErrorIs(t, err, registry.ErrNoEmbeddings)
}

func TestLoadAdapterDispatch(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, registry.ConfigFile), []byte(s), 0o644))
	}
	_, err := registry.LoadAdapter(nil, filepath.Join(dir, "missing"), "x")
	require.Error(t, err)
	write(`{"peft_type": "LORA"}`)
	_, err = registry.LoadAdapter(nil, dir, "x")
	require.ErrorIs(t, err, registry.ErrUnknownMethod)
	assert.Contains(t, err.Error(), `"LORA"`)
	write(`{"peft_type": `)
	_, err = registry.LoadAdapter(nil, dir, "x")
	assert.ErrorContains(t, err, "malformed JSON")
	write(`{}`)
	_, err = registry.LoadAdapter(nil, dir, "x")
	assert.ErrorContains(t, err, `missing "peft_type"`)

	registry.RegisterMethod("TEST_METHOD", func(model nn.Model, d, name string) (registry.Adapter, error) {
		return &fakeAdapter{loaded: name + "@" + d}, nil
	})
	write(`{"peft_type": "TEST_METHOD"}`)
	got, err := registry.LoadAdapter(nil, dir, "n")
	require.NoError(t, err)
	require.IsType(t, &fakeAdapter{}, got)
	assert.Equal(t, "n@"+dir, got.(*fakeAdapter).loaded)
	assert.Contains(t, registry.Methods(), "TEST_METHOD")
	assert.Panics(t, func() {
		registry.RegisterMethod("TEST_METHOD", func(nn.Model, string, string) (registry.Adapter, error) { return nil, nil })
	})
}

func TestSnakePath(t *testing.T) {
	assert.Equal(t, "bart.encoder.embed_tokens", registry.SnakePath("Bart.Encoder.EmbedTokens"))
	assert.Equal(t, "layers.3", registry.SnakePath("Layers.3"))
	assert.Equal(t, "mlm_head", registry.SnakePath("MLMHead"))
}

// fakeAdapter is a method's adapter model as the registry sees it.
type fakeAdapter struct {
	nn.Module
	loaded string
}

func (f *fakeAdapter) Base() nn.Model                                   { return nil }
func (f *fakeAdapter) Adapters() []string                               { return []string{"n"} }
func (f *fakeAdapter) Active() []string                                 { return []string{"n"} }
func (f *fakeAdapter) SetActive(...string) error                        { return nil }
func (f *fakeAdapter) MergeAndUnload(bool, ...string) (nn.Model, error) { return nil, nil }
func (f *fakeAdapter) Unload() (nn.Model, error)                        { return nil, nil }

// The per-type table: family, base model, Hugging Face class, output heads
// and vocabulary-sized buffers, for every type SupportedModels lists.
func TestCybertronTable(t *testing.T) {
	assert.Len(t, registry.SupportedModels(), 9)
	bm := testmodels.BERT(t)
	l, err := registry.Describe(bm)
	require.NoError(t, err)
	assert.Equal(t, registry.FamilyBERT, l.Family)
	assert.Same(t, bm.Bert, l.Core)
	assert.Equal(t, "BertForMaskedLM", l.HFClass)
	assert.Equal(t, "transformers.models.bert.modeling_bert", l.HFModule)
	require.Len(t, l.Outputs, 1)
	assert.Same(t, l.Input(), l.Outputs[0].Of)
	assert.Empty(t, l.BadOutputs)

	bm.Layers[3] = wrappedHead{bm.Layers[3]}
	l, err = registry.Describe(bm)
	require.NoError(t, err)
	assert.Empty(t, l.Outputs)
	require.Len(t, l.BadOutputs, 1)
	assert.Equal(t, "Layers[3] is registry_test.wrappedHead, expected *linear.Model", l.BadOutputs[0].Reason)

	am := testmodels.BART(t)
	l, err = registry.Describe(am)
	require.NoError(t, err)
	assert.Equal(t, registry.FamilyBART, l.Family)
	assert.Same(t, am.Bart, l.Core)
	assert.Equal(t, "BartForConditionalGeneration", l.HFClass)
	require.Len(t, l.VocabBuffers, 2)
	assert.Equal(t, "PadMask", l.VocabBuffers[0].Path)
	assert.Same(t, am.PadMask, *l.VocabBuffers[0].Slot)
	assert.Equal(t, "EosMask", l.VocabBuffers[1].Path)
	assert.True(t, math.IsInf(l.VocabBuffers[1].Fill, -1))

	l, err = registry.Describe(&plain{Other: embedding.New[float32](3, 2)})
	require.NoError(t, err)
	assert.Equal(t, "", l.Family)
	assert.Nil(t, l.Core)
}

type wrappedHead struct{ nn.StandardModel }
