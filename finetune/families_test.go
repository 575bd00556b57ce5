package finetune_test

import (
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// Every model family cybertron converts, through the training forward: the
// graph path (weights trainable) and the fused path (weights frozen, some
// embedding rows trainable) both give cybertron's inference outputs.

// seq2seqFamilyCase is a tiny converted encoder-decoder family with pairs
// over its vocabulary (Marian and Pegasus have no <s>; they end with </s>).
func seq2seqFamilyCases() []modelCase {
	return []modelCase{
		testdataBARTCase(),
		{"testdata marian-tiny", func(t testing.TB) *bart.ModelForConditionalGeneration {
			return loaded(t, testmodels.Marian(t))
		}, []finetune.Seq2SeqExample{
			// </s>=0, <unk>=1, <pad>=1097 (also decoder_start_token_id).
			{Source: []int{100, 200, 300, 0}, Target: []int{400, 500, 0}},
			{Source: []int{1, 7, 1096, 0}, Target: []int{8, 9, 10, 11, 0}},
		}},
		{"testdata pegasus-tiny", func(t testing.TB) *bart.ModelForConditionalGeneration {
			return loaded(t, testmodels.Pegasus(t))
		}, []finetune.Seq2SeqExample{
			// <pad>=0 (decoder_start_token_id), </s>=1, <unk>=2, <mask_1>=3, <mask_2>=4.
			{Source: []int{100, 200, 300, 1}, Target: []int{400, 500, 1}},
			{Source: []int{4, 7, 1099, 1}, Target: []int{8, 9, 10, 11, 1}},
		}},
	}
}

func TestSeq2SeqFamiliesForwardMatchesCybertron(t *testing.T) {
	for _, tt := range seq2seqFamilyCases() {
		for _, fused := range []bool{false, true} {
			name := tt.name + "/graph"
			if fused {
				name = tt.name + "/fused"
			}
			t.Run(name, func(t *testing.T) {
				m := tt.model(t)
				if fused {
					frozenWithRows(m, m.Bart.Embeddings.Weights[tt.pairs[0].Source[0]], m.Bart.Embeddings.Weights[tt.pairs[0].Target[0]])
				}
				var worstEnc, worstLogits float64
				for _, pair := range tt.pairs {
					decIn := append([]int{m.Bart.Config.DecoderStartTokenID}, pair.Target[:len(pair.Target)-1]...)
					wantEnc := m.Bart.Encoder.Encode(pair.Source)
					if !fused {
						gotEnc, err := finetune.EncodeBART(m.Bart, pair.Source)
						require.NoError(t, err)
						for i := range wantEnc {
							worstEnc = max(worstEnc, maxAbsDiff(t, gotEnc[i], wantEnc[i]))
						}
					}
					wantDec, _ := m.Bart.Decoder.Decode(wantEnc, decIn, nil, 1)
					want := m.Projection.Forward(wantDec...)
					logits, err := finetune.ConditionalGenerationLogits(m, pair.Source, decIn, nil)
					require.NoError(t, err)
					require.Equal(t, len(want), logits.Value().Shape()[1])
					for j := range want {
						worstLogits = max(worstLogits, maxAbsDiff(t, column(logits, j), want[j]))
					}
				}
				t.Logf("max |diff| vs cybertron: encoder %.3g, logits %.3g", worstEnc, worstLogits)
				assert.LessOrEqual(t, worstEnc, forwardTolerance)
				assert.LessOrEqual(t, worstLogits, forwardTolerance)
			})
		}
	}
}

var electraSentences = [][]string{
	{"[CLS]", "the", "[MASK]", "sat", "on", "the", "table", ".", "[SEP]"},
	{"[CLS]", "[MASK]", "[SEP]", "the", "[SEP]"},
	{"[CLS]", "a", "red", "[MASK]", "eats", "fruit", "[MASK]", "[SEP]"},
}

func TestELECTRAForwardMatchesCybertron(t *testing.T) {
	for _, fused := range []bool{false, true} {
		name := "graph"
		if fused {
			name = "fused"
		}
		t.Run(name, func(t *testing.T) {
			m := loaded(t, testmodels.ELECTRA(t))
			require.Equal(t, "electra", m.Bert.Config.ModelType)
			if fused {
				vocab := m.Bert.Embeddings.Vocab
				frozenWithRows(m, m.Bert.Embeddings.Tokens.Weights[vocab.MustID("the")])
			}
			worstHidden, worstLogits := maskedLMDiffs(t, m, electraSentences, !fused)
			t.Logf("max |diff| vs cybertron: hidden %.3g, MLM logits %.3g", worstHidden, worstLogits)
			assert.LessOrEqual(t, worstHidden, forwardTolerance)
			assert.LessOrEqual(t, worstLogits, forwardTolerance)
		})
	}
}

// The fused and graph paths agree on the loss and the row gradients for
// each family's flags (Marian: post-norm, swish, scaled embeddings, static
// positions; Pegasus: pre-norm, relu, final layer norms).
func TestSeq2SeqFamiliesFusedGradientsMatchGraph(t *testing.T) {
	for _, tt := range seq2seqFamilyCases()[1:] {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.model(t)
			rows := []*nn.Param{m.Bart.Embeddings.Weights[tt.pairs[0].Source[0]], m.Bart.Embeddings.Weights[tt.pairs[1].Target[0]]}
			loss := func() (float64, [][]float64) {
				return lossAndGrads(t, func() mat.Tensor {
					l, err := finetune.ConditionalGenerationLoss(m, tt.pairs, nil)
					require.NoError(t, err)
					return l
				}, rows)
			}
			// Graph path: a weight that requires a gradient makes the model
			// ineligible for the fused path.
			finetune.SetRequiresGrad(m, false)
			for _, r := range rows {
				r.SetRequiresGrad(true)
			}
			fl, fg := loss()
			w := ffnBlock(t, m.Bart.Encoder.Layers[0].FF).FFN[0].(*linear.Model).W
			w.SetRequiresGrad(true)
			gl, gg := loss()
			w.SetRequiresGrad(false)
			assert.InDelta(t, gl, fl, 1e-5)
			for i := range fg {
				for j := range fg[i] {
					assert.InDelta(t, gg[i][j], fg[i][j], 1e-5, "row %d element %d", i, j)
				}
			}
		})
	}
}

// ffnBlock returns the feed-forward block of a (gob-decoded or fresh) BART layer.
func ffnBlock(t *testing.T, x bart.ResidualNormFeedForward) *bart.FeedForwardBlock {
	switch v := x.(type) {
	case *bart.PostNormFeedForwardBlock:
		return v.FeedForwardBlock
	case *bart.PreNormFeedForwardBlock:
		return v.FeedForwardBlock
	case bart.PostNormFeedForwardBlock:
		return v.FeedForwardBlock
	case bart.PreNormFeedForwardBlock:
		return v.FeedForwardBlock
	}
	t.Fatalf("unknown feed-forward block %T", x)
	return nil
}
