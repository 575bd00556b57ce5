package testmodels

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/converter/pytorch"
	"github.com/nlpodyssey/cybertron/pkg/generationutils"
	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/tasks/textgeneration"
	bartgen "github.com/nlpodyssey/cybertron/pkg/tasks/textgeneration/bart"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers/bpetokenizer"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers/wordpiecetokenizer"
	"github.com/nlpodyssey/cybertron/pkg/utils/nullable"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft"
)

func vocabLines(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Dir(BERTName), "vocab.txt"))
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func newWords(t *testing.T) []string {
	t.Helper()
	words, err := ReadLines("new_tokens.txt")
	require.NoError(t, err)
	require.NotEmpty(t, words)
	return words
}

func TestPaths(t *testing.T) {
	for _, name := range []string{BERTName, BARTName} {
		st, err := os.Stat(Dir(name))
		require.NoError(t, err)
		assert.True(t, st.IsDir())
		assert.True(t, filepath.IsAbs(Dir(name)))
	}
	for _, name := range []string{"new_tokens.txt", "mlm_train.txt", "mlm_eval.txt", "seq2seq_train.tsv", "seq2seq_eval.tsv"} {
		_, err := os.Stat(Corpus(name))
		require.NoError(t, err, name)
	}
	pairs, err := ReadPairs("seq2seq_train.tsv")
	require.NoError(t, err)
	assert.NotEmpty(t, pairs)
}

func TestConvertRejectsUnknownName(t *testing.T) {
	_, err := Convert(t.TempDir(), "gpt-huge")
	require.Error(t, err)
}

func TestConvert(t *testing.T) {
	dir, err := Convert(t.TempDir(), BERTName)
	require.NoError(t, err)
	for _, f := range []string{"config.json", "vocab.txt", "tokenizer_config.json", "pytorch_model.bin", SpagoModelFile} {
		_, err := os.Stat(filepath.Join(dir, f))
		assert.NoError(t, err, f)
	}
}

func TestBERT(t *testing.T) {
	m := BERT(t)
	lines := vocabLines(t)
	V := len(lines)
	require.Equal(t, "[unused_last]", lines[V-1])
	require.Equal(t, V, m.Bert.Config.VocabSize)
	require.Equal(t, V, m.Bert.Embeddings.Tokens.Size)
	require.Len(t, m.Bert.Embeddings.Tokens.Weights, V)

	dec, ok := m.Layers[3].(*linear.Model)
	require.True(t, ok)
	W := mat.Data[float32](dec.W.Value())
	H := m.Bert.Config.HiddenSize
	require.Len(t, W, V*H)
	for i := 0; i < V; i++ {
		row := mat.Data[float32](m.Bert.Embeddings.Tokens.Weights[i].Value())
		require.Len(t, row, H)
		if i == V-1 {
			// cybertron quirk: vocabulary.Term is off by one, so the converter
			// never fills the last embedding row.
			assert.Equal(t, make([]float32, H), row, "last table row should be zero")
			continue
		}
		require.Equal(t, W[i*H:(i+1)*H], row, "table row %d != decoder row", i)
	}
	nonZero := false
	for _, v := range W[0:H] {
		nonZero = nonZero || v != 0
	}
	assert.True(t, nonZero, "decoder rows must be random, not zero")

	// cybertron's own inference on WordPiece tokens.
	vocab, err := vocabulary.NewFromFile(filepath.Join(Dir(BERTName), "vocab.txt"))
	require.NoError(t, err)
	tok := wordpiecetokenizer.New(vocab)
	words := tokenizers.GetStrings(tok.Tokenize("the red zorblax eats fruit in the forest ."))
	assert.NotContains(t, words, wordpiecetokenizer.DefaultUnknownToken)
	assert.Greater(t, len(words), 8, "zorblax must be split into word pieces: %v", words)
	tokens := append([]string{wordpiecetokenizer.DefaultClassToken}, words...)
	tokens = append(tokens, wordpiecetokenizer.DefaultSequenceSeparator)
	tokens[2] = wordpiecetokenizer.DefaultMaskToken // "red"
	pred := m.Predict(tokens)
	require.Len(t, pred, 1)
	logits := mat.Data[float32](pred[2].Value())
	require.Len(t, logits, V)
	for i, v := range logits {
		require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0), "logit %d = %v", i, v)
	}
}

