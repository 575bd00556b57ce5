package newtokens

import (
	"math"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/testmodels"
)

var newWords = []string{"zorblax", "quindle", "flumph"}

const tol = 1e-6

func bertTok(t *testing.T, m *bert.ModelForMaskedLM) *Tokenizer {
	t.Helper()
	tok, err := NewBERTTokenizer(m.Bert.Embeddings.Vocab, nil, true)
	require.NoError(t, err)
	return tok
}

func bartTok(t *testing.T) *Tokenizer {
	t.Helper()
	tok, err := LoadTokenizer(testmodels.Dir(testmodels.BARTName))
	require.NoError(t, err)
	return tok
}

// tableRows copies all rows of an embedding table as float64.
func tableRows(e *embedding.Model) [][]float64 {
	out := make([][]float64, len(e.Weights))
	for i := range e.Weights {
		out[i] = embRows{e}.row(i)
	}
	return out
}

func matrixRows(p *nn.Param) [][]float64 {
	m := p.Value().(mat.Matrix)
	r, c := m.Shape()[0], 1
	if len(m.Shape()) > 1 {
		c = m.Shape()[1]
	}
	out := make([][]float64, r)
	for i := range out {
		out[i] = rows.Get(m, i, c)
	}
	return out
}

// meanNonZero is the test's own computation of InitMean.
func meanNonZero(rs [][]float64) []float64 {
	out := make([]float64, len(rs[0]))
	n := 0
	for _, r := range rs {
		zero := true
		for _, x := range r {
			if x != 0 {
				zero = false
			}
		}
		if zero {
			continue
		}
		n++
		for j, x := range r {
			out[j] += x
		}
	}
	for j := range out {
		out[j] /= float64(n)
	}
	return out
}

func requireClose(t *testing.T, want, got []float64, msg string, args ...any) {
	t.Helper()
	require.Len(t, got, len(want))
	for j := range want {
		if math.Abs(want[j]-got[j]) > tol {
			require.InDeltaf(t, want[j], got[j], tol, "%s: column %d: "+msg, append([]any{j}, args...)...)
		}
	}
}

// state is what a failed AddTokens must leave untouched.
type state struct {
	vocabTerms, tableLen, tableSize, cfgVocab int
	wShape, bShape                            []int
	added                                     int
	padLen, eosLen                            int
	firstRow                                  []float64
}

func bertState(m *bert.ModelForMaskedLM, tok *Tokenizer) state {
	s := state{
		vocabTerms: len(m.Bert.Embeddings.Vocab.Items()),
		tableLen:   len(m.Bert.Embeddings.Tokens.Weights),
		tableSize:  m.Bert.Embeddings.Tokens.Size,
		cfgVocab:   m.Bert.Config.VocabSize,
		firstRow:   embRows{m.Bert.Embeddings.Tokens}.row(0),
	}
	lin := m.Layers[3].(*linear.Model)
	s.wShape, s.bShape = lin.W.Shape(), lin.B.Shape()
	if tok != nil {
		s.added = len(tok.Added())
	}
	return s
}

func bartState(m *bart.ModelForConditionalGeneration, tok *Tokenizer) state {
	s := state{
		tableLen:  len(m.Bart.Embeddings.Weights),
		tableSize: m.Bart.Embeddings.Size,
		cfgVocab:  m.Bart.Config.VocabSize,
		wShape:    m.Projection.W.Shape(),
		bShape:    m.Projection.B.Shape(),
		padLen:    m.PadMask.Value().(mat.Matrix).Size(),
		eosLen:    m.EosMask.Value().(mat.Matrix).Size(),
		firstRow:  embRows{m.Bart.Embeddings}.row(0),
	}
	if tok != nil {
		s.added = len(tok.Added())
	}
	return s
}
