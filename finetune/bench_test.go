package finetune_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/testmodels"
)

// benchmarkStep times Trainer.Step on the whole task as one batch, training
// either two embedding rows (everything else frozen) or every parameter.
func benchmarkStep(b *testing.B, model nn.Model, table *embedding.Model, rows []int, task *finetune.Task, full bool) {
	var params []*nn.Param
	if full {
		finetune.SetRequiresGrad(model, true)
		params = finetune.AllParams(model)
	} else {
		finetune.SetRequiresGrad(model, false)
		for _, id := range rows {
			table.Weights[id].SetRequiresGrad(true)
			params = append(params, table.Weights[id])
		}
	}
	trainer, err := finetune.NewTrainer(finetune.Config{Params: params, LR: 1e-4, Quiet: true})
	require.NoError(b, err)
	batch := make([]int, task.Size)
	for i := range batch {
		batch[i] = i
	}
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		_, err := trainer.Step(task, batch)
		require.NoError(b, err)
	}
	// Process CPU time per step: less sensitive than wall time to other
	// processes sharing the machine.
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkStep(b *testing.B) {
	for _, full := range []bool{false, true} {
		name := "rows"
		if full {
			name = "full"
		}
		b.Run("bert-tiny/"+name, func(b *testing.B) {
			m := loaded(b, testmodels.BERT(b))
			task, err := finetune.MaskedLMTask(m, mlmExamples(b, m), nil)
			require.NoError(b, err)
			vocab := m.Bert.Embeddings.Vocab
			benchmarkStep(b, m, m.Bert.Embeddings.Tokens, []int{vocab.MustID("the"), vocab.MustID("sat")}, task, full)
		})
		b.Run("bart-tiny/"+name, func(b *testing.B) {
			m := loaded(b, testmodels.BART(b))
			pairs := []finetune.Seq2SeqExample{
				{Source: []int{0, 100, 200, 300, 400, 500, 600, 2}, Target: []int{0, 400, 500, 600, 700, 2}},
				{Source: []int{0, 200, 7, 8, 9, 10, 2}, Target: []int{0, 8, 9, 10, 11, 12, 13, 2}},
			}
			task, err := finetune.ConditionalGenerationTask(m, pairs, nil)
			require.NoError(b, err)
			benchmarkStep(b, m, m.Bart.Embeddings, []int{2, 200}, task, full)
		})
	}
}
