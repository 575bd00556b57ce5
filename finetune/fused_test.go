package finetune_test

import (
	"math"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// frozenWithRows freezes every parameter of m, then makes the given rows
// trainable (so that the fused forward runs in training mode).
func frozenWithRows(m nn.Model, rows ...*nn.Param) {
	finetune.SetRequiresGrad(m, false)
	for _, r := range rows {
		r.SetRequiresGrad(true)
	}
}

// The fused forward (every weight frozen) gives cybertron's inference
// outputs, with and without trainable rows.
func TestFusedMaskedLMMatchesCybertron(t *testing.T) {
	models := []struct {
		name      string
		model     func(t testing.TB) *bert.ModelForMaskedLM
		sentences [][]string
	}{
		{"fresh", func(testing.TB) *bert.ModelForMaskedLM { return tinyBERT[float32](1) }, bertSentences},
		{"testdata bert-tiny", func(t testing.TB) *bert.ModelForMaskedLM { return loaded(t, testmodels.BERT(t)) }, [][]string{
			{"[CLS]", "the", "[MASK]", "sat", "on", "the", "table", ".", "[SEP]"},
			{"[CLS]", "[MASK]", "[SEP]", "the", "[SEP]"},
		}},
	}
	for _, tt := range models {
		for _, train := range []bool{false, true} {
			name := tt.name + "/inference"
			if train {
				name = tt.name + "/rows trainable"
			}
			t.Run(name, func(t *testing.T) {
				m := tt.model(t)
				vocab := m.Bert.Embeddings.Vocab
				var rows []*nn.Param
				if train {
					rows = []*nn.Param{m.Bert.Embeddings.Tokens.Weights[vocab.MustID("the")], m.Bert.Embeddings.Positions.Weights[1]}
				}
				frozenWithRows(m, rows...)
				worst := 0.0
				for _, tokens := range tt.sentences {
					positions := maskPositions(tokens)
					logits, err := finetune.MaskedLMLogits(m, tokens, positions, nil)
					require.NoError(t, err)
					predicted := m.Predict(tokens)
					for j, p := range positions {
						worst = max(worst, maxAbsDiff(t, column(logits, j), predicted[p]))
					}
				}
				t.Logf("max |diff| of MLM logits: %.3g", worst)
				assert.LessOrEqual(t, worst, forwardTolerance)
			})
		}
	}
}

func TestFusedSeq2SeqMatchesCybertron(t *testing.T) {
	var cases []modelCase
	for _, v := range bartVariants {
		cases = append(cases, modelCase{v.name, func(testing.TB) *bart.ModelForConditionalGeneration { return tinyBART[float32](v, 3) }, bartPairs})
	}
	cases = append(cases, testdataBARTCase())
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.model(t)
			frozenWithRows(m, m.Bart.Embeddings.Weights[2], m.Bart.Embeddings.Weights[tt.pairs[0].Source[1]])
			worst := 0.0
			for _, pair := range tt.pairs {
				decIn := append([]int{m.Bart.Config.DecoderStartTokenID}, pair.Target[:len(pair.Target)-1]...)
				enc := m.Bart.Encoder.Encode(pair.Source)
				dec, _ := m.Bart.Decoder.Decode(enc, decIn, nil, 1)
				want := m.Projection.Forward(dec...)
				logits, err := finetune.ConditionalGenerationLogits(m, pair.Source, decIn, nil)
				require.NoError(t, err)
				for j := range want {
					worst = max(worst, maxAbsDiff(t, column(logits, j), want[j]))
				}
			}
			t.Logf("max |diff| of logits: %.3g", worst)
			assert.LessOrEqual(t, worst, forwardTolerance)
		})
	}
}

// lossAndGrads returns the loss and copies of the gradients of params.
func lossAndGrads(t *testing.T, loss func() mat.Tensor, params []*nn.Param) (float64, [][]float64) {
	t.Helper()
	for _, p := range params {
		p.ZeroGrad()
	}
	l := loss()
	backward(t, l)
	var gs [][]float64
	for _, p := range params {
		require.True(t, p.HasGrad())
		gs = append(gs, append([]float64(nil), p.Grad().Data().F64()...))
	}
	return l.Value().Item().F64(), gs
}

// The fused path and the graph path give the same loss (float64: to 1e-10)
// and row gradients, through the model's own head and a trainable head.
// Gradients agree to ~1e-7 relative only: spago's GELU derivative uses
// constants rounded to 6 digits (gradfn geluDeriv), the fused path the exact
// derivative of the same GELU (checked by finite differences below).
const gradAgreement = 1e-6

