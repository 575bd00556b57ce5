package newtokens

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/tasks/languagemodeling"
	bertlm "github.com/nlpodyssey/cybertron/pkg/tasks/languagemodeling/bert"
	bartgen "github.com/nlpodyssey/cybertron/pkg/tasks/textgeneration/bart"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testfs"
	"github.com/gopeft/gopeft/internal/testmodels"
)

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, v))
}

func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.Contains(e.Name(), ".tmp-"), "left-over temporary file %s", e.Name())
	}
}

func TestWriteVocabFilesBERT(t *testing.T) {
	dir := testmodels.ConvertedDir(t, testmodels.BERTName)
	file := filepath.Join(dir, testmodels.SpagoModelFile)
	m, err := nn.LoadFromFile[*bert.ModelForMaskedLM](file)
	require.NoError(t, err)
	tok, err := LoadTokenizer(dir) // its own vocabulary, equal to the model's
	require.NoError(t, err)
	assert.True(t, tok.LowerCase(), "tokenizer_config.json has do_lower_case true")
	res, err := AddTokens(m, tok, newWords, nil)
	require.NoError(t, err)
	require.NoError(t, WriteVocabFiles(dir, tok))
	require.NoError(t, nn.DumpToFile(m, file))
	noTempFiles(t, dir)

	data, err := os.ReadFile(filepath.Join(dir, "vocab.txt"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	assert.Len(t, lines, 1041)
	assert.Equal(t, newWords, lines[1038:])
	assert.Equal(t, m.Bert.Embeddings.Vocab.Items(), lines)
	var added map[string]int
	readJSON(t, filepath.Join(dir, "added_tokens.json"), &added)
	assert.Equal(t, map[string]int{"zorblax": 1038, "quindle": 1039, "flumph": 1040}, added)
	var cfg map[string]any
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	assert.EqualValues(t, 1041, cfg["vocab_size"])
	assert.Equal(t, "bert", cfg["model_type"])
	assert.EqualValues(t, 1e-12, cfg["layer_norm_eps"])

	// Our tokenizer reloads the same state.
	again, err := LoadTokenizer(dir)
	require.NoError(t, err)
	assert.Equal(t, tok.Added(), again.Added())
	ids, _, err := again.Encode("thezorblax.")
	require.NoError(t, err)
	assert.Equal(t, res.IDs[0], ids[1])

	// cybertron's task loader reloads vocab.txt and the grown model.
	lm, err := bertlm.LoadMaskedLanguageModel(dir)
	require.NoError(t, err)
	_, err = lm.Predict(context.Background(), "the zorblax is [MASK] .", languagemodeling.Parameters{K: 3})
	require.NoError(t, err)
	// (cybertron's LanguageModel lower-cases the whole text when
	// do_lower_case is set, "[MASK]" included, so it finds no mask here; the
	// model itself, fed our tokens, predicts over the grown vocabulary.)
	_, toks, err := again.EncodeSpecial("the zorblax is [MASK] .")
	require.NoError(t, err)
	pred := lm.Model.Predict(toks)
	require.Len(t, pred, 1)
	for _, logits := range pred {
		assert.Equal(t, 1041, logits.Value().(mat.Matrix).Size())
	}
	id, ok := lm.Model.Bert.Embeddings.Vocab.ID("flumph")
	assert.True(t, ok)
	assert.Equal(t, 1040, id)
	assert.Equal(t, []string{"the", "zorblax", "is", "[MASK]", "."}, tokenStrings(lm.Tokenizer.Tokenize("the zorblax is [MASK] .")),
		"cybertron's WordPiece over the new vocab.txt finds a whitespace-delimited added token")
}

func TestWriteVocabFilesBART(t *testing.T) {
	dir := testmodels.ConvertedDir(t, testmodels.BARTName)
	file := filepath.Join(dir, testmodels.SpagoModelFile)
	m, err := nn.LoadFromFile[*bart.ModelForConditionalGeneration](file)
	require.NoError(t, err)
	testmodels.RewireBARTShared(m)
	tok, err := LoadTokenizer(dir)
	require.NoError(t, err)
	res, err := AddTokens(m, tok, newWords, nil)
	require.NoError(t, err)
	merges, err := os.ReadFile(filepath.Join(dir, "merges.txt"))
	require.NoError(t, err)
	require.NoError(t, WriteVocabFiles(dir, tok))
	require.NoError(t, nn.DumpToFile(m, file))
	noTempFiles(t, dir)

	var vocab map[string]int
	readJSON(t, filepath.Join(dir, "vocab.json"), &vocab)
	assert.Len(t, vocab, 1103)
	for i, w := range newWords {
		assert.Equal(t, res.IDs[i], vocab[w])
	}
	assert.Equal(t, 36, vocab["Ġ"])
	after, err := os.ReadFile(filepath.Join(dir, "merges.txt"))
	require.NoError(t, err)
	assert.Equal(t, merges, after, "merges.txt unchanged")
	var added map[string]int
	readJSON(t, filepath.Join(dir, "added_tokens.json"), &added)
	assert.Equal(t, map[string]int{"zorblax": 1100, "quindle": 1101, "flumph": 1102}, added)
	var cfg map[string]any
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	assert.EqualValues(t, 1103, cfg["vocab_size"])

	again, err := LoadTokenizer(dir)
	require.NoError(t, err)
	assert.Equal(t, tok.Added(), again.Added())
	ids, toks, err := again.Encode("where is the zorblax?")
	require.NoError(t, err)
	assert.Contains(t, toks, "zorblax")
	assert.Contains(t, ids, 1100)

	// cybertron's text-generation loader reloads vocab.json and the grown
	// model; its detokenizer shows the new token, generation runs.
	tg, err := bartgen.LoadTextGeneration(dir)
	require.NoError(t, err)
	assert.Equal(t, "zorblax", tg.Tokenizer.Detokenize([]int{1100}, false))
	_, err = tg.Generate(context.Background(), "where is the zorblax ?", nil)
	require.NoError(t, err)

	// Into a new directory: merges.txt is copied from the source.
	other := filepath.Join(t.TempDir(), "out")
	require.NoError(t, WriteVocabFiles(other, tok))
	copied, err := os.ReadFile(filepath.Join(other, "merges.txt"))
	require.NoError(t, err)
	assert.Equal(t, merges, copied)
	fresh, err := LoadTokenizer(other)
	require.NoError(t, err)
	assert.Equal(t, tok.Added(), fresh.Added())
	_, err = os.Stat(filepath.Join(other, "config.json"))
	assert.True(t, os.IsNotExist(err), "no config.json is invented")
}

func TestWriteVocabFilesErrors(t *testing.T) {
	assert.ErrorContains(t, WriteVocabFiles(t.TempDir(), nil), "tokenizer is nil")
	f := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(f, nil, 0o644))
	tok := bartTok(t)
	assert.Error(t, WriteVocabFiles(filepath.Join(f, "sub"), tok))
}

func tokenStrings(ps []tokenizers.StringOffsetsPair) []string { return tokenizers.GetStrings(ps) }

func TestLoadTokenizerHFLayout(t *testing.T) {
	// Hugging Face's save_pretrained keeps added tokens out of vocab.txt.
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(testmodels.Dir(testmodels.BERTName), "vocab.txt"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vocab.txt"), src, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "added_tokens.json"), []byte(`{"quindle": 1039, "zorblax": 1038}`), 0o644))
	tok, err := LoadTokenizer(dir)
	require.NoError(t, err)
	assert.Equal(t, []AddedToken{{"zorblax", 1038}, {"quindle", 1039}}, tok.Added())
	assert.Equal(t, 1040, tok.VocabSize())
	ids, _, err := tok.Encode("thezorblax quindle")
	require.NoError(t, err)
	assert.Equal(t, []int{171, 1038, 1039}, ids)
	assert.True(t, tok.LowerCase(), "no tokenizer_config.json: lower-case as Hugging Face's default")

	// A gap in the ids is an error.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "added_tokens.json"), []byte(`{"zorblax": 1040}`), 0o644))
	_, err = LoadTokenizer(dir)
	assert.ErrorContains(t, err, `gives "zorblax" id 1040, but vocab.txt has 1038 terms and lacks it`)

	// WriteVocabFiles adds the tokenizer_config.json cybertron's loaders need.
	require.NoError(t, os.Remove(filepath.Join(dir, "added_tokens.json")))
	cased, err := LoadTokenizer(dir)
	require.NoError(t, err)
	cased.lowerCase = false
	require.NoError(t, WriteVocabFiles(dir, cased))
	var cfg map[string]any
	readJSON(t, filepath.Join(dir, "tokenizer_config.json"), &cfg)
	assert.Equal(t, false, cfg["do_lower_case"])
}

func TestZeroTokenizer(t *testing.T) {
	_, err := AddTokens(testmodels.BERT(t), &Tokenizer{}, newWords, nil)
	assert.ErrorContains(t, err, "not built by NewBERTTokenizer")
}

// TestWriteVocabFilesInjectedFailures fails WriteVocabFiles at every stage
// of its write: each time every file keeps its previous content, no
// temporary file is left and the previous vocabulary loads.
func TestWriteVocabFilesInjectedFailures(t *testing.T) {
	dir, m, tok := grownBERTDir(t)
	_, err := AddTokens(m, tok, newWords[1:], nil)
	require.NoError(t, err)
	var stages []string
	vocabHook = func(s string) error { stages = append(stages, s); return nil }
	probe := t.TempDir()
	for _, f := range []string{"config.json", "vocab.txt", "added_tokens.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(probe, f), data, 0o644))
	}
	require.NoError(t, WriteVocabFiles(probe, tok)) // records the stages
	vocabHook = nil
	require.Equal(t, []string{"write added_tokens.json", "write vocab.txt", "write config.json", "sync", "backup",
		"rename added_tokens.json", "rename vocab.txt", "rename config.json", "sync dir"}, stages)

	before := testfs.Files(t, dir)
	boom := errors.New("injected")
	for _, stage := range stages {
		t.Run(stage, func(t *testing.T) {
			vocabHook = func(s string) error {
				if s == stage {
					return boom
				}
				return nil
			}
			defer func() { vocabHook = nil }()
			err := WriteVocabFiles(dir, tok)
			require.ErrorIs(t, err, boom)
			assert.ErrorContains(t, err, stage)
			assert.Equal(t, before, testfs.Files(t, dir))
			old, err := LoadTokenizer(dir)
			require.NoError(t, err)
			assert.Equal(t, tok.VocabSize()-len(newWords)+1, old.VocabSize())
		})
	}
	require.NoError(t, WriteVocabFiles(dir, tok))
	now, err := LoadTokenizer(dir)
	require.NoError(t, err)
	assert.Equal(t, tok.VocabSize(), now.VocabSize())
}

// TestWriteVocabFilesCrashStates: a crash between WriteVocabFiles' renames
// leaves a prefix of its rename order done. Every such state loads, with
// each added token at its new id (growing a directory that held the
// previous vocabulary files; see WriteVocabFiles for the guarantee).
func TestWriteVocabFilesCrashStates(t *testing.T) {
	for _, kind := range []string{testmodels.BERTName, testmodels.BARTName} {
		t.Run(kind, func(t *testing.T) {
			dir := testmodels.ConvertedDir(t, kind)
			var m nn.Model
			var err error
			if kind == testmodels.BERTName {
				m, err = nn.LoadFromFile[*bert.ModelForMaskedLM](filepath.Join(dir, testmodels.SpagoModelFile))
			} else {
				var bm *bart.ModelForConditionalGeneration
				bm, err = nn.LoadFromFile[*bart.ModelForConditionalGeneration](filepath.Join(dir, testmodels.SpagoModelFile))
				testmodels.RewireBARTShared(bm)
				m = bm
			}
			require.NoError(t, err)
			tok, err := LoadTokenizer(dir)
			require.NoError(t, err)
			_, err = AddTokens(m, tok, newWords[:1], nil)
			require.NoError(t, err)
			require.NoError(t, WriteVocabFiles(dir, tok)) // the previous state
			old := testfs.Files(t, dir)
			res, err := AddTokens(m, tok, newWords[1:], nil)
			require.NoError(t, err)

			var order []string
			newDir := t.TempDir()
			for name, content := range old {
				require.NoError(t, os.WriteFile(filepath.Join(newDir, name), []byte(content), 0o644))
			}
			vocabHook = func(s string) error {
				if strings.HasPrefix(s, "rename ") {
					order = append(order, strings.TrimPrefix(s, "rename "))
				}
				return nil
			}
			err = WriteVocabFiles(newDir, tok)
			vocabHook = nil
			require.NoError(t, err)
			fresh := testfs.Files(t, newDir)

			for done := 0; done <= len(order); done++ {
				crashed := t.TempDir()
				for name, content := range old {
					require.NoError(t, os.WriteFile(filepath.Join(crashed, name), []byte(content), 0o644))
				}
				for _, name := range order[:done] {
					require.NoError(t, os.WriteFile(filepath.Join(crashed, name), []byte(fresh[name]), 0o644))
				}
				got, err := LoadTokenizer(crashed)
				require.NoError(t, err, "after renaming %v", order[:done])
				if done == 0 {
					continue // the previous state
				}
				for i, w := range newWords[1:] {
					id, ok := got.ID(w)
					require.True(t, ok, "after renaming %v: %q known", order[:done], w)
					assert.Equal(t, res.IDs[i], id, "after renaming %v: %q keeps its id", order[:done], w)
				}
			}
		})
	}
}
