package finetune

import (
	"fmt"
	"slices"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers/wordpiecetokenizer"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/mat"
)

// MaskedExample is one masked-LM training example.
type MaskedExample struct {
	// Tokens are vocabulary terms, usually with "[MASK]" at the positions
	// to predict.
	Tokens []string
	// Targets maps each position that carries a loss to the id of the token
	// to predict there. Any position may carry a loss (BERT-style random or
	// kept replacements are allowed); at least one must.
	Targets map[int]int
}

// MaskTokens returns the example that masks tokens at the given positions:
// each becomes "[MASK]" and its original token's id becomes the target.
func MaskTokens(vocab *vocabulary.Vocabulary, tokens []string, positions ...int) (MaskedExample, error) {
	if vocab == nil {
		return MaskedExample{}, unsupportedf("vocabulary is nil")
	}
	ex := MaskedExample{Tokens: slices.Clone(tokens), Targets: make(map[int]int, len(positions))}
	for _, p := range positions {
		if p < 0 || p >= len(tokens) {
			return MaskedExample{}, invalidf("mask position %d out of range [0, %d)", p, len(tokens))
		}
		id, ok := vocab.ID(tokens[p])
		if !ok {
			return MaskedExample{}, invalidf("token %d %q is not in the vocabulary", p, tokens[p])
		}
		ex.Tokens[p] = wordpiecetokenizer.DefaultMaskToken
		ex.Targets[p] = id
	}
	return ex, nil
}

