package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gopeft/gopeft/progress"
	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/trainabletokens"
)

// trainFlags are train's options.
type trainFlags struct {
	text, pairs, words, tokens, out, eval string
	lr                                    float64
	epochs, batch                         int
	seed                                  uint64
	holdout                               float64
	// guard
	ordinary, mixFile    string
	decay, maxDrop       float64
	mix                  int
	noGuard              bool
	ordinaryHoldoutShare float64
}

func (f *trainFlags) check() error {
	switch {
	case (f.text == "") == (f.pairs == ""):
		return usagef("give exactly one of --text (masked LM, BERT) or --pairs (seq2seq, BART)")
	case f.epochs < 1:
		return usagef("--epochs must be at least 1, got %d", f.epochs)
	case f.batch < 1:
		return usagef("--batch must be at least 1, got %d", f.batch)
	case !(f.lr > 0) || math.IsInf(f.lr, 0):
		return usagef("--lr must be a positive finite number, got %v", f.lr)
	case !(f.holdout >= 0 && f.holdout < 1):
		return usagef("--holdout must be in [0, 1), got %v", f.holdout)
	case !(f.decay >= 0 && f.decay < 1):
		return usagef("--decay must be in [0, 1), got %v", f.decay)
	case f.mix < 0:
		return usagef("--mix must be >= 0, got %d", f.mix)
	case !(f.maxDrop >= 0 && f.maxDrop <= 1):
		return usagef("--max-drop must be in [0, 1] (0.02 = 2 points), got %v", f.maxDrop)
	}
	return nil
}

// evalFigures is loss and accuracy on one set of examples.
type evalFigures struct {
	Loss      float64 `json:"loss"`
	Accuracy  float64 `json:"accuracy"`
	Positions int     `json:"positions"`
}

func figures(e recipes.Eval) *evalFigures {
	if e.Positions == 0 {
		return nil
	}
	return &evalFigures{Loss: e.Loss, Accuracy: e.Accuracy, Positions: e.Positions}
}

type beforeAfter struct {
	Before *evalFigures `json:"before"`
	After  *evalFigures `json:"after"`
}

type trainResult struct {
	Model        string       `json:"model"`
	Family       string       `json:"family"`
	Task         string       `json:"task"`
	Out          string       `json:"out"`
	Tokens       []int        `json:"tokens"`
	Examples     int          `json:"examples"`
	Steps        int          `json:"steps"`
	FirstLoss    float64      `json:"first_loss"`
	LastLoss     float64      `json:"last_loss"`
	Losses       []float64    `json:"losses"`
	NewWords     *beforeAfter `json:"new_words,omitempty"`
	Ordinary     *beforeAfter `json:"ordinary,omitempty"`
	Takeover     [2]float64   `json:"takeover_before_after"`
	ExactMatch   [2]float64   `json:"exact_match_before_after"`
	HeldPairs    int          `json:"held_out_pairs"`
	StoppedEarly bool         `json:"stopped_early"`
	KeptStep     int          `json:"kept_step"`
	Guard        guardResult  `json:"guard"`
	Notes        []string     `json:"notes,omitempty"`
}

type guardResult struct {
	Decay   float64 `json:"decay"`
	Mix     int     `json:"mix"`
	MaxDrop float64 `json:"max_drop"`
}