func TestFusedMatchesGraphPath(t *testing.T) {
	t.Run("bert", func(t *testing.T) {
		m := tinyBERT[float64](21)
		vocab := m.Bert.Embeddings.Vocab
		e := m.Bert.Embeddings
		rows := []*nn.Param{e.Tokens.Weights[vocab.MustID("the")], e.Tokens.Weights[vocab.MustID("[MASK]")], e.Positions.Weights[2], e.TokenTypes.Weights[1]}
		frozenWithRows(m, rows...)
		batch := []finetune.MaskedExample{
			{Tokens: bertSentences[0], Targets: map[int]int{3: vocab.MustID("sat"), 1: vocab.MustID("the")}},
			{Tokens: bertSentences[1], Targets: map[int]int{2: vocab.MustID("big"), 8: vocab.MustID("park")}},
			{Tokens: bertSentences[2], Targets: map[int]int{1: vocab.MustID("cat")}},
		}
		loss := func(fwd finetune.Forward) func() mat.Tensor {
			return func() mat.Tensor {
				l, err := finetune.MaskedLMLoss(m, batch, nil, fwd)
				require.NoError(t, err)
				return l
			}
		}
		fl, fg := lossAndGrads(t, loss(finetune.ForwardAuto), rows)
		gl, gg := lossAndGrads(t, loss(finetune.ForwardGraph), rows)
		assert.InDelta(t, gl, fl, 1e-10)
		for i := range fg {
			assertClose(t, gg[i], fg[i], gradAgreement, "row %d", i)
		}
	})
	for _, v := range bartVariants {
		t.Run(v.name, func(t *testing.T) {
			m := tinyBART[float64](v, 22)
			rows := []*nn.Param{m.Bart.Embeddings.Weights[2], m.Bart.Embeddings.Weights[7], m.Bart.Embeddings.Weights[10]}
			frozenWithRows(m, rows...)
			m.Projection.W.SetRequiresGrad(true) // the head trains too (outside the fused op)
			params := append(rows, m.Projection.W)
			loss := func(fwd finetune.Forward) func() mat.Tensor {
				return func() mat.Tensor {
					l, err := finetune.ConditionalGenerationLoss(m, bartPairs, nil, fwd)
					require.NoError(t, err)
					return l
				}
			}
			fl, fg := lossAndGrads(t, loss(finetune.ForwardAuto), params)
			gl, gg := lossAndGrads(t, loss(finetune.ForwardGraph), params)
			assert.InDelta(t, gl, fl, 1e-10)
			for i := range fg {
				assertClose(t, gg[i], fg[i], gradAgreement, "param %d", i)
			}
		})
	}
}

// Finite differences through the whole fused network (float64).
func TestFusedGradientsMatchFiniteDifferences(t *testing.T) {
	t.Run("bert", func(t *testing.T) {
		m := tinyBERT[float64](31)
		vocab := m.Bert.Embeddings.Vocab
		e := m.Bert.Embeddings
		probes := []probe{
			{"token row the (3 uses)", e.Tokens.Weights[vocab.MustID("the")], 8},
			{"token row cat", e.Tokens.Weights[vocab.MustID("cat")], 3},
			{"token row [MASK]", e.Tokens.Weights[vocab.MustID("[MASK]")], 0},
			{"position row 2", e.Positions.Weights[2], 5},
			{"token type row 1", e.TokenTypes.Weights[1], 11},
		}
		var rows []*nn.Param
		for _, p := range probes {
			rows = append(rows, p.param)
		}
		frozenWithRows(m, rows...)
		batch := []finetune.MaskedExample{
			{Tokens: bertSentences[0], Targets: map[int]int{3: vocab.MustID("sat")}},
			{Tokens: bertSentences[1], Targets: map[int]int{2: vocab.MustID("big"), 8: vocab.MustID("park"), 4: vocab.MustID("ran")}},
		}
		checkGradients(t, func() mat.Tensor {
			loss, err := finetune.MaskedLMLoss(m, batch, nil)
			require.NoError(t, err)
			return loss
		}, probes)
	})
	for _, v := range bartVariants {
		t.Run(v.name, func(t *testing.T) {
			m := tinyBART[float64](v, 32)
			probes := []probe{
				{"shared row 7 (source)", m.Bart.Embeddings.Weights[7], 2},
				{"shared row 10 (target)", m.Bart.Embeddings.Weights[10], 6},
				{"shared row 2 (decoder start, source and target)", m.Bart.Embeddings.Weights[2], 0},
				{"shared row 12", m.Bart.Embeddings.Weights[12], 9},
			}
			var rows []*nn.Param
			for _, p := range probes {
				rows = append(rows, p.param)
			}
			frozenWithRows(m, rows...)
			checkGradients(t, func() mat.Tensor {
				loss, err := finetune.ConditionalGenerationLoss(m, bartPairs[:2], nil)
				require.NoError(t, err)
				return loss
			}, probes)
		})
	}
}

// Same inputs, same bits: the fused step is deterministic, also with
// several goroutines.
func TestFusedDeterministic(t *testing.T) {
	m := loaded(t, testmodels.BERT(t))
	vocab := m.Bert.Embeddings.Vocab
	the := m.Bert.Embeddings.Tokens.Weights[vocab.MustID("the")]
	frozenWithRows(m, the)
	batch := []finetune.MaskedExample{
		{Tokens: []string{"[CLS]", "the", "[MASK]", "sat", "on", "the", "table", ".", "[SEP]"}, Targets: map[int]int{2: vocab.MustID("cat"), 1: vocab.MustID("the")}},
		{Tokens: []string{"[CLS]", "[MASK]", "[SEP]", "the", "[SEP]"}, Targets: map[int]int{1: vocab.MustID("the")}},
	}
	loss := func() mat.Tensor {
		l, err := finetune.MaskedLMLoss(m, batch, nil)
		require.NoError(t, err)
		return l
	}
	l1, g1 := lossAndGrads(t, loss, []*nn.Param{the})
	for range 3 {
		l2, g2 := lossAndGrads(t, loss, []*nn.Param{the})
		require.Equal(t, l1, l2)
		require.Equal(t, g1, g2)
	}
}

// assertClose checks |a-b| <= tol·max(1, max|a|) element-wise.
func assertClose(t *testing.T, want, got []float64, tol float64, msg string, args ...any) {
	t.Helper()
	scale := 1.0
	for _, v := range want {
		scale = max(scale, math.Abs(v))
	}
	assert.InDeltaSlice(t, want, got, tol*scale, append([]any{msg}, args...)...)
}
