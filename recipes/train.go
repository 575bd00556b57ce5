package recipes

import (
	"fmt"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/trainabletokens"
)

// TrainOptions are the knobs of TrainMLM and TrainSeq2Seq; zero values take
// the defaults in brackets.
type TrainOptions struct {
	Epochs    int     // passes over the examples [1]
	BatchSize int     // examples per step [8]
	LR        float64 // learning rate of the token rows [1e-2]
	// Optimizer is finetune.OptimizerAdam [default], OptimizerAdamW or
	// OptimizerSGD.
	Optimizer   string
	MaxGradNorm float64 // clip the rows' global gradient norm [no clipping]
	Seed        uint64  // batch shuffling
	Quiet       bool    // no progress bar
	// OnStep is called after each step, once the tied copies are in step.
	OnStep func(finetune.StepInfo) error
}

func (o TrainOptions) config(tm *trainabletokens.Model) finetune.Config {
	lr := o.LR
	if lr == 0 {
		lr = 1e-2
	}
	return finetune.Config{
		TokenParams: tm.TrainableParams(),
		TokenLR:     lr,
		LR:          lr,
		Optimizer:   o.Optimizer,
		MaxGradNorm: o.MaxGradNorm,
		Epochs:      o.Epochs,
		BatchSize:   o.BatchSize,
		Seed:        o.Seed,
		Quiet:       o.Quiet,
		OnStep: func(s finetune.StepInfo) error {
			// The rows changed in place: bring the tied copies along.
			if err := tm.Sync(); err != nil {
				return err
			}
			if o.OnStep != nil {
				return o.OnStep(s)
			}
			return nil
		},
	}
}

// TrainMLM trains the active adapter rows of tm on masked-LM examples; the
// MLM decoder's logits for the trained ids come from the trainable rows
// (the decoder is a tied copy of the token table). It returns the loss of
// every step.
func TrainMLM(m *bert.ModelForMaskedLM, tm *trainabletokens.Model, examples []finetune.MaskedExample, opts TrainOptions) ([]float64, error) {
	if len(tm.TrainableParams()) == 0 {
		return nil, fmt.Errorf("recipes: the adapter model has no trainable rows (no active, unmerged adapter)")
	}
	dec, err := DecoderOf(m)
	if err != nil {
		return nil, err
	}
	task, err := finetune.MaskedLMTask(m, examples, tm.LogitsFunc(dec))
	if err != nil {
		return nil, err
	}
	tr, err := finetune.NewTrainer(opts.config(tm))
	if err != nil {
		return nil, err
	}
	return tr.Train(task)
}

// TrainSeq2Seq trains the active adapter rows of tm on BART source/target
// pairs with teacher forcing: the rows are used by the encoder, the decoder
// and (through the tied lm_head) the output logits.
func TrainSeq2Seq(m *bart.ModelForConditionalGeneration, tm *trainabletokens.Model, examples []finetune.Seq2SeqExample, opts TrainOptions) ([]float64, error) {
	if len(tm.TrainableParams()) == 0 {
		return nil, fmt.Errorf("recipes: the adapter model has no trainable rows (no active, unmerged adapter)")
	}
	task, err := finetune.ConditionalGenerationTask(m, examples, tm.LogitsFunc(m.Projection))
	if err != nil {
		return nil, err
	}
	tr, err := finetune.NewTrainer(opts.config(tm))
	if err != nil {
		return nil, err
	}
	return tr.Train(task)
}