func (a *app) trainCmd() *cobra.Command {
	f := &trainFlags{}
	cmd := &cobra.Command{
		Use:   "train MODEL_DIR (--text FILE | --pairs FILE) (--words a,b | --tokens 1,2) --out DIR",
		Short: "Train only the rows of some tokens; save a PEFT adapter",
		Long: `train trains only the embedding rows of the given tokens (words added by add-tokens,
or any token ids) and saves a PEFT Trainable Tokens adapter in --out.

  --text FILE   masked LM (BERT): every occurrence of the tokens is masked and
                predicted; lines without them are ordinary sentences (below).
  --pairs FILE  seq2seq (BART): source/target pairs, tab-separated, or JSON Lines
                {"source": …, "target": …} when the file ends in .jsonl.

Held-out figures: --eval FILE, or a share (--holdout) of the lines or pairs.

The guard (masked LM) keeps the new tokens from taking over the predictions of
ordinary words, which training only new rows otherwise does: masked-word accuracy
on held-out ordinary sentences (--ordinary FILE, or a share of the corpus's own
lines without the tokens, each word masked alone) is reported before and after;
--decay pulls the rows back toward their start after every step; --mix ordinary
examples join every step (from the corpus's lines without the tokens and
--mix-file); --max-drop keeps the last rows within that fall of ordinary
accuracy, checked every epoch. --no-guard trains as PEFT does. For seq2seq only
--decay applies, and only when given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if f.noGuard {
				f.decay, f.mix, f.maxDrop = 0, 0, 0
			}
			m, err := loadModel(args[0])
			if err != nil {
				return err
			}
			switch {
			case f.text != "" && m.family != familyBERT:
				return fmt.Errorf("--text trains a masked LM, which needs a BERT model; %s is a %s model (use --pairs)", m.dir, m.family)
			case f.pairs != "" && m.family != familyBART:
				return fmt.Errorf("--pairs trains seq2seq, which needs a BART model; %s is a %s model (use --text)", m.dir, m.family)
			}
			ids, err := tokenIDs(m, splitList(f.words), f.tokens)
			if err != nil {
				return err
			}
			cleanup, err := outDir(f.out)
			if err != nil {
				return err
			}
			if m.family == familyBART && !cmd.Flags().Changed("decay") {
				// Without a measure of the old vocabulary for seq2seq,
				// no regularisation is applied unless asked for.
				f.decay = 0
			}
			var res trainResult
			if m.family == familyBERT {
				res, err = a.trainMLM(m, ids, f)
			} else {
				res, err = a.trainSeq2Seq(m, ids, f)
			}
			if err != nil {
				cleanup()
				return err
			}
			return a.emit(res, func(w io.Writer) { res.print(w) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.text, "text", "", "masked-LM corpus (BERT): one sentence per line")
	fl.StringVar(&f.pairs, "pairs", "", "seq2seq corpus (BART): source<TAB>target per line, or .jsonl")
	fl.StringVar(&f.words, "words", "", "comma-separated tokens to train, as words (each one token of the model)")
	fl.StringVar(&f.tokens, "tokens", "", "comma-separated token ids to train")
	fl.StringVar(&f.out, "out", "", "new directory for the adapter (required; must not exist or be empty)")
	fl.StringVar(&f.eval, "eval", "", "held-out corpus in the same format (default: --holdout of the corpus)")
	fl.Float64Var(&f.holdout, "holdout", 0.1, "share of the lines/pairs with the tokens held out when there is no --eval")
	fl.Float64Var(&f.lr, "lr", 0.05, "Adam learning rate of the rows")
	fl.IntVar(&f.epochs, "epochs", 8, "passes over the examples (at least 1)")
	fl.IntVar(&f.batch, "batch", 8, "examples with the tokens per step")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the batch order, the hold-out and the mixing")
	fl.StringVar(&f.ordinary, "ordinary", "", "guard: held-out ordinary sentences, one per line (default: a share of the corpus's lines without the tokens)")
	fl.Float64Var(&f.ordinaryHoldoutShare, "ordinary-holdout", 0.3, "guard: share of the corpus's ordinary lines held out when there is no --ordinary")
	fl.StringVar(&f.mixFile, "mix-file", "", "guard: more ordinary sentences to mix into training")
	fl.Float64Var(&f.decay, "decay", recipes.DefaultDecayToInit, "guard: pull the rows this fraction of the way back to their start after every step, in [0, 1)")
	fl.IntVar(&f.mix, "mix", recipes.DefaultMixPerBatch, "guard: ordinary examples (one masked word each) in every step")
	fl.Float64Var(&f.maxDrop, "max-drop", recipes.DefaultMaxOrdinaryDrop, "guard: largest fall of ordinary accuracy kept (0.02 = 2 points; 0: off)")
	fl.BoolVar(&f.noGuard, "no-guard", false, "train as PEFT does: no decay, no mixing, no bound (ordinary sentences are still measured)")
	return cmd
}

// holdOut splits items into training and held-out ones: a seeded share,
// at least one held out when share > 0 and there are at least two items.
func holdOut[T any](items []T, share float64, seed uint64) (train, held []T) {
	n := int(math.Round(share * float64(len(items))))
	if share > 0 && n == 0 && len(items) >= 2 {
		n = 1
	}
	if n >= len(items) {
		n = len(items) - 1
	}
	if n <= 0 {
		return items, nil
	}
	order := rand.New(rand.NewPCG(seed, 0x686f6c64)).Perm(len(items))
	isHeld := map[int]bool{}
	for _, i := range order[:n] {
		isHeld[i] = true
	}
	for i, it := range items {
		if isHeld[i] {
			held = append(held, it)
		} else {
			train = append(train, it)
		}
	}
	return train, held
}

func (a *app) trainMLM(m *model, ids []int, f *trainFlags) (trainResult, error) {
	res := trainResult{Model: m.dir, Family: m.family, Task: "masked-lm", Out: f.out, Tokens: ids,
		Guard: guardResult{Decay: f.decay, Mix: f.mix, MaxDrop: f.maxDrop}}
	lines, err := readLines(f.text)
	if err != nil {
		return res, err
	}
	withIDs, ordinary, err := recipes.SplitLines(m.tok, lines, ids)
	if err != nil {
		return res, err
	}
	if len(withIDs) == 0 {
		return res, fmt.Errorf("%s: no line contains any of the tokens %v", f.text, ids)
	}
	var heldLines []string
	if f.eval != "" {
		if heldLines, err = readLines(f.eval); err != nil {
			return res, err
		}
	} else {
		withIDs, heldLines = holdOut(withIDs, f.holdout, f.seed)
	}
	var ordinaryHeld []string
	if f.ordinary != "" {
		if ordinaryHeld, err = readLines(f.ordinary); err != nil {
			return res, err
		}
	} else {
		ordinary, ordinaryHeld = holdOut(ordinary, f.ordinaryHoldoutShare, f.seed)
	}
	mixLines := ordinary
	if f.mixFile != "" {
		more, err := readLines(f.mixFile)
		if err != nil {
			return res, err
		}
		mixLines = append(append([]string(nil), ordinary...), more...)
	}
	train, err := recipes.MaskOccurrences(m.tok, withIDs, ids)
	if err != nil {
		return res, err
	}
	held, err := recipes.MaskOccurrences(m.tok, heldLines, ids)
	if err != nil {
		return res, err
	}
	ordinaryEx, err := recipes.MaskEachWord(m.tok, ordinaryHeld, ids)
	if err != nil {
		return res, err
	}
	guard := recipes.Guard{Ordinary: ordinaryEx, Held: held, MaxOrdinaryDrop: f.maxDrop, Patience: f.epochs}
	if f.mix > 0 {
		if guard.Mix, err = recipes.MaskEachWord(m.tok, mixLines, ids); err != nil {
			return res, err
		}
		if len(guard.Mix) > 0 {
			guard.MixPerBatch = f.mix
		} else {
			res.Guard.Mix = 0
			res.Notes = append(res.Notes, "no ordinary sentence to mix in (add lines without the tokens, or --mix-file): --mix is off")
		}
	}
	if len(ordinaryEx) == 0 {
		res.Notes = append(res.Notes, "no held-out ordinary sentence (add lines without the tokens, or --ordinary): the old vocabulary is not measured and --max-drop is off")
		guard.MaxOrdinaryDrop, res.Guard.MaxDrop = 0, 0
	}
	if len(held) == 0 {
		res.Notes = append(res.Notes, "no held-out sentence with the tokens (--eval, or --holdout with more lines)")
	}
	res.Examples = len(train)
	tm, err := trainabletokens.New(m.bert, trainabletokens.Config{TokenIndices: ids}, "")
	if err != nil {
		return res, err
	}
	p := a.newProgress(f.epochs * ((len(train) + f.batch - 1) / f.batch))
	rep, err := recipes.TrainMLMGuarded(m.bert, tm, train, recipes.TrainOptions{
		Epochs: f.epochs, BatchSize: f.batch, LR: f.lr, Seed: f.seed, DecayToInit: f.decay,
		OnStep: p.Step,
	}, guard)
	p.Finish()
	if err != nil {
		return res, err
	}
	res.setLosses(rep.Losses)
	res.NewWords = &beforeAfter{figures(rep.HeldBefore), figures(rep.HeldAfter)}
	res.Ordinary = &beforeAfter{figures(rep.OrdinaryBefore), figures(rep.OrdinaryAfter)}
	res.Takeover = [2]float64{rep.TakeoverBefore, rep.TakeoverAfter}
	res.StoppedEarly, res.KeptStep = rep.StoppedEarly, rep.KeptStep
	return res, tm.Save(f.out, "", trainabletokens.SaveOptions{BaseModelNameOrPath: m.dir})
}

func (a *app) trainSeq2Seq(m *model, ids []int, f *trainFlags) (trainResult, error) {
	res := trainResult{Model: m.dir, Family: m.family, Task: "seq2seq", Out: f.out, Tokens: ids,
		Guard: guardResult{Decay: f.decay}}
	if f.ordinary != "" || f.mixFile != "" || (f.mix > 0 && f.mix != recipes.DefaultMixPerBatch) {
		return res, usagef("--ordinary, --mix and --mix-file are for masked-LM training (--text)")
	}
	pairs, err := readPairs(f.pairs)
	if err != nil {
		return res, err
	}
	var held [][2]string
	if f.eval != "" {
		if held, err = readPairs(f.eval); err != nil {
			return res, err
		}
	} else {
		pairs, held = holdOut(pairs, f.holdout, f.seed)
	}
	train, err := recipes.Seq2SeqExamples(m.tok, pairs)
	if err != nil {
		return res, err
	}
	used := false
	for _, ex := range train {
		for _, t := range append(append([]int(nil), ex.Source...), ex.Target...) {
			used = used || contains(ids, t)
		}
	}
	if !used {
		return res, fmt.Errorf("%s: no pair contains any of the tokens %v", f.pairs, ids)
	}
	res.Examples = len(train)
	tm, err := trainabletokens.New(m.bart, trainabletokens.Config{TokenIndices: ids}, "")
	if err != nil {
		return res, err
	}
	res.HeldPairs = len(held)
	if res.ExactMatch[0], err = exactMatch(m, tm, held); err != nil {
		return res, err
	}
	p := a.newProgress(f.epochs * ((len(train) + f.batch - 1) / f.batch))
	losses, err := recipes.TrainSeq2Seq(m.bart, tm, train, recipes.TrainOptions{
		Epochs: f.epochs, BatchSize: f.batch, LR: f.lr, Seed: f.seed, DecayToInit: f.decay,
		OnStep: p.Step,
	})
	p.Finish()
	if err != nil {
		return res, err
	}
	res.setLosses(losses)
	res.KeptStep = len(losses)
	if res.ExactMatch[1], err = exactMatch(m, tm, held); err != nil {
		return res, err
	}
	return res, tm.Save(f.out, "", trainabletokens.SaveOptions{BaseModelNameOrPath: m.dir})
}

// newProgress reports training on stderr unless --quiet (a nil *Bar
// reports nothing).
func (a *app) newProgress(total int) *progress.Bar {
	if a.quiet {
		return nil
	}
	return progress.New(a.stderr, total)
}

func contains(ids []int, id int) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// exactMatch is the share of pairs whose greedy generation equals the
// target (spaces normalised).
func exactMatch(m *model, tm *trainabletokens.Model, pairs [][2]string) (float64, error) {
	if len(pairs) == 0 {
		return 0, nil
	}
	ok := 0
	for _, p := range pairs {
		got, err := recipes.Generate(m.bart, tm, m.tok, p[0])
		if err != nil {
			return 0, err
		}
		if strings.Join(strings.Fields(got), " ") == strings.Join(strings.Fields(p[1]), " ") {
			ok++
		}
	}
	return float64(ok) / float64(len(pairs)), nil
}

func (r *trainResult) setLosses(losses []float64) {
	r.Losses, r.Steps = losses, len(losses)
	if len(losses) > 0 {
		r.FirstLoss, r.LastLoss = losses[0], losses[len(losses)-1]
	}
}

func (r trainResult) print(w io.Writer) {
	fmt.Fprintf(w, "trained %d tokens %v of %s (%s, %d examples): %d steps, loss %.4f → %.4f\n",
		len(r.Tokens), r.Tokens, r.Model, r.Task, r.Examples, r.Steps, r.FirstLoss, r.LastLoss)
	pr := func(name string, ba *beforeAfter) {
		if ba == nil || ba.Before == nil {
			return
		}
		fmt.Fprintf(w, "%-22s accuracy %5.1f%% → %5.1f%% (%+.1f points), loss %.4f → %.4f, %d masked tokens\n", name,
			100*ba.Before.Accuracy, 100*ba.After.Accuracy, 100*(ba.After.Accuracy-ba.Before.Accuracy), ba.Before.Loss, ba.After.Loss, ba.After.Positions)
	}
	pr("held-out new words:", r.NewWords)
	pr("held-out ordinary:", r.Ordinary)
	if r.Ordinary != nil && r.Ordinary.Before != nil {
		fmt.Fprintf(w, "a trained token tops %.1f%% of ordinary positions (before: %.1f%%)\n", 100*r.Takeover[1], 100*r.Takeover[0])
	}
	if r.Task == "seq2seq" && r.HeldPairs > 0 {
		fmt.Fprintf(w, "held-out pairs, exact greedy match: %.1f%% → %.1f%% of %d\n", 100*r.ExactMatch[0], 100*r.ExactMatch[1], r.HeldPairs)
	}
	fmt.Fprintf(w, "guard: decay %.2f, mix %d, max drop %.1f points", r.Guard.Decay, r.Guard.Mix, 100*r.Guard.MaxDrop)
	if r.StoppedEarly || (r.KeptStep != r.Steps) {
		fmt.Fprintf(w, "; rows of step %d kept", r.KeptStep)
	}
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	fmt.Fprintf(w, "adapter: %s\n", r.Out)
}
