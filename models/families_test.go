package models_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/models"
)

// copyDir copies the regular files of testdata/<name> into dst.
func copyDir(t *testing.T, name, dst string, skip ...string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dst, 0o755))
	entries, err := os.ReadDir(testmodels.Dir(name))
	require.NoError(t, err)
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == models.SpagoFile {
			continue
		}
		skipped := false
		for _, s := range skip {
			skipped = skipped || s == e.Name()
		}
		if skipped {
			continue
		}
		data, err := os.ReadFile(filepath.Join(testmodels.Dir(name), e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644))
	}
}

// Every family loads both ways: converted on the fly from a Hugging Face
// directory, and from a directory that holds only a cybertron-saved
// spago_model.bin (gob, no pytorch_model.bin), with the same outputs.
func TestFamiliesLoadConvertedAndSaved(t *testing.T) {
	for _, name := range []string{testmodels.ELECTRAName, testmodels.MarianName, testmodels.PegasusName} {
		t.Run(name, func(t *testing.T) {
			hf := filepath.Join(t.TempDir(), name)
			copyDir(t, name, hf)
			saved := filepath.Join(t.TempDir(), name)
			// Only the config (cybertron's loaders read it) and the gob.
			copyDir(t, name, saved, "pytorch_model.bin")
			require.NoFileExists(t, filepath.Join(saved, "pytorch_model.bin"))

			var load func(dir string) (nn.Model, error)
			var out func(m nn.Model) []float64
			if name == testmodels.ELECTRAName {
				load = func(dir string) (nn.Model, error) { return models.LoadBERT(dir) }
				out = func(m nn.Model) []float64 {
					p := m.(*bert.ModelForMaskedLM).Predict([]string{"[CLS]", "the", "[MASK]", "is", "red", ".", "[SEP]"})
					require.Len(t, p, 1)
					return p[2].Value().Data().F64()
				}
			} else {
				load = func(dir string) (nn.Model, error) { return models.LoadBART(dir) }
				out = func(m nn.Model) []float64 {
					b := m.(*bart.ModelForConditionalGeneration)
					enc := b.Bart.Encoder.Encode([]int{100, 200, 300, b.Bart.Config.EosTokenID})
					dec, _ := b.Bart.Decoder.Decode(enc, []int{b.Bart.Config.DecoderStartTokenID, 400}, nil, 1)
					return b.Projection.Forward(dec[1])[0].Value().Data().F64()
				}
			}
			m1, err := load(hf)
			require.NoError(t, err, "converted on the fly")
			require.FileExists(t, filepath.Join(hf, models.SpagoFile))
			data, err := os.ReadFile(filepath.Join(hf, models.SpagoFile))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(saved, models.SpagoFile), data, 0o644))
			m2, err := load(saved)
			require.NoError(t, err, "cybertron-saved spago_model.bin")
			want := out(m1)
			require.NotEmpty(t, want)
			assert.Equal(t, want, out(m2), "both loads compute the same function")

			// A model saved by models.Save after loading loads again.
			again := filepath.Join(t.TempDir(), name)
			copyDir(t, name, again, "pytorch_model.bin")
			require.NoError(t, models.Save(m2, again))
			m3, err := load(again)
			require.NoError(t, err)
			assert.Equal(t, want, out(m3))
		})
	}
}

// A Marian or Pegasus config.json whose BART-era keys are missing or say
// another architecture is refused before conversion, naming the family and
// the key: cybertron would otherwise build BART's defaults silently.
func TestSeq2SeqFamilyFlagsChecked(t *testing.T) {
	for _, tt := range []struct {
		name, key string
		value     any // nil: delete the key
		want      string
	}{
		{testmodels.MarianName, "normalize_embedding", nil, `marian checkpoint without "normalize_embedding"`},
		{testmodels.MarianName, "static_position_embeddings", nil, `marian checkpoint without "static_position_embeddings"`},
		{testmodels.MarianName, "normalize_before", true, `marian checkpoint with "normalize_before" true`},
		{testmodels.PegasusName, "normalize_before", nil, `pegasus checkpoint without "normalize_before"`},
		{testmodels.PegasusName, "add_final_layer_norm", false, `pegasus checkpoint with "add_final_layer_norm" false`},
		{testmodels.PegasusName, "static_position_embeddings", "yes", `"static_position_embeddings" is yes; expected true or false`},
	} {
		t.Run(tt.name+"/"+tt.key, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tt.name)
			copyDir(t, tt.name, dir)
			raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
			require.NoError(t, err)
			var cfg map[string]any
			require.NoError(t, json.Unmarshal(raw, &cfg))
			if tt.value == nil {
				delete(cfg, tt.key)
			} else {
				cfg[tt.key] = tt.value
			}
			raw, err = json.Marshal(cfg)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644))
			_, err = models.LoadBART(dir)
			require.ErrorIs(t, err, models.ErrBadConfig)
			assert.Contains(t, err.Error(), tt.want)
			assert.NoFileExists(t, filepath.Join(dir, models.SpagoFile))
		})
	}
	// Marian's absent normalize_before / add_final_layer_norm are fine
	// (cybertron's default is Marian's architecture).
	dir := filepath.Join(t.TempDir(), testmodels.MarianName)
	copyDir(t, testmodels.MarianName, dir)
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(raw, &cfg))
	delete(cfg, "normalize_before")
	delete(cfg, "add_final_layer_norm")
	raw, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644))
	_, err = models.LoadBART(dir)
	require.NoError(t, err)
}
