package finetune_test

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
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

// mediumBERT is a masked-LM BERT of the benchmark's size (hidden 256, 4
// layers, 4 heads, intermediate 1,024) with a vocabulary of v words.
func mediumBERT(v int) (*bert.ModelForMaskedLM, []finetune.MaskedExample) {
	words := append([]string{}, tinyWords[:5]...)
	for i := len(words); i < v; i++ {
		words = append(words, fmt.Sprintf("w%d", i))
	}
	m := bert.New[float32](bert.Config{
		HiddenSize: 256, EmbeddingsSize: 256, IntermediateSize: 1024, NumAttentionHeads: 4, NumHiddenLayers: 4,
		MaxPositionEmbeddings: 64, TypeVocabSize: 2, VocabSize: v, HiddenAct: "gelu",
	})
	m.Embeddings.Vocab = vocabulary.New(words)
	mlm := bert.NewModelForMaskedLM[float32](m)
	randomize(mlm, 3)
	rng := rand.New(rand.NewPCG(4, 5))
	var batch []finetune.MaskedExample
	for range 8 {
		tokens := []string{"[CLS]"}
		for len(tokens) < 63 {
			tokens = append(tokens, words[5+rng.IntN(v-5)])
		}
		tokens = append(tokens, "[SEP]")
		ex := finetune.MaskedExample{Tokens: tokens, Targets: map[int]int{}}
		for _, p := range rng.Perm(62)[:10] {
			ex.Targets[p+1] = m.Embeddings.Vocab.MustID(tokens[p+1])
			ex.Tokens[p+1] = "[MASK]"
		}
		batch = append(batch, ex)
	}
	return mlm, batch
}

// BenchmarkFusedMaskedLM is a trainable-tokens training step (forward,
// backward, Adam on 10 rows) of the benchmark's BERT at vocabulary 30,522,
// against its forward alone, on the fused path and on the graph path.
func BenchmarkFusedMaskedLM(b *testing.B) {
	m, batch := mediumBERT(30522)
	finetune.SetRequiresGrad(m, false)
	var rows []*nn.Param
	// The [MASK] row (in every example, so the backward runs through the
	// whole encoder) and nine rows absent from the batch.
	for _, id := range []int{4, 30513, 30514, 30515, 30516, 30517, 30518, 30519, 30520, 30521} {
		w := m.Bert.Embeddings.Tokens.Weights[id]
		w.SetRequiresGrad(true)
		rows = append(rows, w)
	}
	trainer, err := finetune.NewTrainer(finetune.Config{TokenParams: rows, Quiet: true})
	require.NoError(b, err)
	all := []int{0, 1, 2, 3, 4, 5, 6, 7}
	for _, fwd := range []finetune.Forward{finetune.ForwardAuto, finetune.ForwardGraph} {
		name := "fused"
		if fwd == finetune.ForwardGraph {
			name = "graph"
		}
		task, err := finetune.MaskedLMTask(m, batch, nil, fwd)
		require.NoError(b, err)
		b.Run(name+"/forward", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l, err := finetune.MaskedLMLoss(m, batch, nil, fwd)
				require.NoError(b, err)
				_ = l.Value()
			}
		})
		b.Run(name+"/step", func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				_, err := trainer.Step(task, all)
				require.NoError(b, err)
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}
