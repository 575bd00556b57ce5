package recipes_test

import (
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/trainabletokens"
)

type guardSetup struct {
	res                          *newtokens.Result
	train, held, mix, ordinary   []finetune.MaskedExample
	ordinaryLines, trainOrdinary []string
	trainWithWords               []string
}

func bertOf(t *testing.T, tm *trainabletokens.Model) *bert.ModelForMaskedLM {
	m, ok := tm.Base().(*bert.ModelForMaskedLM)
	require.True(t, ok)
	return m
}

func newGuardSetup(t *testing.T) (*guardSetup, func() (*trainabletokens.Model, func() []float64)) {
	t.Helper()
	m := testmodels.BERT(t)
	words, err := testmodels.ReadLines("new_tokens.txt")
	require.NoError(t, err)
	res, err := newtokens.AddTokens(m, nil, words, nil)
	require.NoError(t, err)
	s := &guardSetup{res: res}
	train, err := testmodels.ReadLines("mlm_train.txt")
	require.NoError(t, err)
	eval, err := testmodels.ReadLines("mlm_eval.txt")
	require.NoError(t, err)
	mixLines, err := testmodels.ReadLines("mlm_ordinary_train.txt")
	require.NoError(t, err)
	s.ordinaryLines, err = testmodels.ReadLines("mlm_ordinary_eval.txt")
	require.NoError(t, err)
	s.trainWithWords, s.trainOrdinary, err = recipes.SplitLines(res.Tokenizer, train, res.IDs)
	require.NoError(t, err)
	s.train, err = recipes.MaskOccurrences(res.Tokenizer, train, res.IDs)
	require.NoError(t, err)
	s.held, err = recipes.MaskOccurrences(res.Tokenizer, eval, res.IDs)
	require.NoError(t, err)
	s.mix, err = recipes.MaskEachWord(res.Tokenizer, append(mixLines, s.trainOrdinary...), res.IDs)
	require.NoError(t, err)
	s.ordinary, err = recipes.MaskEachWord(res.Tokenizer, s.ordinaryLines, res.IDs)
	require.NoError(t, err)
	inject := func() (*trainabletokens.Model, func() []float64) {
		tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: res.IDs}, "")
		require.NoError(t, err)
		return tm, func() []float64 {
			var out []float64
			for _, p := range tm.TrainableParams() {
				out = append(out, p.Value().(mat.Matrix).Data().F64()...)
			}
			return out
		}
	}
	return s, inject
}

func TestMaskEachWord(t *testing.T) {
	s, _ := newGuardSetup(t)
	tok := s.res.Tokenizer
	lines := []string{"the dog is brown .", "the zorblax is red ."}
	ex, err := recipes.MaskEachWord(tok, lines, s.res.IDs)
	require.NoError(t, err)
	require.Len(t, ex, 5, "one example per word of the ordinary line; the line with a new word is skipped")
	for i, e := range ex {
		require.Len(t, e.Targets, 1)
		for pos, id := range e.Targets {
			assert.Equal(t, i+1, pos, "[CLS] is never masked")
			assert.Equal(t, recipes.MaskToken, e.Tokens[pos])
			want, _ := tok.Token(id)
			assert.Equal(t, []string{"the", "dog", "is", "brown", "."}[i], want)
		}
		assert.Equal(t, "[CLS]", e.Tokens[0])
		assert.Equal(t, "[SEP]", e.Tokens[len(e.Tokens)-1])
	}
	all, err := recipes.MaskEachWord(tok, lines, nil)
	require.NoError(t, err)
	assert.Len(t, all, 10, "nil ids: every line")
	_, err = recipes.MaskEachWord(nil, lines, nil)
	assert.Error(t, err)
	_, err = recipes.MaskEachWord(tok, []string{"bad \xff"}, nil)
	assert.ErrorContains(t, err, "line 1")

	with, ordinary, err := recipes.SplitLines(tok, lines, s.res.IDs)
	require.NoError(t, err)
	assert.Equal(t, []string{"the zorblax is red ."}, with)
	assert.Equal(t, []string{"the dog is brown ."}, ordinary)
	assert.Len(t, s.ordinary, 586, "the held-out ordinary set of testdata/corpus, each word masked alone")
}

