package finetune_test

import (
	"errors"
	"math"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// mlmExamples masks one word per sentence; every word is in both the tiny
// in-process vocabulary and testdata/bert-tiny's.
func mlmExamples(t testing.TB, m *bert.ModelForMaskedLM) []finetune.MaskedExample {
	t.Helper()
	sentences := []struct {
		tokens []string
		mask   int
	}{
		{[]string{"[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"}, 2},
		{[]string{"[CLS]", "the", "dog", "sat", "in", "the", "park", "[SEP]"}, 2},
		{[]string{"[CLS]", "a", "cat", "and", "a", "dog", "[SEP]"}, 5},
		{[]string{"[CLS]", "the", "dog", "ran", "[SEP]"}, 3},
	}
	var out []finetune.MaskedExample
	for _, s := range sentences {
		tokens := s.tokens
		if _, ok := m.Bert.Embeddings.Vocab.ID("mat"); !ok { // testdata vocabulary
			tokens = replace(tokens, map[string]string{"mat": "table", "park": "box", "ran": "sat", "and": "the"})
		}
		ex, err := finetune.MaskTokens(m.Bert.Embeddings.Vocab, tokens, s.mask)
		require.NoError(t, err)
		out = append(out, ex)
	}
	return out
}

func replace(tokens []string, with map[string]string) []string {
	out := make([]string, len(tokens))
	for i, tok := range tokens {
		out[i] = tok
		if r, ok := with[tok]; ok {
			out[i] = r
		}
	}
	return out
}

// trainCase is a model, a task over it and the embedding rows to train.
type trainCase struct {
	name  string
	model nn.Model
	table *embedding.Model
	rows  []int
	task  func(t testing.TB) *finetune.Task
}

func trainCases(t *testing.T) []trainCase {
	bertCase := func(name string, m *bert.ModelForMaskedLM) trainCase {
		vocab := m.Bert.Embeddings.Vocab
		return trainCase{name: name, model: m, table: m.Bert.Embeddings.Tokens,
			rows: []int{vocab.MustID("the"), vocab.MustID("sat")},
			task: func(t testing.TB) *finetune.Task {
				task, err := finetune.MaskedLMTask(m, mlmExamples(t, m), nil)
				require.NoError(t, err)
				return task
			}}
	}
	bartCase := func(name string, m *bart.ModelForConditionalGeneration, pairs []finetune.Seq2SeqExample, rows []int) trainCase {
		return trainCase{name: name, model: m, table: m.Bart.Embeddings, rows: rows,
			task: func(t testing.TB) *finetune.Task {
				task, err := finetune.ConditionalGenerationTask(m, pairs, nil)
				require.NoError(t, err)
				return task
			}}
	}
	loadedPairs := []finetune.Seq2SeqExample{
		{Source: []int{0, 100, 200, 300, 2}, Target: []int{0, 400, 500, 2}},
		{Source: []int{0, 200, 7, 2}, Target: []int{0, 8, 9, 10, 2}},
	}
	return []trainCase{
		bertCase("bert fresh", tinyBERT[float32](21)),
		bertCase("bert gob round trip", loaded(t, roundTrip(t, tinyBERT[float32](21)))),
		bertCase("testdata bert-tiny", loaded(t, testmodels.BERT(t))),
		bartCase("bart fresh", tinyBART[float32](bartVariants[0], 22), bartPairs, []int{2, 9}),
		bartCase("mbart gob round trip", loaded(t, roundTrip(t, tinyBART[float32](bartVariants[1], 22))), bartPairs, []int{2, 9}),
		bartCase("testdata bart-tiny", loaded(t, testmodels.BART(t)), loadedPairs, []int{2, 200}),
	}
}

// Training with everything frozen except a few embedding rows lowers the
// loss, changes only those rows, creates optimizer state only on them and
// leaves no gradient behind.
func TestTrainOnlyTokenRows(t *testing.T) {
	for _, tc := range trainCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			finetune.SetRequiresGrad(tc.model, false)
			var trained []*nn.Param
			for _, id := range tc.rows {
				p := tc.table.Weights[id]
				p.SetRequiresGrad(true)
				trained = append(trained, p)
			}
			all := finetune.AllParams(tc.model)
			before := snapshot(all)
			task := tc.task(t)

			trainer, err := finetune.NewTrainer(finetune.Config{
				TokenParams: trained, TokenLR: 0.05, Epochs: 12, BatchSize: task.Size, KeepOrder: true, Quiet: true,
			})
			require.NoError(t, err)
			history, err := trainer.Train(task)
			require.NoError(t, err)
			require.Len(t, history, 12)
			t.Logf("loss %.4f -> %.4f", history[0], history[len(history)-1])
			assert.Less(t, history[len(history)-1], history[0], "loss did not go down")

			assert.ElementsMatch(t, trained, changed(before), "params changed besides the trained rows")
			for _, p := range all {
				isTrained := p == trained[0] || p == trained[1]
				assert.Equal(t, isTrained, p.State != nil, "optimizer state on a param that is trained=%v", isTrained)
				assert.False(t, p.HasGrad(), "gradient left after training")
			}
			assert.Zero(t, tc.table.CountEmbedWithGrad(), "embedding gradient index not cleared")
		})
	}
}

