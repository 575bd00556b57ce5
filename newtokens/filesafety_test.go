package newtokens

// Issue 10 points 2 and 9: vocabulary files are written all or nothing,
// and no read blocks on a special file. These tests use only API that
// existed before the fix, so that they can be run against the old code
// (where they fail or hang).

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testfs"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// grownBERTDir is a BERT model directory whose vocabulary files already
// hold one added word, with the model and tokenizer that wrote them.
func grownBERTDir(t *testing.T) (string, *bert.ModelForMaskedLM, *Tokenizer) {
	t.Helper()
	dir := testmodels.ConvertedDir(t, testmodels.BERTName)
	m, err := nn.LoadFromFile[*bert.ModelForMaskedLM](filepath.Join(dir, testmodels.SpagoModelFile))
	require.NoError(t, err)
	tok, err := LoadTokenizer(dir)
	require.NoError(t, err)
	_, err = AddTokens(m, tok, newWords[:1], nil)
	require.NoError(t, err)
	require.NoError(t, WriteVocabFiles(dir, tok))
	return dir, m, tok
}

// TestWriteVocabFilesAllOrNothing: when WriteVocabFiles fails, every file
// keeps its previous content (no temporary file left) and the tokenizer
// loads the previous state.
func TestWriteVocabFilesAllOrNothing(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(t *testing.T, dir string)
	}{
		{"config.json malformed", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"vocab_size": `), 0o644))
		}},
		{"config.json is a FIFO", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "config.json")))
			testfs.Mkfifo(t, filepath.Join(dir, "config.json"))
		}},
		{"config.json is a directory", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "config.json")))
			require.NoError(t, os.Mkdir(filepath.Join(dir, "config.json"), 0o755))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, m, tok := grownBERTDir(t)
			tc.spoil(t, dir)
			before := testfs.Files(t, dir)
			_, err := AddTokens(m, tok, newWords[1:], nil)
			require.NoError(t, err)
			err = testfs.Within(t, func() error { return WriteVocabFiles(dir, tok) })
			require.Error(t, err)
			assert.Equal(t, before, testfs.Files(t, dir), "every file as it was, no temporary file")
			old, err := LoadTokenizer(dir)
			require.NoError(t, err)
			assert.Equal(t, tok.VocabSize()-len(newWords)+1, old.VocabSize(), "the previous vocabulary loads")
		})
	}
}

// TestLoadTokenizerSpecialFiles: a FIFO or socket under a vocabulary file
// name is an error at once, naming the file.
func TestLoadTokenizerSpecialFiles(t *testing.T) {
	kinds := map[string]func(t *testing.T, p string){
		"FIFO": func(t *testing.T, p string) { testfs.Mkfifo(t, p) },
		"socket": func(t *testing.T, p string) {
			testfs.ListenUnix(t, p)
		},
	}
	for kind, mk := range kinds {
		for _, file := range []string{"vocab.txt", "added_tokens.json", "tokenizer_config.json"} {
			t.Run(kind+" as "+file, func(t *testing.T) {
				dir, _, _ := grownBERTDir(t)
				p := filepath.Join(dir, file)
				require.NoError(t, os.Remove(p))
				mk(t, p)
				err := testfs.Within(t, func() error { _, err := LoadTokenizer(dir); return err })
				require.Error(t, err)
				assert.ErrorContains(t, err, p)
				assert.ErrorContains(t, err, "not a regular file")
			})
		}
	}
}
