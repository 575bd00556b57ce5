package newtokens

import (
	"bytes"
	"math"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers/wordpiecetokenizer"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// expectedRow is the test's own computation of a strategy for one new token.
// subtokens returns the ids a word tokenized into before it was added.
func expectedRow(t *testing.T, init Init, old [][]float64, subtokens []int) []float64 {
	t.Helper()
	switch init {
	case InitMean:
		return meanNonZero(old)
	case InitSubtokenMean:
		require.NotEmpty(t, subtokens)
		out := make([]float64, len(old[0]))
		for _, id := range subtokens {
			for j, x := range old[id] {
				out[j] += x
			}
		}
		for j := range out {
			out[j] /= float64(len(subtokens))
		}
		return out
	}
	return nil
}

func TestAddTokensBERT(t *testing.T) {
	for _, init := range []Init{InitMean, InitSubtokenMean, InitTableNormal} {
		t.Run(init.String(), func(t *testing.T) {
			m := testmodels.BERT(t)
			tok := bertTok(t, m)
			e := m.Bert.Embeddings.Tokens
			lin := m.Layers[3].(*linear.Model)
			oldRows := tableRows(e)
			oldW, oldB := matrixRows(lin.W), matrixRows(lin.B)
			wGrad, bGrad := lin.W.RequiresGrad(), lin.B.RequiresGrad()
			v := len(oldRows)
			require.Equal(t, 1038, v)

			// Sub-tokens before adding, with cybertron's own WordPiece over the
			// original vocabulary.
			wp := wordpiecetokenizer.New(vocabulary.New(append([]string(nil), m.Bert.Embeddings.Vocab.Items()...)))
			subs := map[string][]int{}
			for _, w := range newWords {
				for _, s := range tokenizers.GetStrings(wp.Tokenize(w)) {
					id, _ := m.Bert.Embeddings.Vocab.ID(s)
					subs[w] = append(subs[w], id)
				}
			}

			res, err := AddTokens(m, tok, newWords, &Options{Init: init, Seed: 7})
			require.NoError(t, err)

			// Sizes, ids, configs.
			n := len(newWords)
			assert.Equal(t, []int{v, v + 1, v + 2}, res.IDs)
			assert.Equal(t, newWords, res.Tokens)
			assert.Equal(t, v, res.OldVocabSize)
			assert.Equal(t, v+n, res.NewVocabSize)
			assert.Equal(t, "*bert.ModelForMaskedLM", res.Model)
			assert.Equal(t, "Layers[3]", res.Output)
			assert.True(t, res.OutputTied, "tiny BERT's decoder is a copy of the word embeddings")
			assert.Same(t, tok, res.Tokenizer)
			assert.Len(t, e.Weights, v+n)
			assert.Equal(t, v+n, e.Size)
			assert.Len(t, m.Bert.Embeddings.Vocab.Items(), v+n)
			for i, w := range newWords {
				id, ok := m.Bert.Embeddings.Vocab.ID(w)
				require.True(t, ok, w)
				assert.Equal(t, v+i, id)
			}
			assert.Equal(t, v+n, m.Bert.Config.VocabSize)
			assert.Equal(t, v+n, m.Bert.Embeddings.Config.VocabSize)
			assert.Equal(t, v+n, m.Bert.Encoder.Config.VocabSize)
			for _, l := range m.Bert.Encoder.Layers {
				assert.Equal(t, v+n, l.Config.VocabSize)
			}
			assert.Equal(t, []int{v + n, 32}, lin.W.Shape())
			assert.Equal(t, []int{v + n, 1}, lin.B.Shape())
			assert.Equal(t, wGrad, lin.W.RequiresGrad(), "W keeps its requiresGrad flag")
			assert.Equal(t, bGrad, lin.B.RequiresGrad(), "B keeps its requiresGrad flag")
			for _, id := range res.IDs {
				assert.Equal(t, e.Weights[0].RequiresGrad(), e.Weights[id].RequiresGrad())
			}

			// Old rows untouched.
			newRows, newW, newB := tableRows(e), matrixRows(lin.W), matrixRows(lin.B)
			for i := 0; i < v; i++ {
				require.Equal(t, oldRows[i], newRows[i], "row %d", i)
				require.Equal(t, oldW[i], newW[i], "W row %d", i)
				require.Equal(t, oldB[i], newB[i], "B row %d", i)
			}

			// New rows per strategy; the tied copy equals the table row; the
			// bias is 0, as transformers pads a tied head's bias.
			require.True(t, res.OutputTied)
			for i, id := range res.IDs {
				w := newWords[i]
				if init == InitTableNormal {
					continue
				}
				requireClose(t, expectedRow(t, init, oldRows, subs[w]), newRows[id], "%s row of %q", init, w)
				if init == InitSubtokenMean {
					assert.Equal(t, subs[w], res.PerToken[i].Subtokens)
					assert.Equal(t, InitSubtokenMean, res.PerToken[i].Init)
				}
			}
			for _, id := range res.IDs {
				assert.Equal(t, newRows[id], newW[id], "W row %d equals the table row", id)
				assert.Equal(t, 0.0, newB[id][0], "bias of new id %d", id)
			}
			if init == InitTableNormal {
				checkRandomRows(t, oldRows, newRows[v:])
			}

			// Inference with the new token in the input.
			_, toks, err := tok.EncodeSpecial("the zorblax is [MASK].")
			require.NoError(t, err)
			require.Contains(t, toks, "zorblax")
			out := m.Predict(toks)
			require.Len(t, out, 1)
			for _, logits := range out {
				assert.Equal(t, v+n, logits.Value().(mat.Matrix).Size())
				for _, x := range logits.Value().(mat.Matrix).Data().F64() {
					require.False(t, math.IsNaN(x) || math.IsInf(x, 0))
				}
			}

			// The tokenizer knows the tokens.
			ids, _, err := tok.Encode("a zorblax, thequindle.")
			require.NoError(t, err)
			assert.Contains(t, ids, v)
			assert.Contains(t, ids, v+1)
		})
	}
}

// checkRandomRows checks that InitTableNormal rows look like N(0, σ) with σ the
// std of the old non-zero rows.
func checkRandomRows(t *testing.T, old, fresh [][]float64) {
	t.Helper()
	var sum, sq float64
	cnt := 0
	for _, r := range old {
		if isZero(r) {
			continue
		}
		for _, x := range r {
			sum += x
			sq += x * x
			cnt++
		}
	}
	mu := sum / float64(cnt)
	sigma := math.Sqrt(sq/float64(cnt) - mu*mu)
	var fs, fq float64
	fn := 0
	for _, r := range fresh {
		for _, x := range r {
			fs += x
			fq += x * x
			fn++
		}
	}
	fstd := math.Sqrt(fq/float64(fn) - (fs/float64(fn))*(fs/float64(fn)))
	assert.InDelta(t, sigma, fstd, 0.35*sigma, "sample std of the new rows")
	assert.InDelta(t, 0, fs/float64(fn), 0.35*sigma, "sample mean of the new rows")
}

func TestRandomInitIsSeeded(t *testing.T) {
	grow := func(seed uint64) [][]float64 {
		m := testmodels.BERT(t)
		res, err := AddTokens(m, nil, newWords, &Options{Init: InitTableNormal, Seed: seed})
		require.NoError(t, err)
		return tableRows(m.Bert.Embeddings.Tokens)[res.OldVocabSize:]
	}
	a, b, c := grow(1), grow(1), grow(2)
	assert.Equal(t, a, b, "same seed, same rows")
	assert.NotEqual(t, a, c, "different seed, different rows")
}

func TestAddTokensBART(t *testing.T) {
	for _, init := range []Init{InitMean, InitSubtokenMean, InitTableNormal} {
		t.Run(init.String(), func(t *testing.T) {
			m := testmodels.BART(t)
			tok := bartTok(t)
			e := m.Bart.Embeddings
			oldRows := tableRows(e)
			oldW, oldB := matrixRows(m.Projection.W), matrixRows(m.Projection.B)
			v := len(oldRows)
			require.Equal(t, 1100, v)
			subs := map[string][]int{}
			for _, w := range newWords {
				enc, err := tok.bpe.Encode(w) // cybertron's BPE, before adding
				require.NoError(t, err)
				subs[w] = enc.IDs
			}

			res, err := AddTokens(m, tok, newWords, &Options{Init: init, Seed: 3})
			require.NoError(t, err)
			n := len(newWords)
			assert.Equal(t, []int{v, v + 1, v + 2}, res.IDs)
			assert.True(t, res.OutputTied, "tiny BART's projection is a copy of the shared table")
			assert.Equal(t, "Projection", res.Output)
			assert.Len(t, e.Weights, v+n)
			assert.Equal(t, v+n, e.Size)
			for _, c := range []int{
				m.Bart.Config.VocabSize,
				m.Bart.Encoder.Config.VocabSize, m.Bart.Decoder.Config.VocabSize,
				m.Bart.Encoder.Embeddings.Config.VocabSize, m.Bart.Decoder.Embeddings.Config.VocabSize,
			} {
				assert.Equal(t, v+n, c)
			}
			assert.Equal(t, []int{v + n, 32}, m.Projection.W.Shape())
			assert.Equal(t, []int{v + n, 1}, m.Projection.B.Shape())
			assert.Equal(t, v+n, tok.VocabSize())

			// Both shared wrappers see the grown table and the new rows.
			for _, sh := range []*bart.Embeddings{m.Bart.Encoder.Embeddings, m.Bart.Decoder.Embeddings} {
				require.Same(t, e, sh.SharedEmbeddings.Model)
				enc, err := sh.SharedEmbeddings.Encode(res.IDs)
				require.NoError(t, err)
				for i, x := range enc {
					assert.Equal(t, tableRows(e)[res.IDs[i]], rows.Get(x.Value().(mat.Matrix), 0, e.Dim))
				}
			}

			// Masks: sizes, pad stays −Inf at the pad id, new ids are 0 in the
			// pad mask and −Inf in the EOS mask.
			pad := rows.Get(m.PadMask.Value().(mat.Matrix), 0, v+n)
			eos := rows.Get(m.EosMask.Value().(mat.Matrix), 0, v+n)
			assert.Len(t, pad, v+n)
			assert.Len(t, eos, v+n)
			assert.True(t, math.IsInf(pad[m.Bart.Config.PadTokenID], -1))
			assert.Equal(t, 0.0, eos[m.Bart.Config.EosTokenID])
			for _, id := range res.IDs {
				assert.Equal(t, 0.0, pad[id])
				assert.True(t, math.IsInf(eos[id], -1))
			}

			newRows, newW, newB := tableRows(e), matrixRows(m.Projection.W), matrixRows(m.Projection.B)
			for i := 0; i < v; i++ {
				require.Equal(t, oldRows[i], newRows[i])
				require.Equal(t, oldW[i], newW[i])
				require.Equal(t, oldB[i], newB[i])
			}
			for i, id := range res.IDs {
				if init != InitTableNormal {
					requireClose(t, expectedRow(t, init, oldRows, subs[newWords[i]]), newRows[id], "%s row of %q", init, newWords[i])
				}
				assert.Equal(t, newRows[id], newW[id])
				// final_logits_bias grows with zeros, as in transformers.
				assert.Equal(t, 0.0, newB[id][0], "final_logits_bias of new id %d", id)
			}
			if init == InitTableNormal {
				checkRandomRows(t, oldRows, newRows[v:])
			}

			// Inference: encoder, decoder and projection with a new id.
			ids, toks, err := tok.EncodeSpecial("where is the zorblax ?")
			require.NoError(t, err)
			require.Contains(t, toks, "zorblax")
			require.Contains(t, ids, v)
			encoded := m.Bart.Encoder.Encode(ids)
			decoded, _ := m.Bart.Decoder.Decode(encoded, []int{m.Bart.Config.DecoderStartTokenID, v + 1}, nil, 1)
			logits := m.Projection.Forward(decoded...)
			require.Len(t, logits, 2)
			assert.Equal(t, v+n, logits[1].Value().(mat.Matrix).Size())

			// Generation step with both masks (cybertron adds them to the logits).
			next := m.DecodingFunc(ids, func(s mat.Matrix) mat.Matrix { return s }, true)
			out := next([]*bart.DecodingInput{{InputIDs: []int{v}, CurLen: m.Bart.Config.MaxLength - 1}})
			require.Len(t, out, 1)
			lp := out[0].LogProbValue
			assert.Equal(t, v+n, lp.Size())
			assert.Equal(t, m.Bart.Config.EosTokenID, lp.ArgMax(), "EOS forced at max length")
		})
	}
}

func TestSubtokenMeanFallsBackToMean(t *testing.T) {
	m := testmodels.BERT(t)
	// "ζζ" is not in the tiny vocabulary: WordPiece gives [UNK] only.
	res, err := AddTokens(m, nil, []string{"ζζ"}, &Options{Init: InitSubtokenMean})
	require.NoError(t, err)
	assert.Equal(t, InitMean, res.PerToken[0].Init)
	assert.Empty(t, res.PerToken[0].Subtokens)
	rs := tableRows(m.Bert.Embeddings.Tokens)
	requireClose(t, meanNonZero(rs[:res.OldVocabSize]), rs[res.IDs[0]], "fallback row")
}

func TestAddTwiceUsesEarlierTokens(t *testing.T) {
	m := testmodels.BERT(t)
	tok := bertTok(t, m)
	first, err := AddTokens(m, tok, []string{"zorb"}, nil)
	require.NoError(t, err)
	second, err := AddTokens(m, tok, []string{"zorbzorb", "flumph"}, &Options{Init: InitSubtokenMean})
	require.NoError(t, err)
	assert.Equal(t, []int{1039, 1040}, second.IDs)
	assert.Equal(t, []int{first.IDs[0], first.IDs[0]}, second.PerToken[0].Subtokens, "the earlier added token is a sub-token")
	rs := tableRows(m.Bert.Embeddings.Tokens)
	requireClose(t, rs[first.IDs[0]], rs[second.IDs[0]], "mean of two equal rows")
	assert.Equal(t, []AddedToken{{"zorb", 1038}, {"zorbzorb", 1039}, {"flumph", 1040}}, tok.Added())
}

func TestOtherHeads(t *testing.T) {
	t.Run("bert.Model", func(t *testing.T) {
		m := testmodels.BERT(t)
		res, err := AddTokens(m.Bert, nil, newWords, nil)
		require.NoError(t, err)
		assert.Equal(t, "", res.Output)
		assert.Len(t, m.Bert.Embeddings.Tokens.Weights, 1041)
		assert.Equal(t, 1041, m.Bert.Config.VocabSize)
		assert.Equal(t, []int{1038, 32}, m.Layers[3].(*linear.Model).W.Shape(), "the MLM head is not part of bert.Model")
	})
	t.Run("bert.ModelForSequenceClassification", func(t *testing.T) {
		m := testmodels.BERT(t)
		_, err := AddTokens(&bert.ModelForSequenceClassification{Bert: m.Bert}, nil, newWords, nil)
		require.NoError(t, err)
		assert.Len(t, m.Bert.Embeddings.Tokens.Weights, 1041)
	})
	t.Run("bart.Model with gob-nil wrappers", func(t *testing.T) {
		var buf bytes.Buffer
		require.NoError(t, nn.Dump(testmodels.BART(t).Bart, &buf))
		b, err := nn.Load[*bart.Model](&buf)
		require.NoError(t, err)
		require.Nil(t, b.Encoder.Embeddings.SharedEmbeddings.Model, "gob leaves the wrappers empty")
		res, err := AddTokens(b, bartTok(t), newWords, nil)
		require.NoError(t, err)
		assert.Equal(t, 1103, res.NewVocabSize)
		assert.Same(t, b.Embeddings, b.Encoder.Embeddings.SharedEmbeddings.Model)
		assert.Same(t, b.Embeddings, b.Decoder.Embeddings.SharedEmbeddings.Model)
		enc := b.Encoder.Encode([]int{0, 1100, 2})
		assert.Len(t, enc, 3)
	})
}

func TestGobRoundTrip(t *testing.T) {
	t.Run("bert", func(t *testing.T) {
		m := testmodels.BERT(t)
		res, err := AddTokens(m, nil, newWords, &Options{Init: InitSubtokenMean})
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, nn.Dump(m, &buf))
		got, err := nn.Load[*bert.ModelForMaskedLM](&buf)
		require.NoError(t, err)
		assert.Equal(t, tableRows(m.Bert.Embeddings.Tokens), tableRows(got.Bert.Embeddings.Tokens))
		assert.Equal(t, res.NewVocabSize, got.Bert.Embeddings.Tokens.Size)
		assert.Equal(t, res.NewVocabSize, got.Bert.Config.VocabSize)
		assert.Equal(t, matrixRows(m.Layers[3].(*linear.Model).W), matrixRows(got.Layers[3].(*linear.Model).W))
		for i, w := range newWords {
			id, ok := got.Bert.Embeddings.Vocab.ID(w)
			require.True(t, ok)
			assert.Equal(t, res.IDs[i], id)
		}
		_, toks, err := bertTok(t, got).EncodeSpecial("[MASK] zorblax")
		require.NoError(t, err)
		assert.Len(t, got.Predict(toks), 1)
	})
	t.Run("bart", func(t *testing.T) {
		m := testmodels.BART(t)
		res, err := AddTokens(m, bartTok(t), newWords, nil)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, nn.Dump(m, &buf))
		got, err := nn.Load[*bart.ModelForConditionalGeneration](&buf)
		require.NoError(t, err)
		testmodels.RewireBARTShared(got)
		assert.Equal(t, tableRows(m.Bart.Embeddings), tableRows(got.Bart.Embeddings))
		assert.Equal(t, matrixRows(m.Projection.W), matrixRows(got.Projection.W))
		assert.Equal(t, res.NewVocabSize, got.Bart.Config.VocabSize)
		assert.Equal(t, res.NewVocabSize, got.PadMask.Value().(mat.Matrix).Size())
		assert.Equal(t, res.NewVocabSize, got.EosMask.Value().(mat.Matrix).Size())
		dec, _ := got.Bart.Decoder.Decode(got.Bart.Encoder.Encode([]int{0, res.IDs[2], 2}), []int{2, res.IDs[0]}, nil, 1)
		assert.Equal(t, res.NewVocabSize, got.Projection.Forward(dec...)[0].Value().(mat.Matrix).Size())
	})
}