// Two runs with the same seed and the same model give bit-identical
// losses, with shuffled batches, whether every parameter is trained or only
// embedding rows; a different seed gives different batches.
func TestTrainingIsDeterministic(t *testing.T) {
	tests := []struct {
		name string
		task func(t *testing.T) (*finetune.Task, []*nn.Param)
	}{
		{"bert all params", func(t *testing.T) (*finetune.Task, []*nn.Param) {
			m := tinyBERT[float32](31)
			task, err := finetune.MaskedLMTask(m, mlmExamples(t, m), nil)
			require.NoError(t, err)
			return task, finetune.AllParams(m)
		}},
		{"bart rows", func(t *testing.T) (*finetune.Task, []*nn.Param) {
			m := tinyBART[float32](bartVariants[1], 32)
			finetune.SetRequiresGrad(m, false)
			rows := []*nn.Param{m.Bart.Embeddings.Weights[2], m.Bart.Embeddings.Weights[5]}
			for _, r := range rows {
				r.SetRequiresGrad(true)
			}
			task, err := finetune.ConditionalGenerationTask(m, bartPairs, nil)
			require.NoError(t, err)
			return task, rows
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := func(seed uint64) []float64 {
				task, params := tt.task(t)
				trainer, err := finetune.NewTrainer(finetune.Config{
					Params: params, LR: 0.01, Epochs: 4, BatchSize: 2, Seed: seed, Quiet: true,
				})
				require.NoError(t, err)
				history, err := trainer.Train(task)
				require.NoError(t, err)
				return history
			}
			first := run(7)
			require.Len(t, first, 8)
			for range 3 {
				assert.Equal(t, first, run(7))
			}
			assert.NotEqual(t, first, run(8), "the seed should change the batches")
		})
	}
}

// paramTask is a synthetic task: loss = sum over params of sum(p²), so the
// gradient of p is 2p and SGD updates are exact.
func paramTask(ps ...*nn.Param) *finetune.Task {
	return &finetune.Task{Size: 1, Loss: func([]int) (mat.Tensor, error) {
		var terms []mat.Tensor
		for _, p := range ps {
			terms = append(terms, ag.ReduceSum(ag.Square(p)))
		}
		return ag.Sum(terms...), nil
	}}
}

func vector(vs ...float64) *nn.Param {
	return nn.NewParam(mat.NewDense[float64](mat.WithBacking(vs)))
}

