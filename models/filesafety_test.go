package models_test

// Issue 10 points 2 and 3: the tiny-model helpers write only their own
// files, and loading never blocks on a special file. These tests use only
// API that existed before the fix, so that they can be run against the old
// code (where they fail or hang).

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft"
	"github.com/gopeft/gopeft/internal/testfs"
	"github.com/gopeft/gopeft/models"
)

// TestTinyKeepsUserFiles: calling the tiny-model helpers again (a re-run
// notebook cell) keeps everything the user saved beside the model.
func TestTinyKeepsUserFiles(t *testing.T) {
	user := map[string]string{
		"adapter/adapter_config.json":       "{}",
		"adapter/adapter_model.safetensors": "rows",
		"grown/vocab.txt":                   "[PAD]\nzorblax\n",
		"notes.md":                          "mine",
	}
	for _, tc := range []struct {
		name string
		make func(work string) (string, error)
	}{
		{"TinyBERT", func(work string) (string, error) { _, dir, err := models.TinyBERT(work); return dir, err }},
		{"TinyBART", func(work string) (string, error) { _, dir, err := models.TinyBART(work); return dir, err }},
		{"Tiny", func(work string) (string, error) { return models.Tiny("bert-tiny", work) }},
		{"WriteTinyModel", func(work string) (string, error) { return gopeft.WriteTinyModel("bart-tiny", work) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			dir, err := tc.make(work)
			require.NoError(t, err)
			for name, content := range user {
				p := filepath.Join(dir, name)
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
				require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
			}
			require.NoError(t, os.WriteFile(filepath.Join(work, "beside.txt"), []byte("x"), 0o644))
			before, err := os.Stat(dir)
			require.NoError(t, err)

			again, err := tc.make(work)
			require.NoError(t, err)
			assert.Equal(t, dir, again)
			for name, content := range user {
				got, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err, "%s survives", name)
				assert.Equal(t, content, string(got))
			}
			after, err := os.Stat(dir)
			require.NoError(t, err)
			assert.True(t, os.SameFile(before, after), "the directory itself is kept")
			assert.ElementsMatch(t, []string{filepath.Base(dir), "beside.txt"}, testfs.Names(t, work), "no temporary directory left")
			for _, e := range testfs.Names(t, dir) {
				assert.False(t, strings.HasPrefix(e, "."), "temporary file %s left", e)
			}
		})
	}
}

// TestModelFilesSpecial: a FIFO as spago_model.bin or as config.json is
// an error at once.
func TestModelFilesSpecial(t *testing.T) {
	for _, file := range []string{models.SpagoFile, "config.json"} {
		t.Run(file, func(t *testing.T) {
			dir, err := gopeft.WriteTinyModel("bert-tiny", t.TempDir())
			require.NoError(t, err)
			p := filepath.Join(dir, file)
			os.Remove(p)
			testfs.Mkfifo(t, p)
			err = testfs.Within(t, func() error { _, err := models.LoadBERT(dir); return err })
			require.Error(t, err)
			assert.ErrorContains(t, err, "not a regular file")
			assert.ErrorContains(t, err, p)
		})
	}
	t.Run("embedded file name taken by a directory", func(t *testing.T) {
		work := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(work, "bert-tiny", "config.json", "mine"), 0o755))
		_, err := gopeft.WriteTinyModel("bert-tiny", work)
		require.Error(t, err)
		assert.DirExists(t, filepath.Join(work, "bert-tiny", "config.json", "mine"))
	})
}
