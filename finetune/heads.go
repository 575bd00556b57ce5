package finetune

// Task heads: BERT sequence classification, token classification and
// extractive question answering, and BART sequence classification — the
// heads cybertron v0.2.1 ships — trained through the fused forward.
//
// The encoder (and for BART the decoder) runs as the fused op whenever its
// weights are frozen; the op returns the hidden states at the positions the
// head reads (BERT: [CLS] for sequence classification, every labelled token
// for token classification, every token for question answering; BART: the
// final </s> of the decoder). The head then runs as ordinary spago ops on
// that dim×m matrix, so it may be frozen or trainable (PEFT's
// modules_to_save: its weights get gradients, and the Trainer steps them
// when they are in Config.Params). A model with a trainable encoder weight
// falls back to the per-token graph, with the same values.

import (
	"math"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/internal/rows"
)

// IgnoreLabel marks a token that carries no token-classification loss
// (Hugging Face's -100).
const IgnoreLabel = -100

// TokenClassificationExample is one token-classification example: a label
// per token (IgnoreLabel for tokens without a loss, such as [CLS], [SEP] or
// word-piece continuations); at least one token must be labelled.
type TokenClassificationExample struct {
	Tokens []string
	Labels []int
}

// QuestionAnsweringExample is one extractive question-answering example:
// the tokens of question and context, and the token positions where the
// answer starts and ends (inclusive).
type QuestionAnsweringExample struct {
	Tokens     []string
	Start, End int
}

// BARTClassificationExample is one BART sequence-classification example:
// the token ids, ending with </s> (eos_token_id), whose final hidden state
// the classification head reads, as Hugging Face's
// BartForSequenceClassification does.
type BARTClassificationExample struct {
	Source []int
	Label  int
}

// HeadParams returns the parameters of a model's task head — what PEFT's
// modules_to_save trains next to the token rows: the Classifier of cybertron's
// BERT sequence classification, token classification and question answering
// models and of BART's sequence classification. Make them trainable
// (SetRequiresGrad) and pass them in Config.Params to train the head.
func HeadParams(model nn.Model) ([]*nn.Param, error) {
	var mods []nn.Model
	switch m := model.(type) {
	case *bert.ModelForSequenceClassification:
		if m != nil && m.Classifier != nil {
			mods = append(mods, m.Classifier)
		}
	case *bert.ModelForTokenClassification:
		if m != nil && m.Classifier != nil {
			mods = append(mods, m.Classifier)
		}
	case *bert.ModelForQuestionAnswering:
		if m != nil && m.Classifier != nil {
			mods = append(mods, m.Classifier)
		}
	case *bart.ModelForSequenceClassification:
		if m != nil && m.Classifier != nil {
			mods = append(mods, m.Classifier)
		}
	default:
		return nil, unsupportedf("%T has no task head (want a cybertron BERT sequence/token classification or question answering model, or BART sequence classification)", model)
	}
	if len(mods) == 0 {
		return nil, unsupportedf("%T: the classifier is nil", model)
	}
	var out []*nn.Param
	for _, p := range AllParams(mods[0]) {
		out = append(out, p)
	}
	return out, nil
}

// headLogits is the LogitsFunc of a position-wise head (linear layers and
// activations) applied to the columns of h.
func headLogits(ms ...nn.StandardModel) LogitsFunc {
	return func(h mat.Tensor) mat.Tensor {
		for _, m := range ms {
			if l, ok := m.(*linear.Model); ok {
				h = affineColumns(l, h)
				continue
			}
			h = m.Forward(h)[0] // element-wise activation
		}
		return h
	}
}

// checkLinear checks that a head layer exists and maps in → some outputs.
func checkLinear(what string, l *linear.Model, in int) (int, error) {
	if l == nil || l.W == nil || l.B == nil {
		return 0, unsupportedf("%s is nil", what)
	}
	s := l.W.Value().Shape()
	if len(s) != 2 || s[1] != in || l.B.Value().Size() != s[0] {
		return 0, unsupportedf("%s has weight shape %v and %d biases; want outputs×%d", what, s, l.B.Value().Size(), in)
	}
	return s[0], nil
}

// bertHidden returns the hidden states of the sequences at the given
// positions, in order, as the columns of a dim×m matrix: the fused op when
// the encoder's weights are frozen, else the per-token graph.
func bertHidden(fwd Forward, m *bert.Model, inputs []bertInput, positions [][]int) mat.Tensor {
	if h := fusedBERTHidden(fwd, m, inputs, positions); h != nil {
		return h
	}
	g := newGraph()
	var cols []mat.Tensor
	for i, in := range inputs {
		hs := bertForward(g, m, in)
		for _, p := range positions[i] {
			cols = append(cols, hs[p])
		}
	}
	return columns(cols)
}

