package recipes

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/trainabletokens"
)

// Training only the rows of new words has a known weakness (PEFT's too):
// the new rows also enter the softmax of every other position, and a
// corpus in which every masked word is a new word teaches them to win
// everywhere ("the dog is [MASK] ." → the new word). The guard measures that
// damage on ordinary sentences and limits it.

// MaskEachWord returns masked-LM examples of ordinary text: for every line
// that contains none of ids (pass the new words' ids, or nil to use every
// line), one example per word piece with that piece alone masked. [CLS],
// [SEP] and [UNK] are never masked. It is the held-out measure of the old
// vocabulary (each word masked alone, as BERT's pretraining check does) and
// a pool of ordinary examples to mix into training (Guard.Mix).
func MaskEachWord(tok *newtokens.Tokenizer, lines []string, ids []int) ([]finetune.MaskedExample, error) {
	if tok == nil {
		return nil, errors.New("recipes: tokenizer is nil")
	}
	skip := map[int]bool{}
	for _, id := range ids {
		skip[id] = true
	}
	unk, hasUnk := tok.ID("[UNK]")
	var out []finetune.MaskedExample
	for i, line := range lines {
		encoded, tokens, err := tok.EncodeSpecial(line)
		if err != nil {
			return nil, fmt.Errorf("recipes: line %d %q: %w", i+1, line, err)
		}
		hit := false
		for _, id := range encoded {
			hit = hit || skip[id]
		}
		if hit {
			continue
		}
		// EncodeSpecial adds one marker at each end.
		for pos := 1; pos < len(encoded)-1; pos++ {
			if hasUnk && encoded[pos] == unk {
				continue
			}
			ex := finetune.MaskedExample{Tokens: append([]string(nil), tokens...), Targets: map[int]int{pos: encoded[pos]}}
			ex.Tokens[pos] = MaskToken
			out = append(out, ex)
		}
	}
	return out, nil
}

// SplitLines separates lines that contain any of ids (as tokenized by tok)
// from ordinary lines, keeping their order.
func SplitLines(tok *newtokens.Tokenizer, lines []string, ids []int) (withIDs, ordinary []string, err error) {
	if tok == nil {
		return nil, nil, errors.New("recipes: tokenizer is nil")
	}
	want := map[int]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for i, line := range lines {
		encoded, _, err := tok.Encode(line)
		if err != nil {
			return nil, nil, fmt.Errorf("recipes: line %d %q: %w", i+1, line, err)
		}
		hit := false
		for _, id := range encoded {
			hit = hit || want[id]
		}
		if hit {
			withIDs = append(withIDs, line)
		} else {
			ordinary = append(ordinary, line)
		}
	}
	return withIDs, ordinary, nil
}

// Guard protects the model's old vocabulary while new rows train
// (TrainMLMGuarded). The zero value measures nothing and changes nothing.
type Guard struct {
	// Ordinary are held-out examples without new words (MaskEachWord):
	// evaluated before and after training, and watched by MaxOrdinaryDrop.
	Ordinary []finetune.MaskedExample
	// Held are held-out new-word examples (MaskOccurrences), evaluated
	// before and after training for the report.
	Held []finetune.MaskedExample
	// Mix are ordinary training examples: MixPerBatch of them, drawn at
	// random (seeded by TrainOptions.Seed), join every batch, so the new
	// rows also learn where they must lose.
	Mix         []finetune.MaskedExample
	MixPerBatch int
	// MaxOrdinaryDrop, if positive, bounds the damage: Ordinary is
	// evaluated every EvalEvery steps (default: once per epoch) and after
	// the last step; an evaluation whose accuracy is more than
	// MaxOrdinaryDrop (a fraction: 0.02 is 2 points) below its value before
	// training is out of bounds. After Patience evaluations out of bounds
	// in a row (default 1) training stops early, and whenever training ends
	// out of bounds the rows of the last evaluation within the bound (or
	// the initial rows) are put back.
	MaxOrdinaryDrop float64
	EvalEvery       int
	Patience        int
}

// TrainReport is what TrainMLMGuarded measured.
type TrainReport struct {
	Losses []float64 // training loss of every step
	// Ordinary and held-out new-word quality before and after training
	// (zero when the Guard had no such examples).
	OrdinaryBefore, OrdinaryAfter Eval
	HeldBefore, HeldAfter         Eval
	// TakeoverBefore and TakeoverAfter are the shares of Ordinary positions
	// whose top prediction is a trained token (the answer being another).
	TakeoverBefore, TakeoverAfter float64
	// StoppedEarly tells that MaxOrdinaryDrop ended training; the rows are
	// those after step KeptStep.
	StoppedEarly bool
	KeptStep     int
}

