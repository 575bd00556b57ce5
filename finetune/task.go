package finetune

import (
	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
)

// Task is what a Trainer trains on: Size examples, addressed by index, and
// the loss of a batch of them.
type Task struct {
	// Size is the number of examples; batches hold indices in [0, Size).
	Size int
	// Loss builds the loss graph (a scalar) of the examples at the given
	// indices. It must validate its inputs and return errors rather than
	// let a spago op fail.
	Loss func(batch []int) (mat.Tensor, error)
	// Model, if not nil, is the model the loss runs through. After every
	// step the Trainer clears the gradients left on it (the optimizer clears
	// those of the params it steps), including the gradient index of every
	// embedding table, which spago would otherwise let grow.
	Model nn.Model

	// finish, if set, is called by the Trainer with the loss of a step
	// once the step is over (its buffers can be reused: scratch.go).
	finish func(loss mat.Tensor)
}

// MaskedLMTask returns the Task of MaskedLMLoss over examples. Every
// example is validated now, so a bad one fails before training starts. An
// optional Forward picks the forward pass of every step (default
// ForwardAuto).
func MaskedLMTask(model *bert.ModelForMaskedLM, examples []MaskedExample, logits LogitsFunc, fwd ...Forward) (*Task, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	if _, err := prepareMaskedLM(model, examples, logits); err != nil {
		return nil, err
	}
	cache := newPackCache() // frozen weights packed once for all steps
	return &Task{Size: len(examples), Model: model, Loss: func(batch []int) (mat.Tensor, error) {
		return maskedLMLoss(model, pick(examples, batch), logits, f, cache)
	}, finish: cache.finish}, nil
}

// SequenceClassificationTask returns the Task of SequenceClassificationLoss
// over examples, all validated now.
func SequenceClassificationTask(model *bert.ModelForSequenceClassification, examples []ClassificationExample, fwd ...Forward) (*Task, error) {
	if _, err := oneForward(fwd); err != nil {
		return nil, err
	}
	if _, err := prepareSequenceClassification(model, examples); err != nil {
		return nil, err
	}
	return &Task{Size: len(examples), Model: model, Loss: func(batch []int) (mat.Tensor, error) {
		return SequenceClassificationLoss(model, pick(examples, batch), fwd...)
	}}, nil
}

// ConditionalGenerationTask returns the Task of ConditionalGenerationLoss
// over examples, all validated now. An optional Forward picks the forward
// pass of every step (default ForwardAuto).
func ConditionalGenerationTask(model *bart.ModelForConditionalGeneration, examples []Seq2SeqExample, logits LogitsFunc, fwd ...Forward) (*Task, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	if _, _, err := prepareConditionalGeneration(model, examples, logits); err != nil {
		return nil, err
	}
	cache := newPackCache() // frozen weights packed once for all steps
	return &Task{Size: len(examples), Model: model, Loss: func(batch []int) (mat.Tensor, error) {
		return conditionalGenerationLoss(model, pick(examples, batch), logits, f, cache)
	}, finish: cache.finish}, nil
}

// pick returns the examples at the batch's indices.
func pick[E any](examples []E, batch []int) []E {
	out := make([]E, len(batch))
	for k, i := range batch {
		out[k] = examples[i]
	}
	return out
}