func TestBERTCopiesAreIndependent(t *testing.T) {
	a, b := BERT(t), BERT(t)
	require.NotSame(t, a, b)
	ra := mat.Data[float32](a.Bert.Embeddings.Tokens.Weights[5].Value())
	rb := mat.Data[float32](b.Bert.Embeddings.Tokens.Weights[5].Value())
	require.Equal(t, ra, rb)
	ra[0] += 1
	assert.NotEqual(t, ra[0], rb[0])
}

func TestCorpusWordsInBERTVocab(t *testing.T) {
	known := map[string]bool{}
	for _, w := range vocabLines(t) {
		known[w] = true
	}
	isNew := map[string]bool{}
	for _, w := range newWords(t) {
		isNew[w] = true
		assert.False(t, known[w], "new word %q must not be in the BERT vocabulary", w)
	}
	for _, file := range []string{"mlm_train.txt", "mlm_eval.txt", "seq2seq_train.tsv", "seq2seq_eval.tsv"} {
		lines, err := ReadLines(file)
		require.NoError(t, err)
		seen := 0
		for _, line := range lines {
			for _, w := range strings.Fields(line) {
				if isNew[w] {
					seen++
					continue
				}
				assert.True(t, known[w], "%s: %q not in the BERT vocabulary", file, w)
			}
		}
		assert.Positive(t, seen, "%s has no new word", file)
	}
}

func TestBARTTokenizer(t *testing.T) {
	tok, err := bpetokenizer.NewFromModelFolder(Dir(BARTName))
	require.NoError(t, err)
	const text = "the green vintral sings in the morning ."
	enc, err := tok.Encode(text)
	require.NoError(t, err)
	require.NotEmpty(t, enc.IDs)
	assert.Equal(t, text, tok.Detokenize(enc.IDs))
	pieces, err := tok.Tokenize(text)
	require.NoError(t, err)
	strs := tokenizers.GetStrings(pieces)
	assert.Equal(t, "the", strs[0])
	assert.Contains(t, strs, "Ġgreen")
	assert.NotContains(t, strs, "Ġvintral", "new words must be split")

	// Every seq2seq side fits the generation limit (with <s> and </s>).
	cfg := BART(t).Bart.Config
	for _, file := range []string{"seq2seq_train.tsv", "seq2seq_eval.tsv"} {
		pairs, err := ReadPairs(file)
		require.NoError(t, err)
		for _, p := range pairs {
			for _, side := range p {
				e, err := tok.Encode(side)
				require.NoError(t, err)
				assert.LessOrEqual(t, len(e.IDs)+2, cfg.MaxLength, side)
				assert.Equal(t, side, tok.Detokenize(e.IDs))
			}
		}
	}
}

