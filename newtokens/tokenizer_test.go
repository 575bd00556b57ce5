package newtokens

import (
	"strings"
	"sync"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/tokenizers"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers/bpetokenizer"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers/wordpiecetokenizer"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
)

func TestPlainTextMatchesCybertron(t *testing.T) {
	t.Run("bert", func(t *testing.T) {
		m := testmodels.BERT(t)
		tok := bertTok(t, m)
		wp := wordpiecetokenizer.New(m.Bert.Embeddings.Vocab)
		lines, err := testmodels.ReadLines("mlm_train.txt")
		require.NoError(t, err)
		for _, line := range append(lines, "Hello, World! It's 3.5 o'clock") {
			want := tokenizers.GetStrings(wp.Tokenize(strings.ToLower(line)))
			ids, got, err := tok.Encode(line)
			require.NoError(t, err)
			assert.Equal(t, want, got, line)
			for i, s := range got {
				assert.Equal(t, m.Bert.Embeddings.Vocab.MustID(s), ids[i])
			}
		}
	})
	t.Run("bart", func(t *testing.T) {
		tok := bartTok(t)
		bpe, err := bpetokenizer.NewFromModelFolder(testmodels.Dir(testmodels.BARTName))
		require.NoError(t, err)
		pairs, err := testmodels.ReadPairs("seq2seq_train.tsv")
		require.NoError(t, err)
		for _, p := range pairs {
			for _, text := range p {
				want, err := bpe.Encode(text)
				require.NoError(t, err)
				ids, toks, err := tok.Encode(text)
				require.NoError(t, err)
				assert.Equal(t, want.IDs, ids, text)
				assert.Equal(t, want.Tokens, toks, text)
				back, err := tok.DecodeText(ids, false)
				require.NoError(t, err)
				assert.Equal(t, text, back)
			}
		}
	})
}

func TestEncodeAddedTokens(t *testing.T) {
	words := append([]string{"zorb"}, newWords...) // "zorb" is a prefix of "zorblax"
	m := testmodels.BERT(t)
	bt := bertTok(t, m)
	_, err := AddTokens(m, bt, words, nil)
	require.NoError(t, err)
	bm := testmodels.BART(t)
	rt := bartTok(t)
	_, err = AddTokens(bm, rt, words, nil)
	require.NoError(t, err)

	cases := []struct {
		text      string
		bert      []string
		bart      []string
		bartExact bool // DecodeText gives the text back
	}{
		{"a zorblax.", []string{"a", "zorblax", "."}, []string{"a", "Ġ", "zorblax", "."}, true},
		{"thezorblax", []string{"the", "zorblax"}, []string{"the", "zorblax"}, true},
		{"xzorblaxy", []string{"x", "zorblax", "y"}, []string{"x", "zorblax", "y"}, true},
		{"(zorblax)", []string{"(", "zorblax", ")"}, []string{"(", "zorblax", ")"}, true},
		{"zorblaxzorblax", []string{"zorblax", "zorblax"}, []string{"zorblax", "zorblax"}, true},
		{"zorb zorblax", []string{"zorb", "zorblax"}, []string{"zorb", "Ġ", "zorblax"}, true},
		{"the flumph, quindle!", []string{"the", "flumph", ",", "quindle", "!"}, []string{"the", "Ġ", "flumph", ",", "Ġ", "quindle", "!"}, true},
		{"[MASK]zorblax", []string{"[MASK]", "zorblax"}, nil, false},
		{"the <mask> is", nil, []string{"the", "<mask>", "Ġis"}, false},
		{"<s>zorblax</s>", nil, []string{"<s>", "zorblax", "</s>"}, true},
	}
	for _, tc := range cases {
		if tc.bert != nil {
			ids, toks, err := bt.Encode(tc.text)
			require.NoError(t, err)
			assert.Equal(t, tc.bert, toks, "bert %q", tc.text)
			for i, s := range toks {
				id, ok := bt.ID(s)
				require.True(t, ok)
				assert.Equal(t, id, ids[i])
			}
		}
		if tc.bart != nil {
			ids, toks, err := rt.Encode(tc.text)
			require.NoError(t, err)
			assert.Equal(t, tc.bart, toks, "bart %q", tc.text)
			if tc.bartExact {
				back, err := rt.DecodeText(ids, false)
				require.NoError(t, err)
				assert.Equal(t, tc.text, back)
			}
		}
	}

	// Case: BERT lower-cases, so "Zorblax" is the added token; BART matches
	// case-sensitively.
	ids, toks, err := bt.Encode("Zorblax QUINDLE")
	require.NoError(t, err)
	assert.Equal(t, []string{"zorblax", "quindle"}, toks)
	assert.Equal(t, []int{1039, 1040}, ids)
	_, toks, err = rt.Encode("Zorblax")
	require.NoError(t, err)
	assert.NotContains(t, toks, "zorblax")

	// Reverse direction.
	got, err := bt.Decode([]int{2, 171, 1039, 4, 3})
	require.NoError(t, err)
	assert.Equal(t, []string{"[CLS]", "the", "zorblax", "[MASK]", "[SEP]"}, got)
	text, err := bt.DecodeText([]int{2, 171, 1039, 4, 3}, true)
	require.NoError(t, err)
	assert.Equal(t, "the zorblax", text)
	_, err = bt.Decode([]int{5000})
	assert.ErrorContains(t, err, "id 5000 (position 0) is not in the vocabulary (size 1042)")
	text, err = rt.DecodeText([]int{0, 1101, 2}, true)
	require.NoError(t, err)
	assert.Equal(t, "zorblax", text)

	// The last id is reachable, unlike with cybertron's vocabulary.Term.
	last, ok := bt.Token(1041)
	assert.True(t, ok)
	assert.Equal(t, "flumph", last)
	_, ok = m.Bert.Embeddings.Vocab.Term(1041)
	assert.False(t, ok, "cybertron's Vocabulary.Term is off by one")

	assert.True(t, bt.IsAdded("zorblax"))
	assert.False(t, bt.IsAdded("the"))
	assert.Equal(t, KindBERT, bt.Kind())
	assert.Equal(t, KindBART, rt.Kind())
	assert.True(t, bt.LowerCase())
	assert.False(t, rt.LowerCase())
}