func fusedBERTHidden(fwd Forward, m *bert.Model, inputs []bertInput, positions [][]int) mat.Tensor {
	if fwd == ForwardGraph {
		return nil
	}
	switch m.Embeddings.Tokens.Weights[0].Value().(type) {
	case *mat.Dense[float32]:
		if f, ok := fusedBERTOf[float32](training, m, nil); ok {
			return f.maskedLM(inputs, positions)
		}
	case *mat.Dense[float64]:
		if f, ok := fusedBERTOf[float64](training, m, nil); ok {
			return f.maskedLM(inputs, positions)
		}
	}
	return nil
}

// ---- BERT sequence classification ----

// seqClassHead is Classifier(Pooler(h)) on columns.
func seqClassHead(m *bert.ModelForSequenceClassification) LogitsFunc {
	return headLogits(append(append([]nn.StandardModel(nil), m.Bert.Pooler.Model...), m.Classifier)...)
}

// firstPositions is [[0], [0], ...]: the [CLS] position of each sequence.
func firstPositions(n int) [][]int {
	out := make([][]int, n)
	for i := range out {
		out[i] = []int{0}
	}
	return out
}

// ---- BERT token classification ----

// TokenClassificationLogits returns the classifier logits
// (labels×len(tokens)) of every token: cybertron's Classify, training-safe.
func TokenClassificationLogits(m *bert.ModelForTokenClassification, tokens []string, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	if err := checkTokenClassification(m); err != nil {
		return nil, err
	}
	in, err := bertTokens(m.Bert, tokens)
	if err != nil {
		return nil, err
	}
	all := make([]int, len(tokens))
	for i := range all {
		all[i] = i
	}
	return headLogits(m.Classifier)(bertHidden(f, m.Bert, []bertInput{in}, [][]int{all})), nil
}

// TokenClassificationLoss is the mean cross entropy over every labelled
// token of the batch (token-level mean, as Hugging Face computes it).
func TokenClassificationLoss(model *bert.ModelForTokenClassification, batch []TokenClassificationExample, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	inputs, positions, targets, err := prepareTokenClassification(model, batch)
	if err != nil {
		return nil, err
	}
	return lossOfMatrix(headLogits(model.Classifier), bertHidden(f, model.Bert, inputs, positions), targets)
}

// TokenClassificationTask returns the Task of TokenClassificationLoss over
// examples, all validated now.
func TokenClassificationTask(model *bert.ModelForTokenClassification, examples []TokenClassificationExample, fwd ...Forward) (*Task, error) {
	if _, err := oneForward(fwd); err != nil {
		return nil, err
	}
	if _, _, _, err := prepareTokenClassification(model, examples); err != nil {
		return nil, err
	}
	return &Task{Size: len(examples), Model: model, Loss: func(batch []int) (mat.Tensor, error) {
		return TokenClassificationLoss(model, pick(examples, batch), fwd...)
	}}, nil
}

func checkTokenClassification(m *bert.ModelForTokenClassification) error {
	if m == nil {
		return unsupportedf("token-classification model is nil")
	}
	if err := checkBERT(training, m.Bert); err != nil {
		return err
	}
	_, err := checkLinear("BERT token-classification Classifier", m.Classifier, m.Bert.Embeddings.Norm.W.Value().Size())
	return err
}

func prepareTokenClassification(model *bert.ModelForTokenClassification, batch []TokenClassificationExample) ([]bertInput, [][]int, []int, error) {
	if err := checkTokenClassification(model); err != nil {
		return nil, nil, nil, err
	}
	if len(batch) == 0 {
		return nil, nil, nil, invalidf("empty batch")
	}
	labels := model.Classifier.W.Value().Shape()[0]
	inputs := make([]bertInput, len(batch))
	positions := make([][]int, len(batch))
	var targets []int
	for i, ex := range batch {
		in, err := bertTokens(model.Bert, ex.Tokens)
		if err != nil {
			return nil, nil, nil, inExample(i, err)
		}
		if len(ex.Labels) != len(ex.Tokens) {
			return nil, nil, nil, inExample(i, invalidf("%d labels for %d tokens", len(ex.Labels), len(ex.Tokens)))
		}
		for p, l := range ex.Labels {
			if l == IgnoreLabel {
				continue
			}
			if l < 0 || l >= labels {
				return nil, nil, nil, inExample(i, invalidf("label %d of token %d out of range [0, %d) (IgnoreLabel %d skips a token)", l, p, labels, IgnoreLabel))
			}
			positions[i] = append(positions[i], p)
			targets = append(targets, l)
		}
		if len(positions[i]) == 0 {
			return nil, nil, nil, inExample(i, invalidf("no labelled token (every label is IgnoreLabel)"))
		}
		inputs[i] = in
	}
	return inputs, positions, targets, nil
}

