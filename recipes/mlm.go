package recipes

import (
	"fmt"
	"math"
	"sort"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/registry"
	"github.com/gopeft/gopeft/trainabletokens"
)

// MaskToken is BERT's mask token.
const MaskToken = "[MASK]"

// MaskOccurrences tokenizes each line (with [CLS]/[SEP]) and returns one
// masked-LM example per line that contains any of ids, with every
// occurrence of those ids masked and predicted. Lines without them are
// skipped.
func MaskOccurrences(tok *newtokens.Tokenizer, lines []string, ids []int) ([]finetune.MaskedExample, error) {
	want := map[int]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []finetune.MaskedExample
	for i, line := range lines {
		encoded, tokens, err := tok.EncodeSpecial(line)
		if err != nil {
			return nil, fmt.Errorf("recipes: line %d %q: %w", i+1, line, err)
		}
		ex := finetune.MaskedExample{Tokens: append([]string(nil), tokens...), Targets: map[int]int{}}
		for pos, id := range encoded {
			if want[id] {
				ex.Tokens[pos] = MaskToken
				ex.Targets[pos] = id
			}
		}
		if len(ex.Targets) > 0 {
			out = append(out, ex)
		}
	}
	return out, nil
}

// Eval is the masked-LM quality on a set of examples.
type Eval struct {
	// Loss is the mean cross-entropy over all predicted positions.
	Loss float64
	// Accuracy is the share of positions whose highest logit is the target.
	Accuracy float64
	// Positions is the number of predicted positions.
	Positions int
}

func (e Eval) String() string {
	return fmt.Sprintf("loss %.4f, accuracy %.1f%% over %d masked tokens", e.Loss, 100*e.Accuracy, e.Positions)
}

// EvaluateMLM runs the fast inference forward (finetune.PredictMaskedLM,
// equal to cybertron's ModelForMaskedLM.Predict to float rounding) on the
// examples, in batches, and scores the target positions, which must be
// [MASK] tokens. With tm non-nil the inference runs inside tm.Do, so
// adapters cannot change meanwhile; the tied decoder holds the active rows
// (trainabletokens keeps it in step).
func EvaluateMLM(m *bert.ModelForMaskedLM, tm *trainabletokens.Model, examples []finetune.MaskedExample) (Eval, error) {
	e, _, err := evaluateMLM(m, tm, examples, nil)
	return e, err
}

// evaluateMLM is EvaluateMLM that also returns the share of positions whose
// top prediction is one of the ids in taken while their target is not.
func evaluateMLM(m *bert.ModelForMaskedLM, tm *trainabletokens.Model, examples []finetune.MaskedExample, taken map[int]bool) (Eval, float64, error) {
	if err := checkAdapter(m, tm, false); err != nil {
		return Eval{}, 0, err
	}
	var e Eval
	var takeovers int
	if m == nil {
		return e, 0, fmt.Errorf("recipes: model is nil")
	}
	const batch = 16
	pred := finetune.NewPredictor() // the weights packed once for all batches
	run := func() error {
		for b0 := 0; b0 < len(examples); b0 += batch {
			exs := examples[b0:min(len(examples), b0+batch)]
			in := make([]finetune.SequenceInput, len(exs))
			for j, ex := range exs {
				if err := checkTokens(m, ex.Tokens); err != nil {
					return fmt.Errorf("recipes: example %d: %w", b0+j, err)
				}
				in[j] = finetune.SequenceInput{Tokens: ex.Tokens}
			}
			preds, err := pred.PredictMaskedLM(m, in)
			if err != nil {
				return fmt.Errorf("recipes: examples %d–%d: %w", b0, b0+len(exs)-1, err)
			}
			for j, ex := range exs {
				i := b0 + j
				row := map[int]int{}
				for k, p := range preds[j].Positions {
					row[p] = k
				}
				for _, pos := range sortedKeys(ex.Targets) {
					target := ex.Targets[pos]
					k, ok := row[pos]
					if !ok {
						return fmt.Errorf("recipes: example %d: position %d is not a [MASK]", i, pos)
					}
					v := preds[j].Logits.Shape()[1]
					logits := rows.Get(preds[j].Logits, k, v)
					if target < 0 || target >= len(logits) {
						return fmt.Errorf("recipes: example %d: target %d out of range [0, %d)", i, target, len(logits))
					}
					e.Loss += logSumExp(logits) - logits[target]
					top := argmax(logits)
					if top == target {
						e.Accuracy++
					} else if taken[top] && !taken[target] {
						takeovers++
					}
					e.Positions++
				}
			}
		}
		return nil
	}
	var err error
	if tm != nil {
		err = tm.Do(run)
	} else {
		err = run()
	}
	if err != nil {
		return Eval{}, 0, err
	}
	if e.Positions == 0 {
		return e, 0, nil
	}
	e.Loss /= float64(e.Positions)
	e.Accuracy /= float64(e.Positions)
	return e, float64(takeovers) / float64(e.Positions), nil
}

