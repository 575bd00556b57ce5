package finetune_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/mat/float"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/walk"
)

// tinyWords is the vocabulary of the in-process tiny BERT.
var tinyWords = []string{
	"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
	"the", "a", "cat", "dog", "sat", "ran", "on", "in", "mat", "park",
	"big", "small", "red", "blue", "and", "is", "was", "<obj>", "<act>",
}

// tinyBERTConfig is a 2-layer, 2-head BERT with hidden size 16.
func tinyBERTConfig() bert.Config {
	return bert.Config{
		HiddenSize:            16,
		EmbeddingsSize:        16,
		IntermediateSize:      32,
		NumAttentionHeads:     2,
		NumHiddenLayers:       2,
		MaxPositionEmbeddings: 12,
		TypeVocabSize:         2,
		VocabSize:             len(tinyWords),
		HiddenAct:             "gelu",
		ID2Label:              map[string]string{"0": "neg", "1": "neu", "2": "pos"},
	}
}

// tinyBERT builds a randomly initialized masked-LM BERT (cybertron's
// constructors leave linear and layer-norm params at zero).
func tinyBERT[T float.DType](seed uint64) *bert.ModelForMaskedLM {
	m := bert.New[T](tinyBERTConfig())
	m.Embeddings.Vocab = vocabulary.New(tinyWords)
	mlm := bert.NewModelForMaskedLM[T](m)
	randomize(mlm, seed)
	return mlm
}

// tinyBERTClassifier builds a randomly initialized 3-label BERT classifier.
func tinyBERTClassifier[T float.DType](seed uint64) *bert.ModelForSequenceClassification {
	m := bert.New[T](tinyBERTConfig())
	m.Embeddings.Vocab = vocabulary.New(tinyWords)
	c := bert.NewModelForSequenceClassification[T](m)
	randomize(c, seed)
	return c
}

// bartVariant selects the BART configuration flags that change the forward
// pass.
type bartVariant struct {
	name                                 string
	preNorm, finalNorm, scale, normalize bool
}

var bartVariants = []bartVariant{
	{name: "bart post-norm", normalize: true},
	{name: "mbart pre-norm final-norm scaled", preNorm: true, finalNorm: true, scale: true, normalize: true},
	{name: "post-norm scaled no-embedding-norm", scale: true},
}

const tinyBARTVocab = 40

func tinyBARTConfig(v bartVariant) bart.Config {
	c := bart.Config{
		VocabSize:             tinyBARTVocab,
		DModel:                16,
		EncoderLayers:         2,
		DecoderLayers:         2,
		EncoderAttentionHeads: 2,
		DecoderAttentionHeads: 2,
		EncoderFFNDim:         32,
		DecoderFFNDim:         32,
		MaxPositionEmbeddings: 12,
		ActivationFunction:    "gelu",
		BosTokenID:            0,
		PadTokenID:            1,
		EosTokenID:            2,
		DecoderStartTokenID:   2,
		NormalizeBefore:       v.preNorm,
		FinalLayerNorm:        v.finalNorm,
		ScaleEmbedding:        v.scale,
		NormalizeEmbedding:    v.normalize,
		MaxLength:             12,
		NumBeams:              1,
	}
	c.Cybertron.PositionalEncoderOffset = 2
	return c
}

// tinyBART builds a randomly initialized BART for conditional generation.
func tinyBART[T float.DType](v bartVariant, seed uint64) *bart.ModelForConditionalGeneration {
	m := bart.NewModelForConditionalGeneration[T](bart.New[T](tinyBARTConfig(v)))
	randomize(m, seed)
	return m
}

// randomize fills linear, layer-norm and embedding params with seeded
// normal values (layer-norm gains around 1). BART's sinusoidal positional
// tables are left as built.
func randomize(model any, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	fill := func(p *nn.Param, mean, std float64) {
		f32, f64, _ := rows.Floats(p.Value().(mat.Matrix))
		for i := range f32 {
			f32[i] = float32(mean + std*rng.NormFloat64())
		}
		for i := range f64 {
			f64[i] = mean + std*rng.NormFloat64()
		}
	}
	walk.Walk(model, func(n walk.Node) bool {
		switch v := n.Value.(type) {
		case *bart.PositionalEncoder:
			return false
		case *linear.Model:
			fill(v.W, 0, 0.35)
			fill(v.B, 0, 0.1)
		case *layernorm.Model:
			fill(v.W, 1, 0.1)
			fill(v.B, 0, 0.1)
		case *embedding.Model:
			for _, w := range v.Weights {
				fill(w, 0, 0.5)
			}
			return false
		}
		return true
	})
}

// roundTrip encodes m with gob (nn.Dump) and decodes it again (nn.Load), as
// saving and loading a model file does.
func roundTrip[T any](t testing.TB, m T) T {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, nn.Dump(m, &buf))
	out, err := nn.Load[T](&buf)
	require.NoError(t, err)
	return out
}

// loaded applies finetune.PrepareLoaded to a gob-decoded model, as a user
// must before training it.
func loaded[M nn.Model](t testing.TB, m M) M {
	t.Helper()
	require.NoError(t, finetune.PrepareLoaded(m))
	return m
}

// backwardTimeout bounds ag.Backward, so that a deadlocked graph (spago's
// multi-head attention builds one) fails the test instead of hanging it.
const backwardTimeout = 60 * time.Second

// backward runs ag.Backward(loss) under backwardTimeout.
func backward(t testing.TB, loss mat.Tensor) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- ag.Backward(loss) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(backwardTimeout):
		t.Fatalf("ag.Backward did not finish within %v: deadlocked graph?", backwardTimeout)
	}
}

// maxAbsDiff is the largest element-wise |a - b| of two same-shape tensors.
func maxAbsDiff(t testing.TB, a, b mat.Tensor) float64 {
	t.Helper()
	require.Equal(t, a.Value().Shape(), b.Value().Shape())
	x, y := a.Value().Data().F64(), b.Value().Data().F64()
	worst := 0.0
	for i := range x {
		worst = math.Max(worst, math.Abs(x[i]-y[i]))
	}
	return worst
}

// column returns column j of a matrix tensor's value as a column vector.
func column(m mat.Tensor, j int) mat.Tensor {
	return m.Value().(mat.Matrix).ExtractColumn(j)
}

// snapshot copies the value of every param, to compare after training.
func snapshot(params []*nn.Param) map[*nn.Param][]float64 {
	out := make(map[*nn.Param][]float64, len(params))
	for _, p := range params {
		out[p] = slices.Clone(p.Value().Data().F64()) // F64 aliases float64 data
	}
	return out
}

// changed returns the params whose values differ from the snapshot.
func changed(before map[*nn.Param][]float64) []*nn.Param {
	var out []*nn.Param
	for p, old := range before {
		now := p.Value().Data().F64()
		for i := range old {
			if old[i] != now[i] {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
