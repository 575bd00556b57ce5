package finetune_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/registry"
	"github.com/gopeft/gopeft/trainabletokens"
)

// The task heads cybertron ships (BERT sequence classification, token
// classification, question answering; BART sequence classification) on the
// pretrained tiny encoders, with seeded random classifiers.

func labels(n int) map[string]string {
	out := map[string]string{}
	for i := 0; i < n; i++ {
		out[fmt.Sprint(i)] = fmt.Sprintf("L%d", i)
	}
	return out
}

func bertEncoder(t testing.TB, nLabels int) *bert.Model {
	b := loaded(t, testmodels.BERT(t)).Bert
	b.Config.ID2Label = labels(nLabels)
	return b
}

func seqClassifier(t testing.TB, seed uint64) *bert.ModelForSequenceClassification {
	m := bert.NewModelForSequenceClassification[float32](bertEncoder(t, 4))
	randomize(m.Classifier, seed)
	return m
}

func tokenClassifier(t testing.TB, seed uint64) *bert.ModelForTokenClassification {
	m := bert.NewModelForTokenClassification[float32](bertEncoder(t, 5))
	randomize(m.Classifier, seed)
	return m
}

func qaModel(t testing.TB, seed uint64) *bert.ModelForQuestionAnswering {
	m := bert.NewModelForQuestionAnswering[float32](bertEncoder(t, 2))
	randomize(m.Classifier, seed)
	return m
}

func bartClassifier(t testing.TB, seed uint64) *bart.ModelForSequenceClassification {
	b := loaded(t, testmodels.BART(t)).Bart
	m := bart.NewModelForSequenceClassification[float32](b)
	randomize(m.Classifier, seed)
	return m
}

var headSentences = [][]string{
	{"[CLS]", "the", "cat", "sat", "on", "the", "table", ".", "[SEP]"},
	{"[CLS]", "what", "is", "red", "?", "[SEP]", "the", "fox", "is", "red", ".", "[SEP]"},
	{"[CLS]", "[SEP]"},
}

var bartSources = [][]int{{0, 100, 200, 300, 2}, {0, 7, 2}, {0, 5, 6, 7, 8, 9, 10, 2}}

// variants runs f with the encoder trainable (graph path) and frozen with
// two trainable token rows (fused path).
func variants(t *testing.T, f func(t *testing.T, fused bool)) {
	for _, fused := range []bool{false, true} {
		name := "graph"
		if fused {
			name = "fused"
		}
		t.Run(name, func(t *testing.T) { f(t, fused) })
	}
}

func freezeForFused(m nn.Model, table []*nn.Param, ids ...int) {
	var rows []*nn.Param
	for _, id := range ids {
		rows = append(rows, table[id])
	}
	frozenWithRows(m, rows...)
}