func TestGuardRejectsBadOptions(t *testing.T) {
	s, inject := newGuardSetup(t)
	tm, _ := inject()
	bad := []struct {
		opts  recipes.TrainOptions
		guard recipes.Guard
		want  string
	}{
		{recipes.TrainOptions{DecayToInit: 1}, recipes.Guard{}, "DecayToInit"},
		{recipes.TrainOptions{DecayToInit: -0.1}, recipes.Guard{}, "DecayToInit"},
		{recipes.TrainOptions{Epochs: -1}, recipes.Guard{}, "Epochs"},
		{recipes.TrainOptions{}, recipes.Guard{MixPerBatch: 4}, "Mix is empty"},
		{recipes.TrainOptions{}, recipes.Guard{MixPerBatch: -1}, "MixPerBatch"},
		{recipes.TrainOptions{}, recipes.Guard{MaxOrdinaryDrop: 0.02}, "needs Guard.Ordinary"},
		{recipes.TrainOptions{}, recipes.Guard{Ordinary: s.ordinary, MaxOrdinaryDrop: 2}, "MaxOrdinaryDrop"},
		{recipes.TrainOptions{}, recipes.Guard{Ordinary: s.ordinary, Patience: -1}, "Patience"},
	}
	bm := bertOf(t, tm)
	for _, b := range bad {
		_, err := recipes.TrainMLMGuarded(bm, tm, s.train, b.opts, b.guard)
		assert.ErrorContains(t, err, b.want)
	}
	_, err := recipes.TrainMLMGuarded(bm, tm, nil, recipes.TrainOptions{}, recipes.Guard{})
	assert.ErrorContains(t, err, "no training examples")
	_, err = recipes.TrainMLMGuarded(nil, tm, s.train, recipes.TrainOptions{}, recipes.Guard{})
	assert.Error(t, err)
}

// TestGuardEarlyStopRestores: with a bound of (almost) zero, training
// stops at the first evaluation that loses an ordinary position and puts
// back the rows of the evaluation before it.
func TestGuardEarlyStopRestores(t *testing.T) {
	s, inject := newGuardSetup(t)
	tm, rowsOf := inject()
	start := rowsOf()
	rep, err := recipes.TrainMLMGuarded(bertOf(t, tm), tm, s.train, recipes.TrainOptions{Epochs: 3, LR: 0.05, Seed: 1, Quiet: true},
		recipes.Guard{Ordinary: s.ordinary[:200], MaxOrdinaryDrop: 1e-9, EvalEvery: 4})
	require.NoError(t, err)
	t.Logf("%v", rep)
	assert.True(t, rep.StoppedEarly)
	assert.Equal(t, len(rep.Losses)-4, rep.KeptStep, "stopped at the first evaluation out of bounds")
	assert.Less(t, len(rep.Losses), 3*24)
	assert.GreaterOrEqual(t, rep.OrdinaryAfter.Accuracy, rep.OrdinaryBefore.Accuracy, "the kept rows are within the bound")
	if rep.KeptStep == 0 {
		assert.Equal(t, start, rowsOf(), "initial rows restored")
	} else {
		assert.NotEqual(t, start, rowsOf())
	}
}

// TestDecayToInit: the decay keeps the rows nearer their start.
func TestDecayToInit(t *testing.T) {
	dist := func(decay float64) float64 {
		s, inject := newGuardSetup(t)
		tm, rowsOf := inject()
		start := rowsOf()
		_, err := recipes.TrainMLM(bertOf(t, tm), tm, s.train, recipes.TrainOptions{Epochs: 1, LR: 0.05, Seed: 1, Quiet: true, DecayToInit: decay})
		require.NoError(t, err)
		var d float64
		for i, v := range rowsOf() {
			d = max(d, abs(v-start[i]))
		}
		return d
	}
	free, decayed := dist(0), dist(0.2)
	t.Logf("largest row change: %.3f without decay, %.3f with 0.2", free, decayed)
	assert.Greater(t, free, 0.5)
	assert.Less(t, decayed, free/2)
	assert.Less(t, decayed, 0.05/0.2+0.05, "Adam's step (about lr) balances the decay at lr/decay")
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestDecodeWords: an added token generated right after a word piece reads
// as a word of its own; correctly spaced text decodes unchanged.
func TestDecodeWords(t *testing.T) {
	m := testmodels.BART(t)
	words, err := testmodels.ReadLines("new_tokens.txt")
	require.NoError(t, err)
	bartTok, err := newtokens.LoadTokenizer(testmodels.ConvertedDir(t, "bart-tiny"))
	require.NoError(t, err)
	res, err := newtokens.AddTokens(m, bartTok, words, nil)
	require.NoError(t, err)
	tok := res.Tokenizer
	id := func(s string) int {
		i, ok := tok.ID(s)
		require.True(t, ok, s)
		return i
	}
	for _, text := range []string{"the zorblax sleeps all day .", "a quindle.", "zorblax", "copy : the fast zorblax by the river"} {
		ids, _, err := tok.Encode(text)
		require.NoError(t, err)
		got, err := recipes.DecodeWords(tok, ids)
		require.NoError(t, err)
		assert.Equal(t, text, got)
	}
	glued := []int{id("the"), id("Ġsleeps"), id("Ġall"), id("quindle"), id("Ġ."), id("Ġcuts"), id("vintral"), id("flumph")}
	plain, err := tok.DecodeText(glued, true)
	require.NoError(t, err)
	assert.Equal(t, "the sleeps allquindle . cutsvintralflumph", plain)
	got, err := recipes.DecodeWords(tok, glued)
	require.NoError(t, err)
	assert.Equal(t, "the sleeps all quindle . cuts vintral flumph", got)
}
