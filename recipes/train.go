package recipes

import (
	"fmt"
	"math"

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
	// Optimizer is finetune.OptimizerAdam [default], OptimizerAdamW (both
	// as torch.optim's), OptimizerSGD, OptimizerSpagoAdam or
	// OptimizerSpagoAdamW.
	Optimizer string
	// WeightDecay is AdamW's decoupled weight decay [0.01, torch's
	// default], or Adam's L2 term [0].
	WeightDecay float64
	MaxGradNorm float64 // clip the rows' global gradient norm [no clipping]
	Seed        uint64  // batch shuffling
	// Quiet is kept so existing code compiles: training writes no progress
	// by itself. For a progress bar pass progress.New(os.Stderr,
	// steps).Step (package progress) as OnStep.
	Quiet bool
	// DecayToInit, in [0, 1), pulls the trained rows back toward their
	// values at the start of training after every step: x ← x +
	// DecayToInit·(x₀ − x). It bounds how far a row can move (about
	// LR/DecayToInit per element with Adam), which keeps new words from
	// taking over the predictions of old ones [0: off].
	DecayToInit float64
	// OnStep is called after each step, once the tied copies are in step.
	OnStep func(finetune.StepInfo) error
}

func (o TrainOptions) check() error {
	if math.IsNaN(o.DecayToInit) || o.DecayToInit < 0 || o.DecayToInit >= 1 {
		return fmt.Errorf("recipes: DecayToInit must be in [0, 1), got %v", o.DecayToInit)
	}
	if o.Epochs < 0 {
		return fmt.Errorf("recipes: Epochs must be >= 0 (0 means 1), got %d", o.Epochs)
	}
	if o.BatchSize < 0 {
		return fmt.Errorf("recipes: BatchSize must be >= 0 (0 means 8), got %d", o.BatchSize)
	}
	if math.IsNaN(o.LR) || math.IsInf(o.LR, 0) || o.LR < 0 {
		return fmt.Errorf("recipes: LR must be a positive finite number (0 means 1e-2), got %v", o.LR)
	}
	return nil
}

// batchSize is BatchSize with its default.
func (o TrainOptions) batchSize() int {
	if o.BatchSize == 0 {
		return 8
	}
	return o.BatchSize
}

func (o TrainOptions) config(tm *trainabletokens.Model) (finetune.Config, error) {
	if err := o.check(); err != nil {
		return finetune.Config{}, err
	}
	lr := o.LR
	if lr == 0 {
		lr = 1e-2
	}
	params := tm.TrainableParams()
	var init [][]float64
	if o.DecayToInit > 0 {
		init = snapshot(params)
	}
	return finetune.Config{
		TokenParams: params,
		TokenLR:     lr,
		LR:          lr,
		Optimizer:   o.Optimizer,
		WeightDecay: o.WeightDecay,
		MaxGradNorm: o.MaxGradNorm,
		Epochs:      o.Epochs,
		BatchSize:   o.BatchSize,
		Seed:        o.Seed,
		Quiet:       o.Quiet,
		OnStep: func(s finetune.StepInfo) error {
			if init != nil {
				if err := decayToward(params, init, o.DecayToInit); err != nil {
					return err
				}
			}
			// The rows changed in place: bring the tied copies along.
			if err := tm.Sync(); err != nil {
				return err
			}
			if o.OnStep != nil {
				return o.OnStep(s)
			}
			return nil
		},
	}, nil
}

// TrainMLM trains the active adapter rows of tm on masked-LM examples; the
// MLM decoder's logits for the trained ids come from the trainable rows
// (the decoder is a tied copy of the token table). It returns the loss of
// every step.
func TrainMLM(m *bert.ModelForMaskedLM, tm *trainabletokens.Model, examples []finetune.MaskedExample, opts TrainOptions) ([]float64, error) {
	if err := checkAdapter(m, tm, true); err != nil {
		return nil, err
	}
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
	cfg, err := opts.config(tm)
	if err != nil {
		return nil, err
	}
	tr, err := finetune.NewTrainer(cfg)
	if err != nil {
		return nil, err
	}
	return tr.Train(task)
}

// TrainSeq2Seq trains the active adapter rows of tm on BART source/target
// pairs with teacher forcing: the rows are used by the encoder, the decoder
// and (through the tied lm_head) the output logits.
func TrainSeq2Seq(m *bart.ModelForConditionalGeneration, tm *trainabletokens.Model, examples []finetune.Seq2SeqExample, opts TrainOptions) ([]float64, error) {
	if err := checkAdapter(m, tm, true); err != nil {
		return nil, err
	}
	if len(tm.TrainableParams()) == 0 {
		return nil, fmt.Errorf("recipes: the adapter model has no trainable rows (no active, unmerged adapter)")
	}
	task, err := finetune.ConditionalGenerationTask(m, examples, tm.LogitsFunc(m.Projection))
	if err != nil {
		return nil, err
	}
	cfg, err := opts.config(tm)
	if err != nil {
		return nil, err
	}
	tr, err := finetune.NewTrainer(cfg)
	if err != nil {
		return nil, err
	}
	return tr.Train(task)
}
