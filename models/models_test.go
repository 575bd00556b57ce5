package models_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/tasks"
	"github.com/nlpodyssey/cybertron/pkg/tasks/languagemodeling"
	bertlm "github.com/nlpodyssey/cybertron/pkg/tasks/languagemodeling/bert"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/models"
)

func TestTinyModelsLoadAndSave(t *testing.T) {
	work := t.TempDir()
	bm, dir, err := models.TinyBERT(work)
	require.NoError(t, err)
	assert.Equal(t, 1038, bm.Bert.Config.VocabSize)
	am, _, err := models.TinyBART(work)
	require.NoError(t, err)
	assert.Same(t, am.Bart.Embeddings, am.Bart.Decoder.Embeddings.SharedEmbeddings.Model)

	// Save atomically and load back through cybertron's task loader.
	out := filepath.Join(work, "saved", "bert-tiny")
	require.NoError(t, os.MkdirAll(out, 0o755))
	for _, f := range []string{"config.json", "vocab.txt", "tokenizer_config.json"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(out, f), data, 0o644))
	}
	require.NoError(t, models.Save(bm, out))
	entries, _ := os.ReadDir(out)
	assert.Len(t, entries, 4, "no temporary file left behind")
	lm, err := tasks.Load[languagemodeling.Interface](&tasks.Config{
		ModelsDir: filepath.Join(work, "saved"), ModelName: "bert-tiny",
		DownloadPolicy: tasks.DownloadNever, ConversionPolicy: tasks.ConvertNever,
	})
	require.NoError(t, err)
	assert.IsType(t, &bertlm.LanguageModel{}, lm)
}

func TestErrors(t *testing.T) {
	_, err := models.LoadBERT(t.TempDir())
	assert.ErrorContains(t, err, "is not a model directory")
	_, err = models.Tiny("gpt-huge", t.TempDir())
	assert.ErrorContains(t, err, `unknown tiny model "gpt-huge"`)
}