func (r TrainReport) String() string {
	s := fmt.Sprintf("%d steps", len(r.Losses))
	if len(r.Losses) > 0 {
		s += fmt.Sprintf(", training loss %.3f → %.3f", r.Losses[0], r.Losses[len(r.Losses)-1])
	}
	if r.StoppedEarly {
		s += fmt.Sprintf(" (stopped early: rows of step %d kept)", r.KeptStep)
	}
	if r.HeldBefore.Positions > 0 {
		s += fmt.Sprintf("\nheld-out new words:  before %v\n                     after  %v", r.HeldBefore, r.HeldAfter)
	}
	if r.OrdinaryBefore.Positions > 0 {
		s += fmt.Sprintf("\nordinary sentences:  before %v\n                     after  %v (%+.1f points)"+
			"\n                     a trained token on top instead of the answer: %.1f%% → %.1f%% of positions",
			r.OrdinaryBefore, r.OrdinaryAfter, 100*(r.OrdinaryAfter.Accuracy-r.OrdinaryBefore.Accuracy),
			100*r.TakeoverBefore, 100*r.TakeoverAfter)
	}
	return s
}

func (g Guard) check() error {
	switch {
	case g.MixPerBatch < 0:
		return fmt.Errorf("recipes: Guard.MixPerBatch must be >= 0, got %d", g.MixPerBatch)
	case g.MixPerBatch > 0 && len(g.Mix) == 0:
		return fmt.Errorf("recipes: Guard.MixPerBatch is %d but Guard.Mix is empty", g.MixPerBatch)
	case math.IsNaN(g.MaxOrdinaryDrop) || g.MaxOrdinaryDrop < 0 || g.MaxOrdinaryDrop > 1:
		return fmt.Errorf("recipes: Guard.MaxOrdinaryDrop must be in [0, 1], got %v", g.MaxOrdinaryDrop)
	case g.MaxOrdinaryDrop > 0 && len(g.Ordinary) == 0:
		return errors.New("recipes: Guard.MaxOrdinaryDrop needs Guard.Ordinary examples")
	case g.EvalEvery < 0:
		return fmt.Errorf("recipes: Guard.EvalEvery must be >= 0, got %d", g.EvalEvery)
	case g.Patience < 0:
		return fmt.Errorf("recipes: Guard.Patience must be >= 0, got %d", g.Patience)
	}
	return nil
}

var errStopEarly = errors.New("recipes: ordinary accuracy fell below the bound")

// TrainMLMGuarded is TrainMLM with the old vocabulary guarded: it mixes
// guard.Mix into the batches, evaluates guard.Ordinary and guard.Held
// before and after, and stops early as guard.MaxOrdinaryDrop asks.
// TrainOptions.DecayToInit applies as in TrainMLM.
func TrainMLMGuarded(m *bert.ModelForMaskedLM, tm *trainabletokens.Model, examples []finetune.MaskedExample, opts TrainOptions, guard Guard) (TrainReport, error) {
	var rep TrainReport
	if m == nil || tm == nil {
		return rep, errors.New("recipes: model or adapter model is nil")
	}
	if err := guard.check(); err != nil {
		return rep, err
	}
	if err := opts.check(); err != nil {
		return rep, err
	}
	if len(examples) == 0 {
		return rep, errors.New("recipes: no training examples")
	}
	if len(tm.TrainableParams()) == 0 {
		return rep, errors.New("recipes: the adapter model has no trainable rows (no active, unmerged adapter)")
	}
	dec, err := DecoderOf(m)
	if err != nil {
		return rep, err
	}
	all := append(append([]finetune.MaskedExample(nil), examples...), guard.Mix...)
	inner, err := finetune.MaskedLMTask(m, all, tm.LogitsFunc(dec))
	if err != nil {
		return rep, err
	}
	task := inner
	if guard.MixPerBatch > 0 {
		rng := rand.New(rand.NewPCG(opts.Seed^0x6d6978, opts.Seed))
		task = &finetune.Task{Size: len(examples), Model: inner.Model, Loss: func(batch []int) (mat.Tensor, error) {
			b := append([]int(nil), batch...)
			for range guard.MixPerBatch {
				b = append(b, len(examples)+rng.IntN(len(guard.Mix)))
			}
			return inner.Loss(b)
		}}
	}
	taken, err := trainedIDs(tm)
	if err != nil {
		return rep, err
	}
	if rep.OrdinaryBefore, rep.TakeoverBefore, rep.HeldBefore, err = evaluateGuard(m, tm, guard, taken); err != nil {
		return rep, err
	}

	cfg, err := opts.config(tm)
	if err != nil {
		return rep, err
	}
	var bound *bounded
	if guard.MaxOrdinaryDrop > 0 {
		every := guard.EvalEvery
		if every == 0 {
			every = (len(examples) + opts.batchSize() - 1) / opts.batchSize()
		}
		bound = &bounded{params: tm.TrainableParams(), patience: max(guard.Patience, 1)}
		bound.kept = snapshot(bound.params)
		next := cfg.OnStep
		cfg.OnStep = func(s finetune.StepInfo) error {
			if err := next(s); err != nil {
				return err
			}
			bound.last = s.Step
			if s.Step%every != 0 {
				return nil
			}
			return bound.check(m, tm, guard, rep.OrdinaryBefore.Accuracy, s.Step)
		}
	}
	tr, err := finetune.NewTrainer(cfg)
	if err != nil {
		return rep, err
	}
	rep.Losses, err = tr.Train(task)
	if err != nil && !errors.Is(err, errStopEarly) {
		return rep, err
	}
	rep.KeptStep = len(rep.Losses)
	if bound != nil {
		rep.StoppedEarly = err != nil
		if !rep.StoppedEarly && bound.evaluated != bound.last {
			// The last steps were not evaluated yet.
			if err := bound.check(m, tm, guard, rep.OrdinaryBefore.Accuracy, bound.last); err != nil && !errors.Is(err, errStopEarly) {
				return rep, err
			}
		}
		if bound.out > 0 {
			restore(bound.params, bound.kept)
			if err := tm.Sync(); err != nil {
				return rep, err
			}
		}
		rep.KeptStep = bound.keptStep
	}
	if rep.OrdinaryAfter, rep.TakeoverAfter, rep.HeldAfter, err = evaluateGuard(m, tm, guard, taken); err != nil {
		return rep, err
	}
	return rep, nil
}

