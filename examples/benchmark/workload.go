package main

import (
	"fmt"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/trainabletokens"
)

// workload is a model, its batch and the ways to run it.
type workload struct {
	name   string
	model  nn.Model
	table  *embedding.Model
	head   *linear.Model // the tied output projection
	tokens int           // input tokens per batch
	// loss builds the training loss of the batch with the given logits.
	loss func(logits finetune.LogitsFunc) (mat.Tensor, error)
	// task is the Trainer's task over the batch.
	task func(logits finetune.LogitsFunc, fwd ...finetune.Forward) (*finetune.Task, error)
	// infer is cybertron's own inference forward over the batch.
	infer func() error
	size  int // examples in the batch
}

func bertWorkload(name string, m *bert.ModelForMaskedLM, batch []finetune.MaskedExample) *workload {
	w := &workload{name: name, model: m, table: m.Bert.Embeddings.Tokens, head: m.Layers[len(m.Layers)-1].(*linear.Model), size: len(batch)}
	for _, ex := range batch {
		w.tokens += len(ex.Tokens)
	}
	w.loss = func(logits finetune.LogitsFunc) (mat.Tensor, error) { return finetune.MaskedLMLoss(m, batch, logits) }
	w.task = func(logits finetune.LogitsFunc, fwd ...finetune.Forward) (*finetune.Task, error) {
		return finetune.MaskedLMTask(m, batch, logits, fwd...)
	}
	w.infer = func() error {
		for _, ex := range batch {
			for _, y := range m.Predict(ex.Tokens) {
				_ = y.Value()
			}
		}
		return nil
	}
	return w
}

func bartWorkload(name string, m *bart.ModelForConditionalGeneration, batch []finetune.Seq2SeqExample) *workload {
	w := &workload{name: name, model: m, table: m.Bart.Embeddings, head: m.Projection, size: len(batch)}
	for _, ex := range batch {
		w.tokens += len(ex.Source) + len(ex.Target)
	}
	w.loss = func(logits finetune.LogitsFunc) (mat.Tensor, error) {
		return finetune.ConditionalGenerationLoss(m, batch, logits)
	}
	w.task = func(logits finetune.LogitsFunc, fwd ...finetune.Forward) (*finetune.Task, error) {
		return finetune.ConditionalGenerationTask(m, batch, logits, fwd...)
	}
	w.infer = func() error {
		for _, ex := range batch {
			decIn := append([]int{m.Bart.Config.DecoderStartTokenID}, ex.Target[:len(ex.Target)-1]...)
			enc := m.Bart.Encoder.Encode(ex.Source)
			dec, _ := m.Bart.Decoder.Decode(enc, decIn, nil, 1)
			for _, y := range m.Projection.Forward(dec...) {
				_ = y.Value()
			}
		}
		return nil
	}
	return w
}

// value forces a loss and returns its value.
func value(t mat.Tensor, err error) (float64, error) {
	if err != nil {
		return 0, err
	}
	return t.Value().Item().F64(), nil
}

// trainer is a trainable-tokens or full fine-tuning training loop on a
// workload: Trainer.Step on the whole batch, then Sync of the tied copies.
type trainer struct {
	w    *workload
	tm   *trainabletokens.Model // nil for full fine-tuning
	tr   *finetune.Trainer
	task *finetune.Task
	all  []int
}

// newTTTrainer trains the adapter's rows; fwd (default ForwardAuto) picks
// the training forward.
func newTTTrainer(w *workload, tm *trainabletokens.Model, fwd ...finetune.Forward) (*trainer, error) {
	task, err := w.task(tm.LogitsFunc(w.head), fwd...)
	if err != nil {
		return nil, err
	}
	tr, err := finetune.NewTrainer(finetune.Config{TokenParams: tm.TrainableParams(), LR: 1e-3, Quiet: true})
	if err != nil {
		return nil, err
	}
	return &trainer{w: w, tm: tm, tr: tr, task: task, all: seq(w.size)}, nil
}

// newFullTrainer trains every row of the table and the output projection
// (weight and bias, untied as cybertron stores them); the rest is frozen.
func newFullTrainer(w *workload) (*trainer, error) {
	finetune.SetRequiresGrad(w.model, false)
	params := append(tokenRows(w.table), w.head.W, w.head.B)
	for _, p := range params {
		p.SetRequiresGrad(true)
	}
	task, err := w.task(nil)
	if err != nil {
		return nil, err
	}
	tr, err := finetune.NewTrainer(finetune.Config{Params: params, LR: 1e-3, Quiet: true})
	if err != nil {
		return nil, err
	}
	return &trainer{w: w, tr: tr, task: task, all: seq(w.size)}, nil
}

func (t *trainer) step() error {
	info, err := t.tr.Step(t.task, t.all)
	if err != nil {
		return err
	}
	if info.Updated == 0 {
		return fmt.Errorf("%s: no parameter was updated", t.w.name)
	}
	if t.tm != nil {
		return t.tm.Sync()
	}
	return nil
}

// forwardOnly builds the training loss of the batch without a backward.
func (t *trainer) forwardOnly() error {
	var logits finetune.LogitsFunc
	if t.tm != nil {
		logits = t.tm.LogitsFunc(t.w.head)
	}
	_, err := value(t.w.loss(logits))
	return err
}

// inferenceForward is the fused forward of the frozen model (no
// trainable row: nothing is kept for a backward).
func inferenceForward(w *workload) error {
	_, err := value(w.loss(nil))
	return err
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// backwardOnce runs forward and backward (no update), to look at the
// gradients.
func backwardOnce(w *workload, tm *trainabletokens.Model) error {
	l, err := w.loss(tm.LogitsFunc(w.head))
	if err != nil {
		return err
	}
	return ag.Backward(l)
}
