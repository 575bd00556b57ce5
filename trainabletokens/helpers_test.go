package trainabletokens

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/losses"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/internal/walk"
)

// paramState is every parameter of a model: pointer, bits, grad flag.
type paramState struct {
	params []*nn.Param
	values [][]float64
	flags  []bool
}

func snapshot(m nn.Model) paramState {
	var s paramState
	seen := map[*nn.Param]bool{}
	walk.WalkAll(m, func(n walk.Node) {
		if p, ok := n.Value.(*nn.Param); ok && !seen[p] {
			seen[p] = true
			s.params = append(s.params, p)
			v := p.Value().(mat.Matrix)
			s.values = append(s.values, rows.Get(v, 0, v.Size()))
			s.flags = append(s.flags, p.RequiresGrad())
		}
	})
	return s
}

// requireSame checks that m holds exactly the params of s with the same
// bits and flags.
func requireSame(t *testing.T, s paramState, m nn.Model) {
	t.Helper()
	now := snapshot(m)
	require.Equal(t, len(s.params), len(now.params), "parameter count")
	for i := range s.params {
		require.Same(t, s.params[i], now.params[i], "param %d pointer", i)
		require.Equal(t, s.flags[i], now.flags[i], "param %d requiresGrad", i)
		for j := range s.values[i] {
			if math.Float64bits(s.values[i][j]) != math.Float64bits(now.values[i][j]) {
				t.Fatalf("param %d element %d changed: %v -> %v", i, j, s.values[i][j], now.values[i][j])
			}
		}
	}
}

// loadedBERT and loadedBART come from disk (converted testdata, gob).
func loadedBERT(t *testing.T) *bert.ModelForMaskedLM { return testmodels.BERT(t) }
func loadedBART(t *testing.T) *bart.ModelForConditionalGeneration {
	return testmodels.BART(t)
}

// freshBERT builds a small masked-LM in memory (never serialized), with
// the MLM decoder a value copy of the token table, as converters write it.
func freshBERT(t *testing.T) *bert.ModelForMaskedLM {
	t.Helper()
	terms := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	for i := 0; i < 59; i++ {
		terms = append(terms, string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	cfg := bert.Config{
		HiddenSize: 16, EmbeddingsSize: 16, IntermediateSize: 32, NumAttentionHeads: 2,
		NumHiddenLayers: 1, MaxPositionEmbeddings: 16, TypeVocabSize: 2, VocabSize: len(terms),
		HiddenAct: "gelu", ID2Label: map[string]string{"0": "a"},
	}
	m := bert.NewModelForMaskedLM[float32](bert.New[float32](cfg))
	m.Bert.Embeddings.Vocab = vocabulary.New(terms)
	rng := rand.New(rand.NewPCG(1, 2))
	fill(m, rng)
	dec := m.Layers[3].(*linear.Model)
	for i, p := range m.Bert.Embeddings.Tokens.Weights {
		require.NoError(t, rows.Copy(dec.W.Value().(mat.Matrix), i, p.Value().(mat.Matrix), 0, cfg.HiddenSize))
	}
	return m
}

// fill gives every param small random values.
func fill(m nn.Model, rng *rand.Rand) {
	walk.WalkAll(m, func(n walk.Node) {
		p, ok := n.Value.(*nn.Param)
		if !ok {
			return
		}
		v := p.Value().(mat.Matrix)
		vals := make([]float64, v.Size())
		for i := range vals {
			vals[i] = rng.NormFloat64() * 0.1
		}
		setData(v, vals)
	})
}

func setData(v mat.Matrix, vals []float64) {
	f32, f64, _ := rows.Floats(v)
	for i, x := range vals {
		if f32 != nil {
			f32[i] = float32(x)
		} else {
			f64[i] = x
		}
	}
}

// lmLoss is a graph that avoids spago's multi-head attention (whose
// backward deadlocks in v1.1.0): token rows → tied output head → mean
// cross-entropy of predicting target[i] from input[i].
func lmLoss(t *testing.T, tm *Model, table *embedding.Model, head *linear.Model, input, target []int) mat.Tensor {
	t.Helper()
	xs, err := table.Encode(input)
	require.NoError(t, err)
	var loss mat.Tensor
	for i, x := range xs {
		y, err := tm.Logits(head, x)
		require.NoError(t, err)
		l := losses.CrossEntropy(y, target[i])
		if loss == nil {
			loss = l
		} else {
			loss = ag.Add(loss, l)
		}
	}
	return ag.ProdScalar(loss, loss.Value().(mat.Matrix).NewScalar(1/float64(len(xs))))
}