// sortedKeys returns the positions of targets in order (a deterministic
// sum).
func sortedKeys(targets map[int]int) []int {
	ks := make([]int, 0, len(targets))
	for k := range targets {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}

// Prediction is one candidate token for a masked position.
type Prediction struct {
	Token       string
	ID          int
	Probability float64
}

// TopPredictions returns the k most likely tokens at the first [MASK] of
// text, through the fast inference forward (finetune.PredictMaskedLM;
// inside tm.Do when tm is not nil).
func TopPredictions(m *bert.ModelForMaskedLM, tm *trainabletokens.Model, tok *newtokens.Tokenizer, text string, k int) ([]Prediction, error) {
	if k < 0 {
		return nil, fmt.Errorf("recipes: TopPredictions: k = %d; expected k >= 0 (0 returns no prediction)", k)
	}
	if err := checkAdapter(m, tm, false); err != nil {
		return nil, err
	}
	_, tokens, err := tok.EncodeSpecial(text)
	if err != nil {
		return nil, err
	}
	pos := -1
	for i, t := range tokens {
		if t == MaskToken {
			pos = i
			break
		}
	}
	if pos < 0 {
		return nil, fmt.Errorf("recipes: %q has no %s", text, MaskToken)
	}
	if err := checkTokens(m, tokens); err != nil {
		return nil, err
	}
	var logits []float64
	run := func() error {
		preds, err := finetune.PredictMaskedLM(m, []finetune.SequenceInput{{Tokens: tokens, Positions: []int{pos}}})
		if err != nil {
			return fmt.Errorf("recipes: %w", err)
		}
		logits = rows.Get(preds[0].Logits, 0, preds[0].Logits.Shape()[1])
		return nil
	}
	if tm != nil {
		err = tm.Do(run)
	} else {
		err = run()
	}
	if err != nil {
		return nil, err
	}
	lse := logSumExp(logits)
	order := make([]int, len(logits))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return logits[order[a]] > logits[order[b]] })
	if k > len(order) {
		k = len(order)
	}
	out := make([]Prediction, k)
	for i := range out {
		id := order[i]
		s, _ := tok.Token(id)
		out[i] = Prediction{Token: s, ID: id, Probability: math.Exp(logits[id] - lse)}
	}
	return out, nil
}

// checkTokens refuses tokens cybertron's Predict would die on
// (vocabulary.MustID panics on unknown terms; too long sequences overflow the
// position table).
func checkTokens(m *bert.ModelForMaskedLM, tokens []string) error {
	if max := m.Bert.Config.MaxPositionEmbeddings; len(tokens) > max {
		return fmt.Errorf("recipes: %d tokens, at most %d allowed", len(tokens), max)
	}
	for i, t := range tokens {
		if _, ok := m.Bert.Embeddings.Vocab.ID(t); !ok {
			return fmt.Errorf("recipes: token %d %q is not in the model's vocabulary", i, t)
		}
	}
	return nil
}

// DecoderOf returns the MLM decoder of a cybertron BERT (the tied output
// projection the adapter's Logits route through), as registry describes it.
func DecoderOf(m *bert.ModelForMaskedLM) (*linear.Model, error) {
	return outputHead(m)
}

// outputHead returns the model's output head tied to its input table.
func outputHead(m nn.Model) (*linear.Model, error) {
	l, err := registry.Describe(m)
	if err != nil {
		return nil, fmt.Errorf("recipes: %w", err)
	}
	for _, b := range l.BadOutputs {
		return nil, fmt.Errorf("recipes: %T's output head %s", m, b.Reason)
	}
	for _, o := range l.Outputs {
		if o.Of != nil && o.Of.Input {
			return o.Linear, nil
		}
	}
	return nil, fmt.Errorf("recipes: %T has no output head over its token table", m)
}

func values(m mat.Matrix) []float64 { return rows.Get(m, 0, m.Size()) }

func logSumExp(x []float64) float64 {
	hi := math.Inf(-1)
	for _, v := range x {
		hi = math.Max(hi, v)
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(v - hi)
	}
	return hi + math.Log(s)
}

func argmax(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
