package models_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft"
	"github.com/gopeft/gopeft/models"
)

// editConfig rewrites dir/config.json through f.
func editConfig(t *testing.T, dir string, f func(map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(data, &cfg))
	f(cfg)
	data, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// Loading checks config.json before converting or building anything:
// every missing or zero size, a missing activation, a directory of the
// other family. Never a panic, never a zero-layer model.
func TestLoadChecksConfig(t *testing.T) {
	bertFields := []string{"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings", "type_vocab_size", "hidden_act"}
	bartFields := []string{"vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "max_position_embeddings", "activation_function"}
	load := map[string]func(string) error{
		"bert-tiny": func(d string) error { _, err := models.LoadBERT(d); return err },
		"bart-tiny": func(d string) error { _, err := models.LoadBART(d); return err },
	}
	for name, fields := range map[string][]string{"bert-tiny": bertFields, "bart-tiny": bartFields} {
		for _, field := range fields {
			for _, bad := range []any{nil, 0, -3, "missing", 2.5} {
				t.Run(name+"/"+field, func(t *testing.T) {
					dir, err := gopeft.WriteTinyModel(name, t.TempDir())
					require.NoError(t, err)
					editConfig(t, dir, func(c map[string]any) {
						if bad == "missing" {
							delete(c, field)
						} else {
							c[field] = bad
						}
					})
					err = load[name](dir)
					require.ErrorIs(t, err, models.ErrBadConfig, "%s = %v", field, bad)
					assert.ErrorContains(t, err, `"`+field+`"`)
					_, statErr := os.Stat(filepath.Join(dir, models.SpagoFile))
					assert.ErrorIs(t, statErr, os.ErrNotExist, "nothing was converted")
				})
			}
		}
	}
	t.Run("other family", func(t *testing.T) {
		bartDir, err := gopeft.WriteTinyModel("bart-tiny", t.TempDir())
		require.NoError(t, err)
		_, err = models.LoadBERT(bartDir)
		require.ErrorIs(t, err, models.ErrBadConfig)
		assert.ErrorContains(t, err, `is a BART model (model_type "bart"), not BERT; load it with LoadBART`)
		bertDir, err := gopeft.WriteTinyModel("bert-tiny", t.TempDir())
		require.NoError(t, err)
		_, err = models.LoadBART(bertDir)
		require.ErrorIs(t, err, models.ErrBadConfig)
		assert.ErrorContains(t, err, `is a BERT model (model_type "bert"), not BART; load it with LoadBERT`)
	})
	t.Run("heads do not divide the width", func(t *testing.T) {
		dir, err := gopeft.WriteTinyModel("bert-tiny", t.TempDir())
		require.NoError(t, err)
		editConfig(t, dir, func(c map[string]any) { c["num_attention_heads"] = 5 })
		_, err = models.LoadBERT(dir)
		require.ErrorIs(t, err, models.ErrBadConfig)
		assert.ErrorContains(t, err, "hidden_size = 32 is not a multiple of num_attention_heads = 5")
	})
	t.Run("no model_type", func(t *testing.T) {
		dir, err := gopeft.WriteTinyModel("bert-tiny", t.TempDir())
		require.NoError(t, err)
		editConfig(t, dir, func(c map[string]any) { delete(c, "model_type") })
		_, err = models.LoadBERT(dir)
		require.ErrorIs(t, err, models.ErrBadConfig)
		assert.ErrorContains(t, err, `no "model_type"`)
	})
}

// A converted file older than, or built from another, pytorch_model.bin is
// rebuilt, never silently used.
func TestStaleConversionIsRebuilt(t *testing.T) {
	dir, err := gopeft.WriteTinyModel("bert-tiny", t.TempDir())
	require.NoError(t, err)
	_, err = models.LoadBERT(dir)
	require.NoError(t, err)
	spago := filepath.Join(dir, models.SpagoFile)
	record := filepath.Join(dir, models.SourceFile)
	require.FileExists(t, record)

	// Fresh: the same source (even touched) keeps the converted file.
	good, err := os.ReadFile(spago)
	require.NoError(t, err)
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "pytorch_model.bin"), later, later))
	require.NoError(t, os.WriteFile(spago, []byte("stale marker"), 0o644))
	_, err = models.LoadBERT(dir)
	require.Error(t, err, "same source by SHA-256: the (damaged) converted file is used, not rebuilt")

	// Built from another source (the record names another SHA-256): rebuilt.
	rec, err := os.ReadFile(record)
	require.NoError(t, err)
	var r map[string]any
	require.NoError(t, json.Unmarshal(rec, &r))
	r["sha256"] = "0000000000000000000000000000000000000000000000000000000000000000"
	rec, _ = json.Marshal(r)
	require.NoError(t, os.WriteFile(record, rec, 0o644))
	m, err := models.LoadBERT(dir)
	require.NoError(t, err, "rebuilt from pytorch_model.bin")
	assert.Equal(t, 1038, m.Bert.Config.VocabSize)
	now, err := os.ReadFile(spago)
	require.NoError(t, err)
	assert.Equal(t, good, now)

	// No record, converted file older than the source: rebuilt.
	require.NoError(t, os.Remove(record))
	require.NoError(t, os.WriteFile(spago, []byte("stale marker"), 0o644))
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(spago, old, old))
	_, err = models.LoadBERT(dir)
	require.NoError(t, err)
	require.FileExists(t, record)
}
