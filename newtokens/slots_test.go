package newtokens

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/testmodels"
)

func TestIsReservedTerm(t *testing.T) {
	for term, want := range map[string]bool{
		"[unused0]": true, "[unused993]": true, "<unused12>": true, "madeupword0002": true,
		"[unused]": false, "[unused_last]": false, "unused0": false, "[UNUSED1]": false,
		"[unused1] ": false, "the": false, "[MASK]": false, "": false,
	} {
		assert.Equal(t, want, IsReservedTerm(term), term)
	}
}

// An in-memory vocabulary: reserved placeholders are found by their form,
// in id order, and specials are never free.
func TestReservedSlotsInMemoryVocabulary(t *testing.T) {
	terms := []string{"[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "<unused7>", "cat", "madeupword0000"}
	tok, err := NewBERTTokenizer(vocabulary.New(terms), nil, true)
	require.NoError(t, err)
	tok.mu.RLock()
	free := tok.freeSlotsLocked(len(terms))
	tok.mu.RUnlock()
	assert.Equal(t, []Slot{{1, "[unused0]"}, {2, "[unused1]"}, {8, "<unused7>"}, {10, "madeupword0000"}}, free)
}

func TestAddTokensReservedBERT(t *testing.T) {
	m := testmodels.BERT(t)
	tok := bertTok(t, m)
	e := m.Bert.Embeddings.Tokens
	out := m.Layers[3].(*linear.Model)
	v := len(e.Weights)
	free, err := ReservedSlots(m, tok)
	require.NoError(t, err)
	require.Len(t, free, 30, "[unused0]…[unused29]; [unused_last] is not the placeholder form")
	assert.Equal(t, Slot{ID: 5, Term: "[unused0]"}, free[0])
	before := tableRows(e)
	biasBefore := matrixRows(out.B)
	rowParam := e.Weights[5]

	res, err := AddTokens(m, tok, newWords, &Options{Reserved: true})
	require.NoError(t, err)
	assert.Equal(t, []int{5, 6, 7}, res.IDs)
	assert.True(t, res.InSlots)
	assert.Equal(t, v, res.OldVocabSize)
	assert.Equal(t, v, res.NewVocabSize)
	assert.Equal(t, "[unused0]", res.PerToken[0].Replaced)
	// Nothing resized.
	assert.Len(t, e.Weights, v)
	assert.Equal(t, v, e.Size)
	assert.Equal(t, v, m.Bert.Config.VocabSize)
	assert.Equal(t, []int{v, e.Dim}, out.W.Shape())
	assert.Same(t, rowParam, e.Weights[5], "the row's param is kept, its value replaced")
	// Rows: the mean of the trained-looking rows, the slots themselves left out.
	want := meanWithout(before, 5, 6, 7)
	got := tableRows(e)
	for _, id := range res.IDs {
		requireClose(t, want, got[id], "slot row %d", id)
		requireClose(t, got[id], rows.Get(out.W.Value().(mat.Matrix), id, e.Dim), "tied output row %d", id)
	}
	assert.Equal(t, biasBefore, matrixRows(out.B), "the bias is left alone: an adapter cannot carry it")
	assert.Equal(t, before[8], got[8], "other rows untouched")
	// Vocabulary and tokenizer.
	assert.Equal(t, "zorblax", m.Bert.Embeddings.Vocab.Items()[5])
	_, ok := m.Bert.Embeddings.Vocab.ID("[unused0]")
	assert.False(t, ok, "the placeholder left the vocabulary")
	id, ok := m.Bert.Embeddings.Vocab.ID("flumph")
	assert.True(t, ok)
	assert.Equal(t, 7, id)
	ids, toks, err := tok.Encode("Thezorblax quindle.")
	require.NoError(t, err)
	assert.Equal(t, []string{"the", "zorblax", "quindle", "."}, toks)
	assert.Equal(t, 5, ids[1])
	assert.Equal(t, 6, ids[2])
	assert.True(t, tok.IsAdded("zorblax"))
	assert.Equal(t, v, tok.VocabSize())
	free, err = ReservedSlots(m, tok)
	require.NoError(t, err)
	assert.Len(t, free, 27)
	assert.Equal(t, 8, free[0].ID)
}

func TestAddTokensSlotsNamedAndForced(t *testing.T) {
	m := testmodels.BERT(t)
	tok := bertTok(t, m)
	red, _ := tok.ID("red")
	res, err := AddTokens(m, tok, []string{"zorblax", "quindle"}, &Options{Slots: []int{20, red}, Force: true, Init: InitSubtokenMean})
	require.NoError(t, err)
	assert.Equal(t, []int{20, red}, res.IDs)
	assert.Equal(t, "red", res.PerToken[1].Replaced)
	_, ok := tok.ID("red")
	assert.False(t, ok, "a forced word leaves the vocabulary")
	_, toks, err := tok.Encode("red quindle")
	require.NoError(t, err)
	assert.Equal(t, "quindle", toks[len(toks)-1])
	assert.NotContains(t, toks, "red")
}

func TestAddTokensSlotsRejected(t *testing.T) {
	m := testmodels.BERT(t)
	tok := bertTok(t, m)
	_, err := AddTokens(m, tok, []string{"flumph"}, &Options{Slots: []int{9}})
	require.NoError(t, err)
	red, _ := tok.ID("red")
	cls, _ := tok.ID("[CLS]")
	v := len(m.Bert.Embeddings.Tokens.Weights)
	cases := map[string]struct {
		tokens []string
		opts   Options
		want   string
	}{
		"real word":      {[]string{"zorblax"}, Options{Slots: []int{red}}, `Options.Slots[0] = ` + itoa(red) + ` holds the word "red", not a reserved slot; set Options.Force`},
		"special":        {[]string{"zorblax"}, Options{Slots: []int{cls}, Force: true}, `holds the special token "[CLS]"`},
		"added":          {[]string{"zorblax"}, Options{Slots: []int{9}, Force: true}, `holds the added token "flumph"`},
		"out of range":   {[]string{"zorblax"}, Options{Slots: []int{v}}, "out of range for the embedding table of *bert.ModelForMaskedLM: allowed [0, " + itoa(v) + ")"},
		"negative":       {[]string{"zorblax"}, Options{Slots: []int{-1}}, "Options.Slots[0] = -1 is out of range"},
		"duplicate":      {[]string{"zorblax", "quindle"}, Options{Slots: []int{10, 10}}, "id 10 is listed twice in Options.Slots (positions 0 and 1)"},
		"count":          {[]string{"zorblax", "quindle"}, Options{Slots: []int{10}}, "2 tokens but 1 Options.Slots"},
		"both":           {[]string{"zorblax"}, Options{Slots: []int{10}, Reserved: true}, "both set"},
		"force alone":    {[]string{"zorblax"}, Options{Force: true}, "Options.Force needs Options.Slots"},
		"existing token": {[]string{"red"}, Options{Reserved: true}, `"red" is already in the vocabulary`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := bertState(m, tok)
			row := tableRows(m.Bert.Embeddings.Tokens)
			_, err := AddTokens(m, tok, tc.tokens, &tc.opts)
			require.ErrorIs(t, err, ErrInvalidTokens)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before, bertState(m, tok))
			assert.Equal(t, row, tableRows(m.Bert.Embeddings.Tokens))
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestAddTokensReservedRunsOut(t *testing.T) {
	m := testmodels.BERT(t)
	tok := bertTok(t, m)
	words := make([]string, 31)
	for i := range words {
		words[i] = "newword" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	before := bertState(m, tok)
	_, err := AddTokens(m, tok, words, &Options{Reserved: true})
	require.ErrorIs(t, err, ErrNoSlots)
	assert.Contains(t, err.Error(), "31 tokens asked for a slot, 30 reserved slots free")
	assert.Equal(t, before, bertState(m, tok))
	// 30 fit, then none is left.
	_, err = AddTokens(m, tok, words[:30], &Options{Reserved: true})
	require.NoError(t, err)
	_, err = AddTokens(m, tok, words[30:], &Options{Reserved: true})
	assert.ErrorContains(t, err, "1 tokens asked for a slot, 0 reserved slots free")
}

// The vocabulary files record the words at their slots: vocab.txt's line at
// the id is replaced (same line count), added_tokens.json lists them, the
// config's vocab_size is unchanged, and cybertron and LoadTokenizer read
// the words back at those ids.
func TestWriteVocabFilesSlotsBERT(t *testing.T) {
	dir := testmodels.ConvertedDir(t, testmodels.BERTName)
	file := filepath.Join(dir, testmodels.SpagoModelFile)
	m, err := nn.LoadFromFile[*bert.ModelForMaskedLM](file)
	require.NoError(t, err)
	tok, err := LoadTokenizer(dir)
	require.NoError(t, err)
	res, err := AddTokens(m, tok, newWords, &Options{Reserved: true})
	require.NoError(t, err)
	require.NoError(t, WriteVocabFiles(dir, tok))
	data, err := os.ReadFile(filepath.Join(dir, "vocab.txt"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	assert.Len(t, lines, 1038)
	assert.Equal(t, newWords, lines[5:8])
	assert.Equal(t, "[unused3]", lines[8])
	var added map[string]int
	readJSON(t, filepath.Join(dir, "added_tokens.json"), &added)
	assert.Equal(t, map[string]int{"zorblax": 5, "quindle": 6, "flumph": 7}, added)
	var cfg map[string]any
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	assert.EqualValues(t, 1038, cfg["vocab_size"])

	again, err := LoadTokenizer(dir)
	require.NoError(t, err)
	assert.Equal(t, tok.Added(), again.Added())
	ids, _, err := again.Encode("thezorblax")
	require.NoError(t, err)
	assert.Equal(t, []int{mustID(t, again, "the"), res.IDs[0]}, ids)
	voc, err := vocabulary.NewFromFile(filepath.Join(dir, "vocab.txt"))
	require.NoError(t, err)
	id, ok := voc.ID("quindle")
	assert.True(t, ok)
	assert.Equal(t, 6, id, "cybertron's vocabulary loads the word at its slot")
}

func mustID(t *testing.T, tok *Tokenizer, s string) int {
	t.Helper()
	id, ok := tok.ID(s)
	require.True(t, ok, s)
	return id
}

// BART: the tiny vocab.json has a term at every id, so no slot is free;
// real BPE tokens are never replaced. A table padded past the vocabulary
// (here: grown by one row, with a tokenizer that does not know the row) has
// a free slot: the word placed there is matched, written to vocab.json at
// that id, and nothing is resized.
func TestAddTokensSlotsBART(t *testing.T) {
	m := testmodels.BART(t)
	tok := bartTok(t)
	_, err := AddTokens(m, tok, []string{"zorblax"}, &Options{Reserved: true})
	assert.ErrorContains(t, err, "1 tokens asked for a slot, 0 reserved slots free")
	_, err = AddTokens(m, tok, []string{"zorblax"}, &Options{Slots: []int{1097}, Force: true})
	assert.ErrorContains(t, err, `holds the BPE token "dd"; BART's merges would still produce that id`)

	_, err = AddTokens(m, tok, []string{"padding"}, nil)
	require.NoError(t, err)
	dir := t.TempDir()
	src := testmodels.Dir(testmodels.BARTName)
	for _, f := range []string{"merges.txt", "config.json", "vocab.json"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	tok, err = LoadTokenizer(dir)
	require.NoError(t, err)
	v := len(m.Bart.Embeddings.Weights)
	require.Equal(t, 1101, v)
	free, err := ReservedSlots(m, tok)
	require.NoError(t, err)
	assert.Equal(t, []Slot{{ID: 1100}}, free)
	pad := m.PadMask.Value().(mat.Matrix).Size()
	res, err := AddTokens(m, tok, []string{"zorblax"}, &Options{Reserved: true})
	require.NoError(t, err)
	assert.Equal(t, []int{1100}, res.IDs)
	assert.Equal(t, "", res.PerToken[0].Replaced)
	assert.True(t, res.OutputTied)
	assert.Len(t, m.Bart.Embeddings.Weights, v)
	assert.Equal(t, v, m.Bart.Config.VocabSize)
	assert.Equal(t, pad, m.PadMask.Value().(mat.Matrix).Size())
	assert.Equal(t, tableRows(m.Bart.Embeddings)[1100], rows.Get(m.Projection.W.Value().(mat.Matrix), 1100, m.Bart.Embeddings.Dim))
	ids, toks, err := tok.Encode("a zorblax")
	require.NoError(t, err)
	assert.Equal(t, "zorblax", toks[len(toks)-1])
	assert.Equal(t, 1100, ids[len(ids)-1])

	require.NoError(t, WriteVocabFiles(dir, tok))
	var vocab map[string]int
	readJSON(t, filepath.Join(dir, "vocab.json"), &vocab)
	assert.Equal(t, 1100, vocab["zorblax"])
	assert.Len(t, vocab, v)
	var cfg map[string]any
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	assert.EqualValues(t, 1101, cfg["vocab_size"], "raised to the ids the tokenizer knows, not past the table")
	again, err := LoadTokenizer(dir)
	require.NoError(t, err)
	assert.Equal(t, tok.Added(), again.Added())
}

func TestReservedSlotsRejectsBadArguments(t *testing.T) {
	_, err := ReservedSlots(nil, nil)
	assert.ErrorIs(t, err, ErrUnsupportedModel)
	m := testmodels.BERT(t)
	free, err := ReservedSlots(m, nil) // a tokenizer over the model's vocabulary
	require.NoError(t, err)
	assert.Len(t, free, 30)
	_, err = ReservedSlots(m, bartTok(t))
	assert.ErrorContains(t, err, "a bart tokenizer cannot serve *bert.ModelForMaskedLM")
	_, err = ReservedSlots(testmodels.BART(t), nil)
	assert.ErrorContains(t, err, "pass its tokenizer")
}