func TestBART(t *testing.T) {
	m := BART(t)
	cfg := m.Bart.Config
	V, D := cfg.VocabSize, cfg.DModel

	raw, err := os.ReadFile(filepath.Join(Dir(BARTName), "vocab.json"))
	require.NoError(t, err)
	var vocab map[string]int
	require.NoError(t, json.Unmarshal(raw, &vocab))
	assert.Equal(t, V, len(vocab), "vocab_size = len(vocab.json)")
	assert.Equal(t, 1, vocab["<pad>"])
	assert.Equal(t, V-1, vocab["<mask>"])
	assert.Equal(t, 1, cfg.NumBeams)
	assert.Equal(t, 20, cfg.MaxLength)
	assert.Equal(t, 2, cfg.DecoderStartTokenID)

	require.Same(t, m.Bart.Embeddings, m.Bart.Encoder.Embeddings.SharedEmbeddings.Model)
	require.Same(t, m.Bart.Embeddings, m.Bart.Decoder.Embeddings.SharedEmbeddings.Model)
	require.Len(t, m.Bart.Embeddings.Weights, V)

	W := mat.Data[float32](m.Projection.W.Value())
	require.Len(t, W, V*D)
	for i := 0; i < V; i++ {
		row := mat.Data[float32](m.Bart.Embeddings.Weights[i].Value())
		require.Equal(t, W[i*D:(i+1)*D], row, "shared row %d != projection row", i)
	}

	// Greedy generation through the model's decoding function.
	src := []int{0, 100, 200, 300, 2}
	next := m.DecodingFunc(src, generationutils.ProcessScores(), true)
	dec := &generationutils.BeamSearchDecoder{
		Config: generationutils.Config{
			NumBeams: 1, MaxLength: cfg.MaxLength, EOSTokenID: cfg.EosTokenID, BOSTokenID: cfg.BosTokenID,
			PadTokenID: cfg.PadTokenID, VocabSize: V, DecoderStartTokenID: cfg.DecoderStartTokenID,
			LengthPenalty: 1, EarlyStopping: true,
		},
		PredictNext: func(ids [][]int, _ []int) []mat.Matrix {
			in := make([]*bart.DecodingInput, len(ids))
			for i, seq := range ids {
				in[i] = &bart.DecodingInput{InputIDs: seq, CurLen: len(seq)}
			}
			out := next(in)
			res := make([]mat.Matrix, len(out))
			for i, o := range out {
				res[i] = o.LogProbValue
			}
			return res
		},
		SelectNext: generationutils.SelectNextTopK,
	}
	seqs, scores := dec.Decode(context.Background())
	require.NotEmpty(t, seqs)
	require.Len(t, scores, len(seqs))
	assert.Equal(t, cfg.DecoderStartTokenID, seqs[0][0])
	assert.LessOrEqual(t, len(seqs[0]), cfg.MaxLength)
	assert.False(t, math.IsNaN(scores[0]))
}

func TestBARTTextGeneration(t *testing.T) {
	dir := ConvertedDir(t, BARTName)
	tg, err := bartgen.LoadTextGeneration(dir)
	require.NoError(t, err)
	opts := &textgeneration.Options{
		Temperature: nullable.Type[float64]{Value: 1.0, Valid: true},
		Sample:      nullable.Type[bool]{Value: false, Valid: true},
	}
	resp, err := tg.Generate(context.Background(), "copy : the red zorblax in the forest", opts)
	require.NoError(t, err)
	require.NotEmpty(t, resp.Texts)
	assert.False(t, math.IsNaN(resp.Scores[0]))
}

func TestWriteTinyModelMatchesTestdata(t *testing.T) {
	dst := t.TempDir()
	for _, name := range []string{BERTName, BARTName} {
		for i := 0; i < 2; i++ { // the second call replaces the first
			dir, err := gopeft.WriteTinyModel(name, dst)
			require.NoError(t, err)
			require.Equal(t, filepath.Join(dst, name), dir)
		}
		entries, err := os.ReadDir(Dir(name))
		require.NoError(t, err)
		for _, e := range entries {
			want, err := os.ReadFile(filepath.Join(Dir(name), e.Name()))
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(dst, name, e.Name()))
			require.NoError(t, err)
			assert.Equal(t, want, got, "%s/%s: embedded copy differs from testdata", name, e.Name())
		}
	}
	leftovers, err := os.ReadDir(dst)
	require.NoError(t, err)
	assert.Len(t, leftovers, 2, "no temporary directories may be left behind")
	_, err = gopeft.WriteTinyModel("nope", dst)
	require.Error(t, err)
}