func TestEncodeNonASCII(t *testing.T) {
	m := testmodels.BART(t)
	tok := bartTok(t)
	_, err := AddTokens(m, tok, []string{"ζorb", "<obj>"}, nil)
	require.NoError(t, err)
	for _, text := range []string{"café ζorb, naïve", "x<obj>y ζorbζorb", "日本 <obj>"} {
		ids, _, err := tok.Encode(text)
		require.NoError(t, err)
		back, err := tok.DecodeText(ids, false)
		require.NoError(t, err)
		assert.Equal(t, text, back)
	}
	ids, _, err := tok.Encode("x<obj>y")
	require.NoError(t, err)
	assert.Contains(t, ids, 1101)
	_, _, err = tok.Encode("bad \xff")
	assert.ErrorContains(t, err, "not valid UTF-8")
}

func TestNewBERTTokenizerErrors(t *testing.T) {
	_, err := NewBERTTokenizer(nil, nil, true)
	assert.ErrorContains(t, err, "vocabulary is nil")
	_, err = NewBERTTokenizer(vocabulary.New([]string{"a", "b"}), nil, true)
	assert.ErrorContains(t, err, "no [UNK] token")
	v := vocabulary.New([]string{"[UNK]", "a", "Zorb", "zorb"})
	_, err = NewBERTTokenizer(v, []string{"nope"}, true)
	assert.ErrorContains(t, err, `added token "nope" is not in the vocabulary`)
	_, err = NewBERTTokenizer(v, []string{"Zorb", "zorb"}, true)
	assert.ErrorContains(t, err, `"Zorb" and "zorb" are the same after lower-casing`)
	tok, err := NewBERTTokenizer(v, []string{"Zorb", "zorb"}, false)
	require.NoError(t, err)
	_, toks, err := tok.Encode("aZorbzorb")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "Zorb", "zorb"}, toks)
}

func TestNewBARTTokenizerErrors(t *testing.T) {
	dir := testmodels.Dir(testmodels.BARTName)
	_, err := NewBARTTokenizer(dir, []AddedToken{{"zorblax", 5}})
	assert.ErrorContains(t, err, `added token "zorblax" has id 5, which vocab.json gives to`)
	_, err = NewBARTTokenizer(dir, []AddedToken{{"<mask>", 1200}})
	assert.ErrorContains(t, err, `added token "<mask>" has id 1200, but vocab.json gives it id 1099`)
	_, err = NewBARTTokenizer(dir, []AddedToken{{"zorblax", 1100}, {"quindle", 1100}})
	assert.ErrorContains(t, err, `have the same id 1100`)
	_, err = NewBARTTokenizer(t.TempDir(), nil)
	assert.ErrorContains(t, err, "vocab.json")
	_, err = LoadTokenizer(t.TempDir())
	assert.ErrorContains(t, err, "has neither vocab.txt (BERT) nor vocab.json + merges.txt (BART)")
	tok, err := NewBARTTokenizer(dir, []AddedToken{{"zorblax", 1100}})
	require.NoError(t, err)
	ids, _, err := tok.Encode("thezorblax")
	require.NoError(t, err)
	assert.Equal(t, 1100, ids[1])
	assert.Equal(t, 1101, tok.VocabSize())
}

func TestConcurrentEncode(t *testing.T) {
	m := testmodels.BERT(t)
	tok := bertTok(t, m)
	_, err := AddTokens(m, tok, newWords, nil)
	require.NoError(t, err)
	rt := bartTok(t)
	_, err = AddTokens(testmodels.BART(t), rt, newWords, nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				ids, _, err := tok.Encode("the zorblax is in thequindle.")
				assert.NoError(t, err)
				assert.Contains(t, ids, 1038)
				ids, _, err = rt.Encode("the zorblax is in thequindle.")
				assert.NoError(t, err)
				assert.Contains(t, ids, 1101)
			}
		}()
	}
	wg.Wait()
}