func TestHeadsForwardMatchCybertron(t *testing.T) {
	t.Run("bert sequence classification", func(t *testing.T) {
		variants(t, func(t *testing.T, fused bool) {
			m := seqClassifier(t, 3)
			if fused {
				freezeForFused(m, m.Bert.Embeddings.Tokens.Weights, 2, 3)
			}
			worst := 0.0
			for _, s := range headSentences {
				got, err := finetune.SequenceClassificationLogits(m, s)
				require.NoError(t, err)
				worst = max(worst, maxAbsDiff(t, got, m.Classify(s)))
			}
			t.Logf("max |diff| vs cybertron Classify: %.3g", worst)
			assert.LessOrEqual(t, worst, forwardTolerance)
		})
	})
	t.Run("bert token classification", func(t *testing.T) {
		variants(t, func(t *testing.T, fused bool) {
			m := tokenClassifier(t, 4)
			if fused {
				freezeForFused(m, m.Bert.Embeddings.Tokens.Weights, 2, 3)
			}
			worst := 0.0
			for _, s := range headSentences {
				got, err := finetune.TokenClassificationLogits(m, s)
				require.NoError(t, err)
				want := m.Classify(s)
				require.Equal(t, []int{5, len(s)}, got.Value().Shape())
				for i := range want {
					worst = max(worst, maxAbsDiff(t, column(got, i), want[i]))
				}
			}
			t.Logf("max |diff| vs cybertron Classify: %.3g", worst)
			assert.LessOrEqual(t, worst, forwardTolerance)
		})
	})
	t.Run("bert question answering", func(t *testing.T) {
		variants(t, func(t *testing.T, fused bool) {
			m := qaModel(t, 5)
			if fused {
				freezeForFused(m, m.Bert.Embeddings.Tokens.Weights, 2, 3)
			}
			worst := 0.0
			for _, s := range headSentences {
				got, err := finetune.QuestionAnsweringLogits(m, s)
				require.NoError(t, err)
				starts, ends := m.Answer(s)
				v := got.Value().(mat.Matrix)
				for i := range starts {
					worst = max(worst, abs(v.ScalarAt(0, i).F64()-starts[i].Value().Item().F64()))
					worst = max(worst, abs(v.ScalarAt(1, i).F64()-ends[i].Value().Item().F64()))
				}
			}
			t.Logf("max |diff| vs cybertron Answer: %.3g", worst)
			assert.LessOrEqual(t, worst, forwardTolerance)
		})
	})
	t.Run("bart sequence classification", func(t *testing.T) {
		variants(t, func(t *testing.T, fused bool) {
			m := bartClassifier(t, 6)
			if fused {
				freezeForFused(m, m.Bart.Embeddings.Weights, 0, 100)
			}
			worst := 0.0
			for _, ids := range bartSources {
				got, err := finetune.BARTSequenceClassificationLogits(m, ids)
				require.NoError(t, err)
				worst = max(worst, maxAbsDiff(t, got, m.Forward(ids)))
			}
			t.Logf("max |diff| vs cybertron Forward: %.3g", worst)
			assert.LessOrEqual(t, worst, forwardTolerance)
		})
	})
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// headCase is one head's loss over a small batch, with its model.
type headCase struct {
	name  string
	model nn.Model
	table []*nn.Param // the input token table's rows
	ids   []int       // rows made trainable
	loss  func() (mat.Tensor, error)
}

func headCases(t *testing.T) []headCase {
	sc := seqClassifier(t, 7)
	tc := tokenClassifier(t, 8)
	qa := qaModel(t, 9)
	bc := bartClassifier(t, 10)
	ig := finetune.IgnoreLabel
	return []headCase{
		{"bert sequence classification", sc, sc.Bert.Embeddings.Tokens.Weights, []int{2, 3}, func() (mat.Tensor, error) {
			return finetune.SequenceClassificationLoss(sc, []finetune.ClassificationExample{{Tokens: headSentences[0], Label: 1}, {Tokens: headSentences[1], Label: 3}})
		}},
		{"bert token classification", tc, tc.Bert.Embeddings.Tokens.Weights, []int{2, 3}, func() (mat.Tensor, error) {
			return finetune.TokenClassificationLoss(tc, []finetune.TokenClassificationExample{
				{Tokens: headSentences[0], Labels: []int{ig, 0, 1, 2, 3, 4, 0, 0, ig}},
				{Tokens: headSentences[2], Labels: []int{4, ig}},
			})
		}},
		{"bert question answering", qa, qa.Bert.Embeddings.Tokens.Weights, []int{2, 3}, func() (mat.Tensor, error) {
			return finetune.QuestionAnsweringLoss(qa, []finetune.QuestionAnsweringExample{
				{Tokens: headSentences[1], Start: 6, End: 7}, {Tokens: headSentences[0], Start: 2, End: 2},
			})
		}},
		{"bart sequence classification", bc, bc.Bart.Embeddings.Weights, []int{0, 2}, func() (mat.Tensor, error) {
			return finetune.BARTSequenceClassificationLoss(bc, []finetune.BARTClassificationExample{{Source: bartSources[0], Label: 2}, {Source: bartSources[2], Label: 0}})
		}},
	}
}

// The fused path and the graph path give the same loss and the same
// gradients, for the token rows and for the trainable head (PEFT's
// modules_to_save).
func TestHeadsFusedGradientsMatchGraph(t *testing.T) {
	for _, hc := range headCases(t) {
		t.Run(hc.name, func(t *testing.T) {
			head, err := finetune.HeadParams(hc.model)
			require.NoError(t, err)
			require.NotEmpty(t, head)
			params := append([]*nn.Param(nil), head...)
			for _, id := range hc.ids {
				params = append(params, hc.table[id])
			}
			run := func() (float64, [][]float64) {
				return lossAndGrads(t, func() mat.Tensor {
					l, err := hc.loss()
					require.NoError(t, err)
					return l
				}, params)
			}
			finetune.SetRequiresGrad(hc.model, false)
			for _, p := range params {
				p.SetRequiresGrad(true)
			}
			fl, fg := run()
			// One trainable encoder weight: the graph path.
			var enc *nn.Param
			switch m := hc.model.(type) {
			case *bart.ModelForSequenceClassification:
				enc = m.Bart.Encoder.Layers[0].SelfAttention.(*bart.PostNormSelfAttentionBlock).Norm.W
			default:
				enc = bertOf(hc.model).Encoder.Layers[0].FF.Norm.W
			}
			enc.SetRequiresGrad(true)
			gl, gg := run()
			enc.SetRequiresGrad(false)
			enc.ZeroGrad()
			t.Logf("loss fused %.6f graph %.6f", fl, gl)
			assert.InDelta(t, gl, fl, 1e-5)
			for i := range fg {
				require.Len(t, fg[i], len(gg[i]))
				for j := range fg[i] {
					require.InDelta(t, gg[i][j], fg[i][j], 2e-5, "param %d element %d", i, j)
				}
			}
		})
	}
}

func bertOf(m nn.Model) *bert.Model {
	switch x := m.(type) {
	case *bert.ModelForSequenceClassification:
		return x.Bert
	case *bert.ModelForTokenClassification:
		return x.Bert
	case *bert.ModelForQuestionAnswering:
		return x.Bert
	}
	panic(fmt.Sprintf("%T", m))
}

func TestHeadsRejectBadInput(t *testing.T) {
	tc := tokenClassifier(t, 1)
	qa := qaModel(t, 1)
	bc := bartClassifier(t, 1)
	for _, tt := range []struct {
		name string
		err  func() error
		want string
	}{
		{"token labels length", func() error {
			_, err := finetune.TokenClassificationLoss(tc, []finetune.TokenClassificationExample{{Tokens: headSentences[2], Labels: []int{1}}})
			return err
		}, "1 labels for 2 tokens"},
		{"token label range", func() error {
			_, err := finetune.TokenClassificationLoss(tc, []finetune.TokenClassificationExample{{Tokens: headSentences[2], Labels: []int{5, 0}}})
			return err
		}, "label 5 of token 0 out of range [0, 5)"},
		{"token all ignored", func() error {
			_, err := finetune.TokenClassificationLoss(tc, []finetune.TokenClassificationExample{{Tokens: headSentences[2], Labels: []int{finetune.IgnoreLabel, finetune.IgnoreLabel}}})
			return err
		}, "no labelled token"},
		{"qa span outside", func() error {
			_, err := finetune.QuestionAnsweringLoss(qa, []finetune.QuestionAnsweringExample{{Tokens: headSentences[2], Start: 0, End: 2}})
			return err
		}, "answer span [0, 2] outside the 2 tokens"},
		{"qa end before start", func() error {
			_, err := finetune.QuestionAnsweringLoss(qa, []finetune.QuestionAnsweringExample{{Tokens: headSentences[0], Start: 3, End: 1}})
			return err
		}, "ends (1) before it starts (3)"},
		{"qa empty batch", func() error {
			_, err := finetune.QuestionAnsweringLoss(qa, nil)
			return err
		}, "empty batch"},
		{"bart no final eos", func() error {
			_, err := finetune.BARTSequenceClassificationLoss(bc, []finetune.BARTClassificationExample{{Source: []int{0, 5, 6}, Label: 0}})
			return err
		}, "source ends with id 6"},
		{"bart label", func() error {
			_, err := finetune.BARTSequenceClassificationLoss(bc, []finetune.BARTClassificationExample{{Source: []int{0, 5, 2}, Label: 3}})
			return err
		}, "label 3 out of range [0, 3)"},
		{"bart id", func() error {
			_, err := finetune.BARTSequenceClassificationLogits(bc, []int{0, 1100, 2})
			return err
		}, "1100"},
		{"nil model", func() error {
			_, err := finetune.TokenClassificationLogits(nil, headSentences[0])
			return err
		}, "nil"},
		{"unknown Forward", func() error {
			_, err := finetune.QuestionAnsweringLogits(qa, headSentences[0], finetune.Forward(7))
			return err
		}, "unknown Forward 7"},
		{"two Forwards", func() error {
			_, err := finetune.BARTSequenceClassificationTask(bc, []finetune.BARTClassificationExample{{Source: []int{0, 5, 2}}}, finetune.ForwardAuto, finetune.ForwardGraph)
			return err
		}, "at most one Forward"},
		{"head of a masked LM", func() error {
			_, err := finetune.HeadParams(testmodels.BERT(t))
			return err
		}, "has no task head"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// ---- learning tests ----

// kindOf maps each new word of the corpus to its class and its stand-in
// token: the new words are not in the BERT vocabulary, so each is played
// by an untrained reserved token, whose row must learn.
var newWordClass = map[string]int{"zorblax": 0, "quindle": 1, "flumph": 2, "vintral": 3}

type corpusSentence struct {
	tokens []string
	word   int // class of its new word, -1 for none
	pos    int // position of the (first) new word
}

func corpusSentences(t *testing.T, file string) []corpusSentence {
	lines, err := testmodels.ReadLines(file)
	require.NoError(t, err)
	var out []corpusSentence
	for _, line := range lines {
		s := corpusSentence{tokens: []string{"[CLS]"}, word: -1}
		for _, w := range strings.Fields(line) {
			if k, ok := newWordClass[w]; ok {
				if s.word < 0 {
					s.word, s.pos = k, len(s.tokens)
				}
				w = fmt.Sprintf("[unused%d]", k)
			}
			s.tokens = append(s.tokens, w)
		}
		s.tokens = append(s.tokens, "[SEP]")
		if s.word >= 0 {
			out = append(out, s)
		}
	}
	return out
}

// trainHead trains the reserved rows (and the head when trainHead) on task
// and returns the loss history.
func trainHead(t *testing.T, model nn.Model, table []*nn.Param, ids []int, withHead bool, task *finetune.Task, epochs int) []float64 {
	t.Helper()
	finetune.SetRequiresGrad(model, false)
	var rows []*nn.Param
	for _, id := range ids {
		table[id].SetRequiresGrad(true)
		rows = append(rows, table[id])
	}
	cfg := finetune.Config{TokenParams: rows, TokenLR: 0.05, LR: 0.03, Epochs: epochs, BatchSize: 32, Seed: 1, Quiet: true}
	var head []*nn.Param
	if withHead {
		var err error
		head, err = finetune.HeadParams(model)
		require.NoError(t, err)
		for _, p := range head {
			p.SetRequiresGrad(true)
		}
		cfg.Params = head
	}
	all := finetune.AllParams(model)
	before := snapshot(all)
	tr, err := finetune.NewTrainer(cfg)
	require.NoError(t, err)
	hist, err := tr.Train(task)
	require.NoError(t, err)
	// Only the rows (and the head) changed, and only they have optimizer state.
	assert.ElementsMatch(t, append(append([]*nn.Param(nil), rows...), head...), changed(before))
	for _, p := range all {
		trained := false
		for _, q := range append(append([]*nn.Param(nil), rows...), head...) {
			trained = trained || p == q
		}
		assert.Equal(t, trained, p.State != nil, "optimizer state")
	}
	return hist
}

func reservedIDs(t *testing.T, b *bert.Model) []int {
	var ids []int
	for k := 0; k < 4; k++ {
		ids = append(ids, b.Embeddings.Vocab.MustID(fmt.Sprintf("[unused%d]", k)))
	}
	return ids
}

func argmaxCol(m mat.Tensor, j int) int {
	v := m.Value().(mat.Matrix)
	best := 0
	for i := 1; i < v.Shape()[0]; i++ {
		if v.ScalarAt(i, j).F64() > v.ScalarAt(best, j).F64() {
			best = i
		}
	}
	return best
}

func TestHeadsLearnNewTokenRows(t *testing.T) {
	// A subset keeps the test quick under -race (the fused ops run their
	// loops in goroutines, which the race detector slows down most).
	train := corpusSentences(t, "mlm_train.txt")
	eval := corpusSentences(t, "mlm_eval.txt")
	require.Greater(t, len(train), 100)
	require.Greater(t, len(eval), 20)
	train = train[:64]

	// Sequence classification only with the head trained: the tiny BERT
	// was pretrained on masked LM only, so its [CLS] state barely depends
	// on one token, and through a frozen random pooler and classifier the
	// rows alone cannot steer it (20 epochs: loss 1.43 -> 1.25, accuracy
	// stays at chance). PEFT trains the head too (modules_to_save).
	t.Run("sequence classification/rows and head", func(t *testing.T) {
		withHead := true
		m := seqClassifier(t, 11)
		var ex []finetune.ClassificationExample
		for _, s := range train {
			ex = append(ex, finetune.ClassificationExample{Tokens: s.tokens, Label: s.word})
		}
		acc := func() float64 {
			ok := 0
			for _, s := range eval {
				l, err := finetune.SequenceClassificationLogits(m, s.tokens)
				require.NoError(t, err)
				ok += btoi(argmaxCol(l, 0) == s.word)
			}
			return float64(ok) / float64(len(eval))
		}
		task, err := finetune.SequenceClassificationTask(m, ex)
		require.NoError(t, err)
		learns(t, acc, func() []float64 {
			return trainHead(t, m, m.Bert.Embeddings.Tokens.Weights, reservedIDs(t, m.Bert), withHead, task, 12)
		})
	})
	for _, withHead := range []bool{false, true} {
		suffix := "/rows"
		if withHead {
			suffix = "/rows and head"
		}
		t.Run("token classification"+suffix, func(t *testing.T) {
			m := tokenClassifier(t, 12)
			var ex []finetune.TokenClassificationExample
			for _, s := range train {
				lab := make([]int, len(s.tokens))
				for i := range lab {
					lab[i] = 4 // ordinary word
				}
				lab[0], lab[len(lab)-1] = finetune.IgnoreLabel, finetune.IgnoreLabel
				for i, tok := range s.tokens {
					if strings.HasPrefix(tok, "[unused") {
						lab[i] = s.word
					}
				}
				ex = append(ex, finetune.TokenClassificationExample{Tokens: s.tokens, Labels: lab})
			}
			acc := func() float64 { // at the new words only
				ok := 0
				for _, s := range eval {
					l, err := finetune.TokenClassificationLogits(m, s.tokens)
					require.NoError(t, err)
					ok += btoi(argmaxCol(l, s.pos) == s.word)
				}
				return float64(ok) / float64(len(eval))
			}
			task, err := finetune.TokenClassificationTask(m, ex)
			require.NoError(t, err)
			learns(t, acc, func() []float64 {
				return trainHead(t, m, m.Bert.Embeddings.Tokens.Weights, reservedIDs(t, m.Bert), withHead, task, 6)
			})
		})
		t.Run("question answering"+suffix, func(t *testing.T) {
			// "Where is the new word?": the span is the new word's token.
			m := qaModel(t, 13)
			var ex []finetune.QuestionAnsweringExample
			for _, s := range train {
				ex = append(ex, finetune.QuestionAnsweringExample{Tokens: s.tokens, Start: s.pos, End: s.pos})
			}
			acc := func() float64 {
				ok := 0
				for _, s := range eval {
					l, err := finetune.QuestionAnsweringLogits(m, s.tokens)
					require.NoError(t, err)
					ok += btoi(argmaxRow(l, 0) == s.pos && argmaxRow(l, 1) == s.pos)
				}
				return float64(ok) / float64(len(eval))
			}
			task, err := finetune.QuestionAnsweringTask(m, ex)
			require.NoError(t, err)
			learns(t, acc, func() []float64 {
				return trainHead(t, m, m.Bert.Embeddings.Tokens.Weights, reservedIDs(t, m.Bert), withHead, task, 6)
			})
		})
	}
	t.Run("bart sequence classification/rows and head", func(t *testing.T) {
		// Four byte symbols that never occur in text (ids 4..7: bytes 0..3)
		// stand for the new words, in random ordinary contexts.
		m := bartClassifier(t, 14)
		gen := func(seed uint64, n int) []finetune.BARTClassificationExample {
			r := rand.New(rand.NewPCG(seed, 2))
			var out []finetune.BARTClassificationExample
			for i := 0; i < n; i++ {
				k := r.IntN(3) // three labels
				src := []int{0}
				for j := 0; j < 1+r.IntN(4); j++ {
					src = append(src, 300+r.IntN(500))
				}
				src = append(src, 4+k)
				for j := 0; j < r.IntN(4); j++ {
					src = append(src, 300+r.IntN(500))
				}
				out = append(out, finetune.BARTClassificationExample{Source: append(src, 2), Label: k})
			}
			return out
		}
		tr, ev := gen(1, 48), gen(2, 48)
		acc := func() float64 {
			ok := 0
			for _, e := range ev {
				l, err := finetune.BARTSequenceClassificationLogits(m, e.Source)
				require.NoError(t, err)
				ok += btoi(argmaxCol(l, 0) == e.Label)
			}
			return float64(ok) / float64(len(ev))
		}
		task, err := finetune.BARTSequenceClassificationTask(m, tr)
		require.NoError(t, err)
		learns(t, acc, func() []float64 { return trainHead(t, m, m.Bart.Embeddings.Weights, []int{4, 5, 6}, true, task, 8) })
	})
}

func argmaxRow(m mat.Tensor, r int) int {
	v := m.Value().(mat.Matrix)
	best := 0
	for j := 1; j < v.Shape()[1]; j++ {
		if v.ScalarAt(r, j).F64() > v.ScalarAt(r, best).F64() {
			best = j
		}
	}
	return best
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// learns checks that training lowers the loss and raises held-out accuracy.
func learns(t *testing.T, acc func() float64, train func() []float64) {
	t.Helper()
	before := acc()
	hist := train()
	after := acc()
	t.Logf("loss %.3f -> %.3f, held-out accuracy %.2f -> %.2f", hist[0], hist[len(hist)-1], before, after)
	assert.Less(t, hist[len(hist)-1], 0.7*hist[0], "loss did not fall")
	assert.Greater(t, after, before+0.2, "held-out accuracy did not rise")
	assert.GreaterOrEqual(t, after, 0.7, "held-out accuracy")
}

// Trainable tokens on the task-head models: after training rows and head,
// merging the rows into a plain model gives the adapter's logits bit for
// bit, and the saved adapter (rows only: trainable tokens has no
// modules_to_save, so the head travels with the model) loaded on a model
// holding the trained head gives them too.
func TestHeadsAdapterSaveLoadMerge(t *testing.T) {
	type headModel struct {
		name   string
		fresh  func() nn.Model
		ids    []int
		logits func(t *testing.T, m nn.Model) []float64 // cybertron's inference
		task   func(t *testing.T, m nn.Model) *finetune.Task
	}
	ig := finetune.IgnoreLabel
	cases := []headModel{
		{"bert token classification", func() nn.Model { return tokenClassifier(t, 21) },
			[]int{2, 3},
			func(t *testing.T, m nn.Model) []float64 {
				return flat(m.(*bert.ModelForTokenClassification).Classify(headSentences[1]))
			},
			func(t *testing.T, m nn.Model) *finetune.Task {
				task, err := finetune.TokenClassificationTask(m.(*bert.ModelForTokenClassification), []finetune.TokenClassificationExample{
					{Tokens: headSentences[0], Labels: []int{ig, 0, 1, 2, 3, 4, 0, 0, ig}}, {Tokens: headSentences[1], Labels: []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
				})
				require.NoError(t, err)
				return task
			}},
		{"bert question answering", func() nn.Model { return qaModel(t, 22) },
			[]int{2, 3},
			func(t *testing.T, m nn.Model) []float64 {
				starts, ends := m.(*bert.ModelForQuestionAnswering).Answer(headSentences[1])
				return append(flat(starts), flat(ends)...)
			},
			func(t *testing.T, m nn.Model) *finetune.Task {
				task, err := finetune.QuestionAnsweringTask(m.(*bert.ModelForQuestionAnswering), []finetune.QuestionAnsweringExample{{Tokens: headSentences[1], Start: 6, End: 7}})
				require.NoError(t, err)
				return task
			}},
		{"bert sequence classification", func() nn.Model { return seqClassifier(t, 23) },
			[]int{2, 3},
			func(t *testing.T, m nn.Model) []float64 {
				return flat([]mat.Tensor{m.(*bert.ModelForSequenceClassification).Classify(headSentences[0])})
			},
			func(t *testing.T, m nn.Model) *finetune.Task {
				task, err := finetune.SequenceClassificationTask(m.(*bert.ModelForSequenceClassification), []finetune.ClassificationExample{{Tokens: headSentences[0], Label: 2}})
				require.NoError(t, err)
				return task
			}},
		{"bart sequence classification", func() nn.Model { return bartClassifier(t, 24) },
			[]int{0, 2},
			func(t *testing.T, m nn.Model) []float64 {
				return flat([]mat.Tensor{m.(*bart.ModelForSequenceClassification).Forward(bartSources[0])})
			},
			func(t *testing.T, m nn.Model) *finetune.Task {
				task, err := finetune.BARTSequenceClassificationTask(m.(*bart.ModelForSequenceClassification), []finetune.BARTClassificationExample{{Source: bartSources[0], Label: 1}})
				require.NoError(t, err)
				return task
			}},
	}
	for _, hc := range cases {
		t.Run(hc.name, func(t *testing.T) {
			m := hc.fresh()
			tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: hc.ids}, "")
			require.NoError(t, err)
			head, err := finetune.HeadParams(m)
			require.NoError(t, err)
			for _, p := range head {
				p.SetRequiresGrad(true)
			}
			tr, err := finetune.NewTrainer(finetune.Config{TokenParams: tm.TrainableParams(), Params: head, TokenLR: 0.1, LR: 0.05, Epochs: 3, Quiet: true})
			require.NoError(t, err)
			_, err = tr.Train(hc.task(t, m))
			require.NoError(t, err)
			want := hc.logits(t, m)
			base := hc.logits(t, hc.fresh())
			assert.NotEqual(t, base, want, "training changed the logits")

			dir := filepath.Join(t.TempDir(), "adapter")
			require.NoError(t, tm.Save(dir, "", trainabletokens.SaveOptions{}))
			// A fresh model with the trained head's values, plus the adapter.
			fresh := hc.fresh()
			freshHead, err := finetune.HeadParams(fresh)
			require.NoError(t, err)
			for i, p := range freshHead {
				p.ReplaceValue(head[i].Value().(mat.Matrix).Clone())
			}
			tm2, err := trainabletokens.Load(fresh, dir, "")
			require.NoError(t, err)
			assert.Equal(t, want, hc.logits(t, fresh), "loaded adapter")
			plain, err := tm2.MergeAndUnload(true)
			require.NoError(t, err)
			assert.Equal(t, want, hc.logits(t, plain), "merged")

			// With the head in the file (PEFT's modules_to_save keys), a
			// fresh model with its untrained head gets everything back.
			withHead := filepath.Join(t.TempDir(), "adapter-head")
			require.NoError(t, tm.Save(withHead, "", trainabletokens.SaveOptions{ModulesToSave: true}))
			keys := safetensorsNames(t, filepath.Join(withHead, trainabletokens.WeightsFile))
			for _, h := range registry.TaskHeads(m) {
				assert.Contains(t, keys, "base_model.model."+h.HFPath+".weight")
				assert.Contains(t, keys, "base_model.model."+h.HFPath+".bias")
			}
			fresh3 := hc.fresh()
			assert.Equal(t, base, hc.logits(t, fresh3))
			tm3, err := trainabletokens.Load(fresh3, withHead, "")
			require.NoError(t, err)
			assert.Equal(t, want, hc.logits(t, fresh3), "loaded adapter with its head")
			plain3, err := tm3.MergeAndUnload(true)
			require.NoError(t, err)
			assert.Equal(t, want, hc.logits(t, plain3), "merged, head from the file")
		})
	}
}

// safetensorsNames lists the tensor names of a safetensors file.
func safetensorsNames(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Greater(t, len(data), 8)
	n := binary.LittleEndian.Uint64(data[:8])
	require.LessOrEqual(t, n, uint64(len(data)-8))
	var header map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data[8:8+n], &header))
	var names []string
	for k := range header {
		if k != "__metadata__" {
			names = append(names, k)
		}
	}
	return names
}

// flat concatenates the values of tensors.
func flat(ts []mat.Tensor) []float64 {
	var out []float64
	for _, x := range ts {
		out = append(out, x.Value().Data().F64()...)
	}
	return out
}

func TestModulesToSaveErrors(t *testing.T) {
	mlm := testmodels.BERT(t)
	tm, err := trainabletokens.New(mlm, trainabletokens.Config{TokenIndices: []int{5}}, "")
	require.NoError(t, err)
	err = tm.Save(filepath.Join(t.TempDir(), "a"), "", trainabletokens.SaveOptions{ModulesToSave: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has no task head")

	// A head of 5 labels does not load into a model with 4.
	tc := tokenClassifier(t, 1)
	tm, err = trainabletokens.New(tc, trainabletokens.Config{TokenIndices: []int{5}}, "")
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "b")
	require.NoError(t, tm.Save(dir, "", trainabletokens.SaveOptions{ModulesToSave: true}))
	b := bertEncoder(t, 4)
	other := bert.NewModelForTokenClassification[float32](b)
	_, err = trainabletokens.Load(other, dir, "")
	require.ErrorIs(t, err, trainabletokens.ErrInvalidAdapterFile)
	assert.Regexp(t, `head tensor "base_model\.model\.classifier\.(weight|bias)" has shape \[5( 32)?\]; the model's head has \[4( 32)?\]`, err.Error())

	// The same file on a masked LM: the head tensor names no module of it.
	_, err = trainabletokens.Load(testmodels.BERT(t), dir, "")
	require.ErrorIs(t, err, trainabletokens.ErrInvalidAdapterFile)
	assert.Contains(t, err.Error(), "base_model.model.classifier.")
}

// ForwardGraph on a frozen model gives the fused path's logits (to float
// rounding) for every head.
func TestHeadsForwardOption(t *testing.T) {
	tc := tokenClassifier(t, 31)
	bc := bartClassifier(t, 32)
	finetune.SetRequiresGrad(tc, false)
	finetune.SetRequiresGrad(bc, false)
	auto, err := finetune.TokenClassificationLogits(tc, headSentences[1])
	require.NoError(t, err)
	graph, err := finetune.TokenClassificationLogits(tc, headSentences[1], finetune.ForwardGraph)
	require.NoError(t, err)
	assert.LessOrEqual(t, maxAbsDiff(t, auto, graph), forwardTolerance)
	autoB, err := finetune.BARTSequenceClassificationLogits(bc, bartSources[2])
	require.NoError(t, err)
	graphB, err := finetune.BARTSequenceClassificationLogits(bc, bartSources[2], finetune.ForwardGraph)
	require.NoError(t, err)
	assert.LessOrEqual(t, maxAbsDiff(t, autoB, graphB), forwardTolerance)
	assert.NotEqual(t, autoB.Value().Data().F64(), graphB.Value().Data().F64(), "two different paths (bit-identical would mean one path ran twice)")
}