type notAModel struct{ nn.Module }

func TestBadInput(t *testing.T) {
	cases := []struct {
		name   string
		tokens []string
		opts   *Options
		want   string
	}{
		{"no tokens", nil, nil, "no tokens given"},
		{"empty string", []string{"zorblax", ""}, nil, "token 1: empty string"},
		{"space inside", []string{"zorb lax"}, nil, "contains whitespace"},
		{"tab inside", []string{"zorb\tlax"}, nil, "contains whitespace"},
		{"newline", []string{"zorblax\n"}, nil, "contains whitespace"},
		{"control", []string{"zorb\x01"}, nil, "control character"},
		{"invalid utf8", []string{"zorb\xff"}, nil, "not valid UTF-8"},
		{"duplicate", []string{"zorblax", "quindle", "zorblax"}, nil, `"zorblax" is listed twice (positions 0 and 2)`},
		{"bad init", []string{"zorblax"}, &Options{Init: 9}, "Options.Init = 9"},
	}
	for _, tc := range cases {
		t.Run("bert/"+tc.name, func(t *testing.T) {
			m := testmodels.BERT(t)
			tok := bertTok(t, m)
			before := bertState(m, tok)
			_, err := AddTokens(m, tok, tc.tokens, tc.opts)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidTokens)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before, bertState(m, tok))
		})
		t.Run("bart/"+tc.name, func(t *testing.T) {
			m := testmodels.BART(t)
			tok := bartTok(t)
			before := bartState(m, tok)
			_, err := AddTokens(m, tok, tc.tokens, tc.opts)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidTokens)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before, bartState(m, tok))
		})
	}

	bertOnly := []struct {
		name   string
		tokens []string
		want   string
	}{
		{"exists", []string{"zorblax", "the"}, `"the" is already in the vocabulary with id 171`},
		{"special exists", []string{"[MASK]"}, `"[MASK]" is already in the vocabulary with id 4`},
		{"lower-case capture", []string{"The"}, `"The" would be matched on lower-cased text as "the", which is already token id 171`},
		{"lower-case duplicate", []string{"Zorblax", "zorblax"}, `"Zorblax" and "zorblax" are the same after lower-casing`},
	}
	for _, tc := range bertOnly {
		t.Run("bert/"+tc.name, func(t *testing.T) {
			m := testmodels.BERT(t)
			tok := bertTok(t, m)
			before := bertState(m, tok)
			_, err := AddTokens(m, tok, tc.tokens, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidTokens)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before, bertState(m, tok))
		})
	}
	t.Run("bert/already added", func(t *testing.T) {
		m := testmodels.BERT(t)
		tok := bertTok(t, m)
		_, err := AddTokens(m, tok, []string{"zorblax"}, nil)
		require.NoError(t, err)
		before := bertState(m, tok)
		_, err = AddTokens(m, tok, []string{"quindle", "zorblax"}, nil)
		require.ErrorContains(t, err, `"zorblax" is already in the vocabulary with id 1038`)
		_, err = AddTokens(m, tok, []string{"ZORBLAX"}, nil)
		require.ErrorContains(t, err, `"ZORBLAX" is the same as the added token "zorblax" (id 1038) after lower-casing`)
		assert.Equal(t, before, bertState(m, tok))
	})
	t.Run("bart/exists", func(t *testing.T) {
		m := testmodels.BART(t)
		tok := bartTok(t)
		before := bartState(m, tok)
		for tokStr, want := range map[string]string{
			"Ġthe":   `"Ġthe" is already in the vocabulary with id`,
			"<mask>": `"<mask>" is already in the vocabulary with id 1099`,
		} {
			_, err := AddTokens(m, tok, []string{"zorblax", tokStr}, nil)
			require.ErrorIs(t, err, ErrInvalidTokens)
			assert.ErrorContains(t, err, want)
		}
		// BART is case-sensitive: "The" is a new token there.
		assert.Equal(t, before, bartState(m, tok))
	})

	t.Run("unsupported model", func(t *testing.T) {
		tok := bertTok(t, testmodels.BERT(t))
		for _, model := range []nn.Model{&notAModel{}, linear.New[float32](2, 3), nil, (*bert.ModelForMaskedLM)(nil)} {
			_, err := AddTokens(model, tok, newWords, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrUnsupportedModel)
		}
		_, err := AddTokens(&notAModel{}, tok, newWords, nil)
		assert.ErrorContains(t, err, "*newtokens.notAModel; supported: *bert.ModelForMaskedLM, *bert.Model")
		assert.ErrorContains(t, err, "*bart.ModelForConditionalGeneration")
		assert.Len(t, tok.Added(), 0)
	})
	t.Run("bart without tokenizer", func(t *testing.T) {
		m := testmodels.BART(t)
		before := bartState(m, nil)
		_, err := AddTokens(m, nil, newWords, nil)
		require.ErrorContains(t, err, "pass its tokenizer")
		assert.Equal(t, before, bartState(m, nil))
	})
	t.Run("tokenizer of the other kind", func(t *testing.T) {
		m := testmodels.BERT(t)
		before := bertState(m, nil)
		_, err := AddTokens(m, bartTok(t), newWords, nil)
		require.ErrorContains(t, err, "a bart tokenizer cannot serve *bert.ModelForMaskedLM")
		assert.Equal(t, before, bertState(m, nil))
	})
	t.Run("bert vocabulary out of step", func(t *testing.T) {
		m := testmodels.BERT(t)
		other := vocabulary.New(append([]string(nil), m.Bert.Embeddings.Vocab.Items()...))
		other.Add("extra")
		tok, err := NewBERTTokenizer(other, nil, true)
		require.NoError(t, err)
		before := bertState(m, nil)
		_, err = AddTokens(m, tok, newWords, nil)
		require.ErrorContains(t, err, "the tokenizer's vocabulary has 1039 terms, the model's 1038")
		assert.Equal(t, before, bertState(m, nil))
	})
	t.Run("bart wrapper on another table", func(t *testing.T) {
		m := testmodels.BART(t)
		other := testmodels.BART(t)
		m.Bart.Decoder.Embeddings.SharedEmbeddings.Model = other.Bart.Embeddings
		before := bartState(m, nil)
		_, err := AddTokens(m, bartTok(t), newWords, nil)
		require.ErrorIs(t, err, ErrUnsupportedModel)
		require.ErrorContains(t, err, "Decoder.Embeddings.SharedEmbeddings points to a different table")
		assert.Equal(t, before, bartState(m, nil))
		assert.Len(t, other.Bart.Embeddings.Weights, 1100)
	})
	t.Run("wrapped MLM decoder", func(t *testing.T) {
		m := testmodels.BERT(t)
		m.Layers[3] = wrapped{m.Layers[3]}
		_, err := AddTokens(m, nil, newWords, nil)
		require.ErrorContains(t, err, "Layers[3] is newtokens.wrapped, expected *linear.Model")
		assert.Len(t, m.Bert.Embeddings.Tokens.Weights, 1038)
	})
}