// evaluateGuard evaluates the guard's sets that are given (empty ones
// give zero values): Ordinary, with the share of its positions the trained
// ids take over, and Held.
func evaluateGuard(m *bert.ModelForMaskedLM, tm *trainabletokens.Model, g Guard, taken map[int]bool) (ordinary Eval, takeover float64, held Eval, err error) {
	if len(g.Ordinary) > 0 {
		if ordinary, takeover, err = evaluateMLM(m, tm, g.Ordinary, taken); err != nil {
			return ordinary, takeover, held, err
		}
	}
	if len(g.Held) > 0 {
		held, err = EvaluateMLM(m, tm, g.Held)
	}
	return ordinary, takeover, held, err
}

// trainedIDs returns the token ids of tm's active adapters.
func trainedIDs(tm *trainabletokens.Model) (map[int]bool, error) {
	out := map[int]bool{}
	for _, name := range tm.Active() {
		cfg, err := tm.Config(name)
		if err != nil {
			return nil, err
		}
		for _, id := range cfg.TokenIndices {
			out[id] = true
		}
	}
	return out, nil
}

// bounded keeps the rows of the last evaluation within the guard's bound.
type bounded struct {
	params    []*nn.Param
	kept      [][]float64
	keptStep  int
	last      int // last step taken
	evaluated int // last step evaluated
	out       int // evaluations out of bounds in a row
	patience  int
}

func (b *bounded) check(m *bert.ModelForMaskedLM, tm *trainabletokens.Model, g Guard, base float64, step int) error {
	b.evaluated = step
	e, err := EvaluateMLM(m, tm, g.Ordinary)
	if err != nil {
		return err
	}
	if base-e.Accuracy > g.MaxOrdinaryDrop {
		b.out++
		if b.out >= b.patience {
			return errStopEarly
		}
		return nil
	}
	b.out = 0
	b.kept, b.keptStep = snapshot(b.params), step
	return nil
}

// snapshot copies the values of params.
func snapshot(params []*nn.Param) [][]float64 {
	out := make([][]float64, len(params))
	for i, p := range params {
		out[i] = rows.Get(p.Matrix, 0, p.Matrix.Size())
	}
	return out
}

// restore writes values taken by snapshot back into params.
func restore(params []*nn.Param, vals [][]float64) {
	for i, p := range params {
		_ = rows.Set(p.Matrix, 0, vals[i])
	}
}

// decayToward moves every element of params the fraction rate of the way
// back to init: x ← x + rate·(init − x).
func decayToward(params []*nn.Param, init [][]float64, rate float64) error {
	for i, p := range params {
		f32, f64, err := rows.Floats(p.Matrix)
		if err != nil {
			return err
		}
		for j, v := range f32 {
			f32[j] = v + float32(rate*(init[i][j]-float64(v)))
		}
		for j, v := range f64 {
			f64[j] = v + rate*(init[i][j]-v)
		}
	}
	return nil
}

// The guard's defaults, used by the main job and the gopeft command: on
// the tiny BERT (lr 0.05, 8 epochs, batch 8, seed 1) they keep masked-word
// accuracy on held-out ordinary sentences within 2 points of the base
// model while every held-out new word is still predicted (README, "The
// old vocabulary").
const (
	DefaultDecayToInit     = 0.05
	DefaultMixPerBatch     = 48
	DefaultMaxOrdinaryDrop = 0.02
)

// EvaluateOrdinary is EvaluateMLM on ordinary examples (MaskEachWord) that
// also returns the share of positions whose top prediction is one of ids
// (the new tokens) while the answer is another token: how far the new
// tokens have taken over the old vocabulary.
func EvaluateOrdinary(m *bert.ModelForMaskedLM, tm *trainabletokens.Model, examples []finetune.MaskedExample, ids []int) (Eval, float64, error) {
	taken := map[int]bool{}
	for _, id := range ids {
		taken[id] = true
	}
	return evaluateMLM(m, tm, examples, taken)
}