// hfParams reads a tiny model's pytorch_model.bin with cybertron's own
// PyTorch reader (gopickle), without any renaming.
func hfParams(t *testing.T, name string) *pytorch.ParamsProvider[float32] {
	t.Helper()
	p := pytorch.NewParamsProvider[float32]().
		WithPreProcessing(func(*pytorch.ParamsProvider[float32]) error { return nil })
	require.NoError(t, p.Load(filepath.Join(Dir(name), "pytorch_model.bin")))
	return p
}

func rows(t *testing.T, e *embedding.Model) []float32 {
	t.Helper()
	var out []float32
	for _, w := range e.Weights {
		out = append(out, mat.Data[float32](w.Value())...)
	}
	return out
}

// zeroParams lists the (non-embedding) params that are entirely zero.
func zeroParams(m nn.Model) map[*nn.Param]bool {
	zero := map[*nn.Param]bool{}
	nn.Apply(m, func(model nn.Model) {
		nn.ForEachParamStrict(model, func(p *nn.Param) {
			for _, v := range mat.Data[float32](p.Value()) {
				if v != 0 {
					return
				}
			}
			zero[p] = true
		})
	})
	return zero
}

func TestBERTMatchesCheckpoint(t *testing.T) {
	m := BERT(t)
	hf := hfParams(t, BERTName)
	H, V := m.Bert.Config.HiddenSize, m.Bert.Config.VocabSize

	word := hf.Get("bert.embeddings.word_embeddings.weight")
	require.Len(t, word, V*H)
	require.Equal(t, word, hf.Get("cls.predictions.decoder.weight"), "decoder tied to word embeddings in the HF file")
	got := rows(t, m.Bert.Embeddings.Tokens)
	require.Equal(t, word[:(V-1)*H], got[:(V-1)*H])
	require.Equal(t, hf.Get("bert.embeddings.position_embeddings.weight"), rows(t, m.Bert.Embeddings.Positions))
	require.Equal(t, hf.Get("bert.embeddings.token_type_embeddings.weight"), rows(t, m.Bert.Embeddings.TokenTypes))

	dec := m.Layers[3].(*linear.Model)
	// The converter copies the decoder from the HF file: all V rows, including
	// the last one that the embedding table misses.
	require.Equal(t, word, mat.Data[float32](dec.W.Value()))
	require.Equal(t, hf.Get("cls.predictions.decoder.bias"), mat.Data[float32](dec.B.Value()))

	assert.Empty(t, zeroParams(m), "every converted BERT param must come from the checkpoint")
}

func TestBARTMatchesCheckpoint(t *testing.T) {
	m := BART(t)
	hf := hfParams(t, BARTName)
	cfg := m.Bart.Config

	shared := hf.Get("model.shared.weight")
	for _, k := range []string{"model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"} {
		require.Equal(t, shared, hf.Get(k), "%s tied to model.shared.weight in the HF file", k)
	}
	require.Equal(t, shared, rows(t, m.Bart.Embeddings))
	require.Equal(t, shared, mat.Data[float32](m.Projection.W.Value()))
	require.Equal(t, hf.Get("final_logits_bias"), mat.Data[float32](m.Projection.B.Value()))
	encPos := hf.Get("model.encoder.embed_positions.weight")
	require.Len(t, encPos, (cfg.MaxPositionEmbeddings+2)*cfg.DModel)
	require.Equal(t, encPos, rows(t, m.Bart.Encoder.Embeddings.PositionalEncoder.Embeddings))
	require.Equal(t, hf.Get("model.decoder.embed_positions.weight"), rows(t, m.Bart.Decoder.Embeddings.PositionalEncoder.Embeddings))

	// Only the final layer norms (add_final_layer_norm=false, unused) stay zero.
	unused := map[*nn.Param]bool{
		m.Bart.Encoder.LayerNorm.W: true, m.Bart.Encoder.LayerNorm.B: true,
		m.Bart.Decoder.LayerNorm.W: true, m.Bart.Decoder.LayerNorm.B: true,
	}
	assert.Equal(t, unused, zeroParams(m), "every used BART param must come from the checkpoint")
}