func TestTrainerUpdates(t *testing.T) {
	tests := []struct {
		name         string
		cfg          finetune.Config
		a, b         []float64 // initial values of a (Params) and b (TokenParams)
		wantA, wantB []float64
		wantNorm     float64
	}{
		{
			name: "token LR", cfg: finetune.Config{Optimizer: finetune.OptimizerSGD, LR: 0.1, TokenLR: 0.01},
			a: []float64{1, -2}, b: []float64{3, 4},
			wantA: []float64{0.8, -1.6}, wantB: []float64{2.94, 3.92}, wantNorm: 2 * 5.477225575051661,
		},
		{
			name: "clip value", cfg: finetune.Config{Optimizer: finetune.OptimizerSGD, LR: 0.1, ClipValue: 0.5},
			a: []float64{1, 0.1}, b: []float64{-2, 0},
			wantA: []float64{0.95, 0.08}, wantB: []float64{-1.95, 0}, wantNorm: 2 * 2.238302928559939,
		},
		{
			name: "clip global norm", cfg: finetune.Config{Optimizer: finetune.OptimizerSGD, LR: 1, MaxGradNorm: 1},
			a: []float64{1.5, 0}, b: []float64{0, 2}, // gradients (3, 0), (0, 4): norm 5
			wantA: []float64{1.5 - 0.6, 0}, wantB: []float64{0, 2 - 0.8}, wantNorm: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := vector(tt.a...), vector(tt.b...)
			cfg := tt.cfg
			cfg.Params, cfg.TokenParams, cfg.Quiet = []*nn.Param{a, a}, []*nn.Param{b}, true
			var infos []finetune.StepInfo
			cfg.OnStep = func(info finetune.StepInfo) error { infos = append(infos, info); return nil }
			trainer, err := finetune.NewTrainer(cfg)
			require.NoError(t, err)
			assert.Len(t, trainer.Params(), 2, "duplicates must be removed")
			_, err = trainer.Train(paramTask(a, b))
			require.NoError(t, err)
			assert.InDeltaSlice(t, tt.wantA, a.Value().Data().F64(), 1e-6)
			assert.InDeltaSlice(t, tt.wantB, b.Value().Data().F64(), 1e-6)
			require.Len(t, infos, 1)
			assert.InDelta(t, tt.wantNorm, infos[0].GradNorm, 1e-9)
			assert.Equal(t, 2, infos[0].Updated)
			assert.Equal(t, 1, infos[0].Step)
		})
	}
}

func TestTrainerOptimizers(t *testing.T) {
	params := map[string]func() *nn.Param{
		"float32": func() *nn.Param { return nn.NewParam(mat.NewDense[float32](mat.WithBacking([]float32{1, -1}))) },
		"float64": func() *nn.Param { return vector(2, 0.5) },
	}
	for _, cfg := range []finetune.Config{
		{Optimizer: finetune.OptimizerAdam, LR: 0.1},
		{Optimizer: finetune.OptimizerAdamW, LR: 0.1, WeightDecay: 0.1},
		{Optimizer: finetune.OptimizerSpagoAdam, LR: 0.1},
		{Optimizer: finetune.OptimizerSpagoAdamW, LR: 0.1, WeightDecay: 0.1},
		{Optimizer: finetune.OptimizerSGD, LR: 0.1, Momentum: 0.9, Nesterov: true},
	} {
		for dtype, newParam := range params {
			t.Run(cfg.Optimizer+"/"+dtype, func(t *testing.T) {
				p := newParam()
				cfg.Params, cfg.Epochs, cfg.Quiet = []*nn.Param{p}, 20, true
				trainer, err := finetune.NewTrainer(cfg)
				require.NoError(t, err)
				history, err := trainer.Train(paramTask(p))
				require.NoError(t, err)
				require.Len(t, history, 20)
				assert.Less(t, history[19], history[0]/2)
				assert.NotNil(t, p.State)
				assert.Equal(t, 20, trainer.Steps())
			})
		}
	}
}

