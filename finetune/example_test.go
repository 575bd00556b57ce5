package finetune_test

import (
	"fmt"

	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/finetune"
)

// Train only the embedding rows of two tokens of a (tiny, random) BERT
// masked-language model; everything else stays frozen.
func Example() {
	m := tinyBERT[float32](1) // a *bert.ModelForMaskedLM; use PrepareLoaded on one read from disk
	vocab := m.Bert.Embeddings.Vocab

	finetune.SetRequiresGrad(m, false) // freeze everything, embedding rows included
	var rows []*nn.Param
	for _, tok := range []string{"<obj>", "<act>"} {
		row := m.Bert.Embeddings.Tokens.Weights[vocab.MustID(tok)]
		row.SetRequiresGrad(true)
		rows = append(rows, row)
	}

	var examples []finetune.MaskedExample
	for _, s := range [][]string{
		{"[CLS]", "the", "<obj>", "<act>", "on", "the", "mat", "[SEP]"},
		{"[CLS]", "a", "big", "<obj>", "<act>", "in", "the", "park", "[SEP]"},
		{"[CLS]", "the", "<obj>", "is", "red", "[SEP]"},
	} {
		ex, err := finetune.MaskTokens(vocab, s, len(s)-2) // predict the last word
		if err != nil {
			panic(err)
		}
		examples = append(examples, ex)
	}
	task, err := finetune.MaskedLMTask(m, examples, nil) // nil: the model's own output layer
	if err != nil {
		panic(err)
	}

	trainer, err := finetune.NewTrainer(finetune.Config{
		TokenParams: rows,
		TokenLR:     0.05,
		Optimizer:   finetune.OptimizerAdam,
		Epochs:      10,
		BatchSize:   3,
		Seed:        42,
		Quiet:       true,
	})
	if err != nil {
		panic(err)
	}
	history, err := trainer.Train(task)
	if err != nil {
		panic(err)
	}
	fmt.Println("steps:", len(history))
	fmt.Println("loss went down:", history[len(history)-1] < history[0])
	fmt.Println("params with optimizer state:", rows[0].State != nil, rows[1].State != nil)
	// Output:
	// steps: 10
	// loss went down: true
	// params with optimizer state: true true
}