// ---- BERT extractive question answering ----

// QuestionAnsweringLogits returns the span logits (2×len(tokens): row 0 the
// start scores, row 1 the end scores) of every token: cybertron's Answer,
// training-safe.
func QuestionAnsweringLogits(m *bert.ModelForQuestionAnswering, tokens []string, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	if err := checkQuestionAnswering(m); err != nil {
		return nil, err
	}
	in, err := bertTokens(m.Bert, tokens)
	if err != nil {
		return nil, err
	}
	return headLogits(m.Classifier)(bertHidden(f, m.Bert, []bertInput{in}, [][]int{allPositions(len(tokens))})), nil
}

func allPositions(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// QuestionAnsweringLoss is Hugging Face's BertForQuestionAnswering loss:
// per sequence, the cross entropy of the start scores (over the sequence's
// tokens) against Start plus that of the end scores against End, halved,
// and averaged over the batch.
func QuestionAnsweringLoss(model *bert.ModelForQuestionAnswering, batch []QuestionAnsweringExample, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	inputs, err := prepareQuestionAnswering(model, batch)
	if err != nil {
		return nil, err
	}
	positions := make([][]int, len(batch))
	spans := make([]qaSpan, len(batch))
	off := 0
	for i, ex := range batch {
		positions[i] = allPositions(len(ex.Tokens))
		spans[i] = qaSpan{off: off, n: len(ex.Tokens), start: ex.Start, end: ex.End}
		off += len(ex.Tokens)
	}
	y := headLogits(model.Classifier)(bertHidden(f, model.Bert, inputs, positions))
	if rows.DType(y.Value().(mat.Matrix)) == "" {
		return nil, unsupportedf("span logits of type %T", y.Value())
	}
	return ag.NewOperator(&spanLoss{y: y, spans: spans}).Run(), nil
}

// QuestionAnsweringTask returns the Task of QuestionAnsweringLoss over
// examples, all validated now.
func QuestionAnsweringTask(model *bert.ModelForQuestionAnswering, examples []QuestionAnsweringExample, fwd ...Forward) (*Task, error) {
	if _, err := oneForward(fwd); err != nil {
		return nil, err
	}
	if _, err := prepareQuestionAnswering(model, examples); err != nil {
		return nil, err
	}
	return &Task{Size: len(examples), Model: model, Loss: func(batch []int) (mat.Tensor, error) {
		return QuestionAnsweringLoss(model, pick(examples, batch), fwd...)
	}}, nil
}

func checkQuestionAnswering(m *bert.ModelForQuestionAnswering) error {
	if m == nil {
		return unsupportedf("question-answering model is nil")
	}
	if err := checkBERT(training, m.Bert); err != nil {
		return err
	}
	out, err := checkLinear("BERT question-answering Classifier", m.Classifier, m.Bert.Embeddings.Norm.W.Value().Size())
	if err == nil && out != 2 {
		err = unsupportedf("BERT question-answering Classifier has %d outputs, want 2 (start, end)", out)
	}
	return err
}

func prepareQuestionAnswering(model *bert.ModelForQuestionAnswering, batch []QuestionAnsweringExample) ([]bertInput, error) {
	if err := checkQuestionAnswering(model); err != nil {
		return nil, err
	}
	if len(batch) == 0 {
		return nil, invalidf("empty batch")
	}
	inputs := make([]bertInput, len(batch))
	for i, ex := range batch {
		in, err := bertTokens(model.Bert, ex.Tokens)
		if err != nil {
			return nil, inExample(i, err)
		}
		n := len(ex.Tokens)
		if ex.Start < 0 || ex.Start >= n || ex.End < 0 || ex.End >= n {
			return nil, inExample(i, invalidf("answer span [%d, %d] outside the %d tokens", ex.Start, ex.End, n))
		}
		if ex.End < ex.Start {
			return nil, inExample(i, invalidf("answer ends (%d) before it starts (%d)", ex.End, ex.Start))
		}
		inputs[i] = in
	}
	return inputs, nil
}

// qaSpan is one sequence's columns in the span logits and its answer.
type qaSpan struct {
	off, n, start, end int
}

// spanLoss is the question-answering loss as one op over the 2×N span
// logits of the whole batch (one consumer, so backward is deterministic).
type spanLoss struct {
	y     mat.Tensor
	spans []qaSpan
	probs []float64 // softmax of each row segment, kept for backward
}

func (o *spanLoss) Operands() []mat.Tensor { return []mat.Tensor{o.y} }

func (o *spanLoss) Forward() (mat.Tensor, error) {
	y := o.y.Value().Data().F64()
	n := o.y.Value().Shape()[1]
	o.probs = make([]float64, len(y))
	total := 0.0
	for _, s := range o.spans {
		for r, target := range []int{s.start, s.end} {
			seg := y[r*n+s.off : r*n+s.off+s.n]
			mx := math.Inf(-1)
			for _, v := range seg {
				mx = math.Max(mx, v)
			}
			sum := 0.0
			for _, v := range seg {
				sum += math.Exp(v - mx)
			}
			lse := mx + math.Log(sum)
			total += lse - seg[target]
			p := o.probs[r*n+s.off : r*n+s.off+s.n]
			for j, v := range seg {
				p[j] = math.Exp(v - lse)
			}
		}
	}
	loss := total / float64(2*len(o.spans))
	return o.y.Value().(mat.Matrix).NewScalar(loss), nil
}

func (o *spanLoss) Backward(gy mat.Tensor) error {
	if !o.y.RequiresGrad() {
		return nil
	}
	n := o.y.Value().Shape()[1]
	scale := gy.(mat.Matrix).Item().F64() / float64(2*len(o.spans))
	g := make([]float64, len(o.probs))
	for _, s := range o.spans {
		for r, target := range []int{s.start, s.end} {
			for j := 0; j < s.n; j++ {
				v := o.probs[r*n+s.off+j]
				if j == target {
					v--
				}
				g[r*n+s.off+j] = v * scale
			}
		}
	}
	o.y.AccGrad(o.y.Value().(mat.Matrix).NewMatrix(mat.WithShape(2, n), mat.WithBacking(g)))
	return nil
}

// ---- BART sequence classification ----

// BARTSequenceClassificationLogits returns the classification logits
// (labels×1) of one sequence: cybertron's ModelForSequenceClassification
// Forward, training-safe.
func BARTSequenceClassificationLogits(m *bart.ModelForSequenceClassification, ids []int, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	s, err := prepareBARTClassification(m, []BARTClassificationExample{{Source: ids}})
	if err != nil {
		return nil, err
	}
	return bartClassHead(m)(bartLastStates(f, s, [][]int{ids})), nil
}

// BARTSequenceClassificationLoss is the mean cross entropy of the
// classification head over the batch.
func BARTSequenceClassificationLoss(model *bart.ModelForSequenceClassification, batch []BARTClassificationExample, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	s, err := prepareBARTClassification(model, batch)
	if err != nil {
		return nil, err
	}
	sources := make([][]int, len(batch))
	targets := make([]int, len(batch))
	for i, ex := range batch {
		sources[i], targets[i] = ex.Source, ex.Label
	}
	return lossOfMatrix(bartClassHead(model), bartLastStates(f, s, sources), targets)
}

// BARTSequenceClassificationTask returns the Task of
// BARTSequenceClassificationLoss over examples, all validated now.
func BARTSequenceClassificationTask(model *bart.ModelForSequenceClassification, examples []BARTClassificationExample, fwd ...Forward) (*Task, error) {
	if _, err := oneForward(fwd); err != nil {
		return nil, err
	}
	if _, err := prepareBARTClassification(model, examples); err != nil {
		return nil, err
	}
	return &Task{Size: len(examples), Model: model, Loss: func(batch []int) (mat.Tensor, error) {
		return BARTSequenceClassificationLoss(model, pick(examples, batch), fwd...)
	}}, nil
}

func bartClassHead(m *bart.ModelForSequenceClassification) LogitsFunc {
	return headLogits(m.Classifier.Layers...)
}

// bartDecoderInput is cybertron's decoder input for classification: the
// ids rotated right by one (the final </s> first), which is Hugging Face's
// shift_tokens_right when decoder_start_token_id is </s>.
func bartDecoderInput(ids []int) []int {
	n := len(ids)
	return append([]int{ids[n-1]}, ids[:n-1]...)
}

// bartLastStates returns the decoder's hidden state at the last position
// of every sequence, as the columns of a dim×len(sources) matrix.
func bartLastStates(fwd Forward, s seq2Seq, sources [][]int) mat.Tensor {
	decIns := make([][]int, len(sources))
	last := make([]int, len(sources))
	off := 0
	for i, src := range sources {
		decIns[i] = bartDecoderInput(src)
		off += len(src)
		last[i] = off - 1
	}
	if h := fusedSeq2Seq(fwd, s, sources, decIns, nil); h != nil {
		return pickColumns(h, last)
	}
	g := newGraph()
	cols := make([]mat.Tensor, len(sources))
	for i, src := range sources {
		hs := s.dec.forward(g, s.enc.forward(g, src), decIns[i])
		cols[i] = hs[len(hs)-1]
	}
	return columns(cols)
}

func prepareBARTClassification(model *bart.ModelForSequenceClassification, batch []BARTClassificationExample) (seq2Seq, error) {
	if model == nil || model.Bart == nil || model.Classifier == nil {
		return seq2Seq{}, unsupportedf("BART sequence-classification model, its Bart or its Classifier is nil")
	}
	enc, err := bartEncoderOf(training, model.Bart)
	if err != nil {
		return seq2Seq{}, err
	}
	dec, err := bartDecoderOf(training, model.Bart)
	if err != nil {
		return seq2Seq{}, err
	}
	s := seq2Seq{enc: enc, dec: dec}
	ls := model.Classifier.Layers
	if len(ls) != 3 {
		return seq2Seq{}, unsupportedf("BART classification head has %d layers, want 3 (dense, tanh, out_proj)", len(ls))
	}
	dense, _ := ls[0].(*linear.Model)
	outProj, _ := ls[2].(*linear.Model)
	hidden, err := checkLinear("BART classification head dense", dense, enc.table.Dim)
	if err != nil {
		return seq2Seq{}, err
	}
	labels, err := checkLinear("BART classification head out_proj", outProj, hidden)
	if err != nil {
		return seq2Seq{}, err
	}
	if len(batch) == 0 {
		return seq2Seq{}, invalidf("empty batch")
	}
	eos := model.Bart.Config.EosTokenID
	for i, ex := range batch {
		if err := enc.checkIDs("source", ex.Source); err != nil {
			return seq2Seq{}, inExample(i, err)
		}
		if err := dec.checkIDs("source", ex.Source); err != nil {
			return seq2Seq{}, inExample(i, err)
		}
		if ex.Source[len(ex.Source)-1] != eos {
			return seq2Seq{}, inExample(i, invalidf("source ends with id %d; BART classification reads the state of the final </s> (eos_token_id %d)", ex.Source[len(ex.Source)-1], eos))
		}
		if ex.Label < 0 || ex.Label >= labels {
			return seq2Seq{}, inExample(i, invalidf("label %d out of range [0, %d)", ex.Label, labels))
		}
	}
	return s, nil
}

// pickColumns returns the given columns of h (dim×n) as a dim×len(cols)
// matrix; backward scatters the gradient back.
func pickColumns(h mat.Tensor, cols []int) mat.Tensor {
	return ag.NewOperator(&columnPick{h: h, cols: append([]int(nil), cols...)}).Run()
}

type columnPick struct {
	h    mat.Tensor
	cols []int
}

func (o *columnPick) Operands() []mat.Tensor { return []mat.Tensor{o.h} }

func (o *columnPick) Forward() (mat.Tensor, error) {
	hv := o.h.Value().(mat.Matrix)
	d := hv.Shape()[0]
	parts := make([]mat.Matrix, len(o.cols))
	for k, c := range o.cols {
		parts[k] = hv.ExtractColumn(c)
	}
	out := hv.NewMatrix(mat.WithShape(d, len(o.cols)))
	for k, p := range parts {
		for i := 0; i < d; i++ {
			out.SetScalar(p.ScalarAt(i, 0), i, k)
		}
	}
	return out, nil
}

func (o *columnPick) Backward(gy mat.Tensor) error {
	if !o.h.RequiresGrad() {
		return nil
	}
	hv := o.h.Value().(mat.Matrix)
	d, n := hv.Shape()[0], hv.Shape()[1]
	g := gy.(mat.Matrix)
	gh := make([]float64, d*n)
	for k, c := range o.cols {
		for i := 0; i < d; i++ {
			gh[i*n+c] += g.ScalarAt(i, k).F64()
		}
	}
	o.h.AccGrad(hv.NewMatrix(mat.WithShape(d, n), mat.WithBacking(gh)))
	return nil
}