func TestTrainerStopsAndReports(t *testing.T) {
	p := vector(1, 2)
	task := paramTask(p)
	task.Size = 10

	t.Run("max steps and batches", func(t *testing.T) {
		var batches [][]int
		trainer, err := finetune.NewTrainer(finetune.Config{Params: []*nn.Param{p}, BatchSize: 4, Epochs: 5, MaxSteps: 4, KeepOrder: true, Quiet: true,
			OnStep: func(info finetune.StepInfo) error { batches = append(batches, info.Batch); return nil }})
		require.NoError(t, err)
		history, err := trainer.Train(task)
		require.NoError(t, err)
		assert.Len(t, history, 4)
		assert.Equal(t, [][]int{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}, {0, 1, 2, 3}}, batches)
	})
	t.Run("OnStep error", func(t *testing.T) {
		stop := errors.New("stop here")
		trainer, err := finetune.NewTrainer(finetune.Config{Params: []*nn.Param{p}, Epochs: 3, Quiet: true,
			OnStep: func(info finetune.StepInfo) error {
				if info.Step == 2 {
					return stop
				}
				return nil
			}})
		require.NoError(t, err)
		history, err := trainer.Train(task)
		assert.ErrorIs(t, err, stop)
		assert.Len(t, history, 2)
	})
	t.Run("loss error", func(t *testing.T) {
		bad := errors.New("bad batch")
		trainer, err := finetune.NewTrainer(finetune.Config{Params: []*nn.Param{p}, Quiet: true})
		require.NoError(t, err)
		_, err = trainer.Train(&finetune.Task{Size: 1, Loss: func([]int) (mat.Tensor, error) { return nil, bad }})
		assert.ErrorIs(t, err, bad)
	})
	t.Run("frozen param", func(t *testing.T) {
		frozen := vector(1).WithGrad(false)
		trainer, err := finetune.NewTrainer(finetune.Config{Params: []*nn.Param{frozen}, Quiet: true})
		require.NoError(t, err)
		_, err = trainer.Train(paramTask(frozen))
		assert.ErrorContains(t, err, "does not require gradients")
	})
}

func TestNewTrainerRejectsBadConfig(t *testing.T) {
	p := vector(1)
	tests := []struct {
		cfg  finetune.Config
		want string
	}{
		{finetune.Config{}, "no parameters"},
		{finetune.Config{Params: []*nn.Param{nil}}, "Params[0] is nil"},
		{finetune.Config{Params: []*nn.Param{p}, Optimizer: "lion"}, `unknown optimizer "lion"`},
		{finetune.Config{Params: []*nn.Param{p}, LR: -1}, "LR must be positive and finite, got -1"},
		{finetune.Config{Params: []*nn.Param{p}, LR: math.Inf(1)}, "LR must be positive and finite, got +Inf"},
		{finetune.Config{Params: []*nn.Param{p}, LR: math.NaN()}, "LR must be positive and finite, got NaN"},
		{finetune.Config{Params: []*nn.Param{p}, Epsilon: math.Inf(1)}, "Epsilon must be positive and finite, got +Inf"},
		{finetune.Config{Params: []*nn.Param{p}, WeightDecay: -0.1}, "WeightDecay must be >= 0 and finite, got -0.1"},
		{finetune.Config{Params: []*nn.Param{p}, Optimizer: finetune.OptimizerSGD, WeightDecay: 0.1}, "WeightDecay needs Optimizer adam, adamw or spago-adamw"},
		{finetune.Config{Params: []*nn.Param{p}, Optimizer: finetune.OptimizerSpagoAdam, WeightDecay: 0.1}, "WeightDecay needs Optimizer adam, adamw or spago-adamw"},
		{finetune.Config{Params: []*nn.Param{p}, Optimizer: finetune.OptimizerSpagoAdamW}, "Optimizer spago-adamw needs a positive WeightDecay"},
		{finetune.Config{Params: []*nn.Param{p}, Optimizer: finetune.OptimizerAdam, Beta1: 1}, "Beta1 must be in [0, 1), got 1"},
		{finetune.Config{Params: []*nn.Param{p}, BatchSize: -2}, "BatchSize must be positive, got -2"},
		{finetune.Config{Params: []*nn.Param{p}, Nesterov: true}, "Nesterov needs Optimizer sgd"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := finetune.NewTrainer(tt.cfg)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