// positions returns the loss positions in increasing order (map order is
// random; the loss graph must not be).
func (e MaskedExample) positions() []int {
	ps := make([]int, 0, len(e.Targets))
	for p := range e.Targets {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// ClassificationExample is one sequence-classification training example.
type ClassificationExample struct {
	Tokens []string // vocabulary terms, usually starting with "[CLS]"
	Label  int      // class index in [0, number of labels)
}

// Seq2SeqExample is one conditional-generation training example, as token
// ids. The decoder input is decoder_start_token_id followed by
// Target[:len(Target)-1]; the labels are Target.
type Seq2SeqExample struct {
	Source []int
	Target []int
}

// MaskedLMLoss is the mean cross entropy over every loss position of the
// batch (token-level mean, as Hugging Face computes it). A nil logits uses
// the model's own output layer (Layers[3]). An optional Forward picks the
// forward pass (default ForwardAuto).
func MaskedLMLoss(model *bert.ModelForMaskedLM, batch []MaskedExample, logits LogitsFunc, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	return maskedLMLoss(model, batch, logits, f, nil)
}

// maskedLMLoss is MaskedLMLoss with a Task's packed weights (nil: none).
func maskedLMLoss(model *bert.ModelForMaskedLM, batch []MaskedExample, logits LogitsFunc, f Forward, cache *packCache) (mat.Tensor, error) {
	inputs, err := prepareMaskedLM(model, batch, logits)
	if err != nil {
		return nil, err
	}
	own := logits == nil // logits made here, which nobody else sees
	if own {
		logits = moduleLogitsIn(cache, model.Layers[len(model.Layers)-1])
	}
	positions := make([][]int, len(batch))
	var targets []int
	for i, ex := range batch {
		positions[i] = ex.positions()
		for _, p := range positions[i] {
			targets = append(targets, ex.Targets[p])
		}
	}
	if h := fusedMaskedLM(f, model, inputs, positions, cache); h != nil {
		return lossOfMatrixIn(cache, own, logits, h, targets)
	}
	g := newGraph()
	var hidden []mat.Tensor
	for i := range batch {
		hidden = append(hidden, maskedLMHidden(g, model, bertForward(g, model.Bert, inputs[i]), positions[i])...)
	}
	return lossOf(logits, hidden, targets)
}

// prepareMaskedLM validates the model and every example, before any graph
// node is built, and returns the examples' token ids.
func prepareMaskedLM(model *bert.ModelForMaskedLM, batch []MaskedExample, logits LogitsFunc) ([]bertInput, error) {
	if err := checkMaskedLM(training, model); err != nil {
		return nil, err
	}
	if len(batch) == 0 {
		return nil, invalidf("empty batch")
	}
	classes := tableRows(model.Bert.Embeddings.Tokens)
	if logits == nil {
		classes = maskedLMOutputRows(model)
	}
	inputs := make([]bertInput, len(batch))
	for i, ex := range batch {
		in, err := bertTokens(model.Bert, ex.Tokens)
		if err != nil {
			return nil, inExample(i, err)
		}
		if err := checkTargets(ex, classes); err != nil {
			return nil, inExample(i, err)
		}
		inputs[i] = in
	}
	return inputs, nil
}

func checkTargets(ex MaskedExample, classes int) error {
	if len(ex.Targets) == 0 {
		return invalidf("no masked position (Targets is empty)")
	}
	for _, p := range ex.positions() {
		if p < 0 || p >= len(ex.Tokens) {
			return invalidf("target position %d out of range [0, %d)", p, len(ex.Tokens))
		}
		if t := ex.Targets[p]; t < 0 || t >= classes {
			return invalidf("target at position %d: id %d out of range [0, %d)", p, t, classes)
		}
	}
	return nil
}

// SequenceClassificationLoss is the mean cross entropy of the classifier
// (Classifier(Pooler(hidden[0]))) over the batch.
func SequenceClassificationLoss(model *bert.ModelForSequenceClassification, batch []ClassificationExample, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	inputs, err := prepareSequenceClassification(model, batch)
	if err != nil {
		return nil, err
	}
	targets := make([]int, len(batch))
	for i, ex := range batch {
		targets[i] = ex.Label
	}
	// Fused when the encoder is frozen (heads.go); the head may be trainable.
	return lossOfMatrix(seqClassHead(model), bertHidden(f, model.Bert, inputs, firstPositions(len(batch))), targets)
}

func prepareSequenceClassification(model *bert.ModelForSequenceClassification, batch []ClassificationExample) ([]bertInput, error) {
	if err := checkSequenceClassification(training, model); err != nil {
		return nil, err
	}
	if len(batch) == 0 {
		return nil, invalidf("empty batch")
	}
	labels := model.Classifier.W.Value().Shape()[0]
	inputs := make([]bertInput, len(batch))
	for i, ex := range batch {
		in, err := bertTokens(model.Bert, ex.Tokens)
		if err != nil {
			return nil, inExample(i, err)
		}
		if ex.Label < 0 || ex.Label >= labels {
			return nil, inExample(i, invalidf("label %d out of range [0, %d)", ex.Label, labels))
		}
		inputs[i] = in
	}
	return inputs, nil
}

// ConditionalGenerationLoss is the mean cross entropy of the decoder over
// every target token of the batch, with teacher forcing: the decoder input
// is decoder_start_token_id + Target[:len-1], the labels are Target. A nil
// logits uses the model's own Projection. An optional Forward picks the
// forward pass (default ForwardAuto).
func ConditionalGenerationLoss(model *bart.ModelForConditionalGeneration, batch []Seq2SeqExample, logits LogitsFunc, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	return conditionalGenerationLoss(model, batch, logits, f, nil)
}

// conditionalGenerationLoss is ConditionalGenerationLoss with a Task's
// packed weights (nil: none).
func conditionalGenerationLoss(model *bart.ModelForConditionalGeneration, batch []Seq2SeqExample, logits LogitsFunc, f Forward, cache *packCache) (mat.Tensor, error) {
	s, decoderInputs, err := prepareConditionalGeneration(model, batch, logits)
	if err != nil {
		return nil, err
	}
	own := logits == nil // logits made here, which nobody else sees
	if own {
		logits = linearLogitsIn(cache, model.Projection)
	}
	var targets []int
	sources := make([][]int, len(batch))
	for i, ex := range batch {
		sources[i] = ex.Source
		targets = append(targets, ex.Target...)
	}
	if h := fusedSeq2Seq(f, s, sources, decoderInputs, cache); h != nil {
		return lossOfMatrixIn(cache, own, logits, h, targets)
	}
	g := newGraph()
	var hidden []mat.Tensor
	for i, ex := range batch {
		hidden = append(hidden, s.dec.forward(g, s.enc.forward(g, ex.Source), decoderInputs[i])...)
	}
	return lossOf(logits, hidden, targets)
}

// prepareConditionalGeneration validates the model and every example and
// returns the decoder inputs (start token + target shifted right).
func prepareConditionalGeneration(model *bart.ModelForConditionalGeneration, batch []Seq2SeqExample, logits LogitsFunc) (seq2Seq, [][]int, error) {
	s, err := seq2SeqOf(training, model)
	if err != nil {
		return seq2Seq{}, nil, err
	}
	if len(batch) == 0 {
		return seq2Seq{}, nil, invalidf("empty batch")
	}
	start := model.Bart.Config.DecoderStartTokenID
	classes := tableRows(s.dec.table)
	if start < 0 || start >= classes {
		return seq2Seq{}, nil, unsupportedf("decoder_start_token_id %d is not a row of the token table [0, %d)", start, classes)
	}
	if logits == nil {
		classes = model.Projection.W.Value().Shape()[0]
	}
	decoderInputs := make([][]int, len(batch))
	for i, ex := range batch {
		if err := s.enc.checkIDs("source", ex.Source); err != nil {
			return seq2Seq{}, nil, inExample(i, err)
		}
		if err := s.dec.checkIDs("target", ex.Target); err != nil {
			return seq2Seq{}, nil, inExample(i, err)
		}
		if err := checkIDs("target", ex.Target, classes); err != nil {
			return seq2Seq{}, nil, inExample(i, err)
		}
		decoderInputs[i] = append([]int{start}, ex.Target[:len(ex.Target)-1]...)
	}
	return s, decoderInputs, nil
}

// lossOf computes the logits of all loss positions at once and their mean
// cross entropy, checking the LogitsFunc's result before the loss node is
// built.
func lossOf(logits LogitsFunc, hidden []mat.Tensor, targets []int) (mat.Tensor, error) {
	return lossOfMatrix(logits, columns(hidden), targets)
}

// lossOfMatrix is lossOf for hidden states already arranged as the
// columns of one dim×n matrix.
func lossOfMatrix(logits LogitsFunc, h mat.Tensor, targets []int) (mat.Tensor, error) {
	return lossOfMatrixIn(nil, false, logits, h, targets)
}

// lossOfMatrixIn is lossOfMatrix for a Task's loss (cache non-nil: see
// crossEntropyIn). own says the LogitsFunc is the Task's own (its output
// is seen by nobody else and goes back to the scratch after the step).
func lossOfMatrixIn(cache *packCache, own bool, logits LogitsFunc, h mat.Tensor, targets []int) (mat.Tensor, error) {
	out := logits(h)
	if out == nil {
		return nil, fmt.Errorf("finetune: LogitsFunc returned nil")
	}
	return crossEntropyIn(cache, own, out, targets)
}