type wrapped struct{ nn.StandardModel }

func TestParseInit(t *testing.T) {
	for in, want := range map[string]Init{"mean": InitMean, "Random": InitTableNormal, "subtoken_mean": InitSubtokenMean, "subtoken-mean": InitSubtokenMean, "SubtokenMean": InitSubtokenMean} {
		got, err := ParseInit(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
		assert.Equal(t, want, Init(int(want)))
	}
	_, err := ParseInit("zeros")
	assert.ErrorContains(t, err, `unknown init "zeros"; expected one of mean, table_normal, subtoken_mean`)
	assert.Equal(t, "subtoken_mean", InitSubtokenMean.String())
	assert.Equal(t, "Init(7)", Init(7).String())
	assert.Len(t, SupportedModels(), 9)
}

func TestFloat64Model(t *testing.T) {
	terms := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s"}
	cfg := bert.Config{
		HiddenSize: 4, EmbeddingsSize: 4, VocabSize: len(terms), MaxPositionEmbeddings: 8,
		TypeVocabSize: 2, NumAttentionHeads: 2, NumHiddenLayers: 1, IntermediateSize: 8, HiddenAct: "gelu",
	}
	m := bert.NewModelForMaskedLM[float64](bert.New[float64](cfg))
	m.Bert.Embeddings.Vocab = vocabulary.New(terms)
	for i, p := range m.Bert.Embeddings.Tokens.Weights {
		d := mat.Data[float64](p.Value().(mat.Matrix))
		for j := range d {
			d[j] = float64(i*10 + j)
		}
	}
	lin := m.Layers[3].(*linear.Model)
	lin.W.SetRequiresGrad(false)
	res, err := AddTokens(m, nil, []string{"dog", "cats"}, &Options{Init: InitSubtokenMean})
	require.NoError(t, err)
	assert.False(t, res.OutputTied, "the zero decoder is not a copy of the table")
	e := m.Bert.Embeddings.Tokens
	require.Len(t, e.Weights, 10)
	assert.IsType(t, &mat.Dense[float64]{}, e.Weights[8].Value())
	assert.IsType(t, &mat.Dense[float64]{}, lin.W.Value())
	assert.False(t, lin.W.RequiresGrad())
	// "dog" → [UNK] only → mean of rows 0…7 (row 0 is [0 1 2 3], not zero).
	assert.Equal(t, InitMean, res.PerToken[0].Init)
	assert.Equal(t, []float64{35, 36, 37, 38}, tableRows(e)[8])
	// "cats" → cat ##s → rows 6 and 7.
	assert.Equal(t, []int{6, 7}, res.PerToken[1].Subtokens)
	assert.Equal(t, []float64{65, 66, 67, 68}, tableRows(e)[9])
	// Untied zero decoder: its own (all-zero) statistics.
	assert.Equal(t, make([]float64, 4), matrixRows(lin.W)[9])
}

// An untied BERT decoder with a bias is resized by transformers'
// _get_resized_lm_head, whose mean_resizing puts the new bias entries at the
// mean of the old ones; a tied one pads with 0 (TestAddTokensBERT).
func TestUntiedDecoderBiasIsTheMean(t *testing.T) {
	m := testmodels.BERT(t)
	dec := m.Layers[3].(*linear.Model)
	w := dec.W.Value().(mat.Matrix)
	v := w.Shape()[0]
	row := rows.Get(w, 10, w.Shape()[1])
	row[0] += 0.5 // the decoder is no longer a copy of the table
	require.NoError(t, rows.Set(w, 10, row))
	oldB := rows.Get(dec.B.Value().(mat.Matrix), 0, v)
	res, err := AddTokens(m, nil, []string{"zorblax"}, nil)
	require.NoError(t, err)
	require.False(t, res.OutputTied)
	var sum float64
	for _, b := range oldB {
		sum += b
	}
	newB := rows.Get(dec.B.Value().(mat.Matrix), 0, v+1)
	assert.InDelta(t, sum/float64(v), newB[v], 1e-6)
}
