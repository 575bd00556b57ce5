// Command newtokens is gopeft's main job: it adds new words to a cybertron
// BERT, trains only their embedding rows (Trainable Tokens), and shows what
// was learned. With no flags it runs on the embedded tiny BERT and corpus:
//
//	go run ./examples/newtokens
//
// Steps: add the words (newtokens), inject an adapter on their rows
// (trainabletokens), evaluate, train with the tied MLM decoder following the
// rows (finetune through recipes) with the old vocabulary guarded (decay
// toward the initial rows, ordinary sentences mixed into every step, and
// masked-word accuracy on held-out ordinary sentences kept within 2 points;
// -no-guard trains as PEFT does), evaluate again, save the adapter in PEFT's
// layout, reload it into a fresh copy of the base and check the predictions
// are identical, merge it into a plain cybertron model and save that, and
// write the loss curve as a PNG. Outputs go under -out (default ./out).
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/rs/zerolog"

	"github.com/gopeft/gopeft"
	"github.com/gopeft/gopeft/examples/notebookutil"
	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/atomicfile"
	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/progress"
	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/trainabletokens"
)

type options struct {
	modelDir, trainFile, evalFile, tokens, outDir, prompts string
	epochs, batch                                          int
	lr                                                     float64
	seed                                                   uint64
	quiet                                                  bool

	// The old-vocabulary guard (recipes.Guard).
	ordinaryFile, mixFile string
	decay, maxDrop        float64
	mix                   int
	noGuard               bool
}

// defaultOptions are the flags' defaults (the README's main job).
func defaultOptions() options {
	return options{
		outDir: "out", epochs: 8, batch: 8, lr: 0.05, seed: 1,
		decay: recipes.DefaultDecayToInit, mix: recipes.DefaultMixPerBatch, maxDrop: recipes.DefaultMaxOrdinaryDrop,
	}
}

func main() {
	o := defaultOptions()
	// cybertron's converter reports unmapped parameters through zerolog at
	// debug level; this program (not the library) chooses to keep it quiet.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	flag.StringVar(&o.modelDir, "model", "", "cybertron or Hugging Face BERT masked-LM directory (default: the embedded tiny BERT)")
	flag.StringVar(&o.trainFile, "train", "", "training corpus, one sentence per line (default: the embedded mlm_train.txt)")
	flag.StringVar(&o.evalFile, "eval", "", "held-out corpus, one sentence per line (default: the embedded mlm_eval.txt)")
	flag.StringVar(&o.tokens, "tokens", "", "comma-separated words to add (default: the embedded new_tokens.txt)")
	flag.StringVar(&o.prompts, "prompts", "", "'|'-separated sentences with one [MASK] to show top predictions for (default: built from the new words)")
	flag.StringVar(&o.outDir, "out", o.outDir, "output folder")
	flag.IntVar(&o.epochs, "epochs", o.epochs, "passes over the training corpus (at least 1)")
	flag.IntVar(&o.batch, "batch", o.batch, "sentences with new words per step")
	flag.Float64Var(&o.lr, "lr", o.lr, "Adam learning rate of the token rows")
	flag.Uint64Var(&o.seed, "seed", o.seed, "batch shuffling seed")
	flag.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	flag.StringVar(&o.ordinaryFile, "ordinary", "", "held-out ordinary sentences (no new word), one per line, each word masked alone to measure the old vocabulary (default: the embedded mlm_ordinary_eval.txt)")
	flag.StringVar(&o.mixFile, "mix-file", "", "ordinary sentences to mix into training, with the training corpus's own lines without new words (default: the embedded mlm_ordinary_train.txt)")
	flag.Float64Var(&o.decay, "decay", o.decay, "guard: pull the trained rows this fraction of the way back to their initial values after every step, in [0, 1)")
	flag.IntVar(&o.mix, "mix", o.mix, "guard: ordinary examples (one masked word each) mixed into every step")
	flag.Float64Var(&o.maxDrop, "max-drop", o.maxDrop, "guard: largest fall of ordinary-sentence accuracy (0.02 = 2 points) kept; beyond it the rows of the last evaluation within it are restored (0: off)")
	flag.BoolVar(&o.noGuard, "no-guard", false, "train as PEFT does: no decay, no mixing, no bound (the ordinary sentences are still measured)")
	flag.Parse()
	if _, err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "newtokens:", err)
		os.Exit(1)
	}
}

// result is what the main job measured (its test checks these).
type result struct {
	report recipes.TrainReport
	outDir string
}

func (o options) check() error {
	switch {
	case o.epochs < 1:
		return fmt.Errorf("-epochs must be at least 1, got %d", o.epochs)
	case o.batch < 1:
		return fmt.Errorf("-batch must be at least 1, got %d", o.batch)
	case !(o.lr > 0) || math.IsInf(o.lr, 0):
		return fmt.Errorf("-lr must be a positive finite number, got %v", o.lr)
	case !(o.decay >= 0 && o.decay < 1):
		return fmt.Errorf("-decay must be in [0, 1), got %v", o.decay)
	case o.mix < 0:
		return fmt.Errorf("-mix must be >= 0, got %d", o.mix)
	case !(o.maxDrop >= 0 && o.maxDrop <= 1):
		return fmt.Errorf("-max-drop must be in [0, 1], got %v", o.maxDrop)
	case o.outDir == "":
		return errors.New("-out must name a folder")
	}
	return nil
}

func run(o options) (result, error) {
	res := result{outDir: o.outDir}
	if err := o.check(); err != nil {
		return res, err
	}
	if o.noGuard {
		o.decay, o.mix, o.maxDrop = 0, 0, 0
	}
	start := time.Now()
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return res, err
	}
	baseDir, err := baseModelDir(o)
	if err != nil {
		return res, err
	}
	in, err := inputs(o)
	if err != nil {
		return res, err
	}

	// 1. Load the model and its tokenizer, add the words.
	m, err := models.LoadBERT(baseDir)
	if err != nil {
		return res, err
	}
	tok, err := newtokens.LoadTokenizer(baseDir)
	if err != nil {
		return res, err
	}
	added, err := newtokens.AddTokens(m, tok, in.words, nil)
	if err != nil {
		return res, err
	}
	fmt.Printf("model %s: vocabulary %d → %d, new ids %v (rows initialised to the mean row)\n",
		baseDir, added.OldVocabSize, added.NewVocabSize, added.IDs)
	// The grown base (new rows at their initial values) is what an adapter
	// applies to: save it so a fresh copy can be loaded later.
	grownDir := filepath.Join(o.outDir, "base-with-tokens")
	if err := saveModelDir(m, tok, baseDir, grownDir); err != nil {
		return res, err
	}

	// 2. Masked-LM examples: every occurrence of a new word is masked. The
	// guard's ordinary sentences have each word masked alone.
	trainEx, err := recipes.MaskOccurrences(tok, in.train, added.IDs)
	if err != nil {
		return res, err
	}
	evalEx, err := recipes.MaskOccurrences(tok, in.eval, added.IDs)
	if err != nil {
		return res, err
	}
	if len(trainEx) == 0 {
		return res, errors.New("no training sentence contains a new word")
	}
	_, trainOrdinary, err := recipes.SplitLines(tok, in.train, added.IDs)
	if err != nil {
		return res, err
	}
	ordinaryEx, err := recipes.MaskEachWord(tok, in.ordinary, added.IDs)
	if err != nil {
		return res, err
	}
	var mixEx []finetune.MaskedExample
	if o.mix > 0 {
		if mixEx, err = recipes.MaskEachWord(tok, append(append([]string(nil), in.mix...), trainOrdinary...), added.IDs); err != nil {
			return res, err
		}
		if len(mixEx) == 0 {
			return res, errors.New("-mix is set but there is no ordinary sentence to mix in (-mix-file and the training corpus's lines without new words)")
		}
	}
	if o.maxDrop > 0 && len(ordinaryEx) == 0 {
		return res, errors.New("-max-drop is set but -ordinary has no sentence without a new word")
	}
	fmt.Printf("corpus: %d training sentences with new words (of %d), %d held-out; %d held-out ordinary sentences (%d masked words); %d ordinary examples to mix in\n",
		len(trainEx), len(in.train), len(evalEx), len(in.ordinary), len(ordinaryEx), len(mixEx))

	// 3. The adapter: only the new rows train; the decoder follows them.
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: added.IDs}, "")
	if err != nil {
		return res, err
	}
	rep, err := tm.Report()
	if err != nil {
		return res, err
	}
	fmt.Print(rep)

	prompts := promptList(o, in.words)
	beforeTop, err := topAll(m, tm, tok, prompts)
	if err != nil {
		return res, err
	}

	// 4. Train, with the old vocabulary guarded.
	if o.noGuard {
		fmt.Println("guard: off (as PEFT trains)")
	} else {
		fmt.Printf("guard: decay toward the initial rows %.2f per step, %d ordinary examples in every step, ordinary accuracy kept within %.1f points\n",
			o.decay, o.mix, 100*o.maxDrop)
	}
	trainStart := time.Now()
	var bar *progress.Bar
	if !o.quiet {
		bar = progress.New(os.Stderr, o.epochs*((len(trainEx)+o.batch-1)/o.batch))
	}
	guard := recipes.Guard{Ordinary: ordinaryEx, Held: evalEx, MaxOrdinaryDrop: o.maxDrop, Patience: o.epochs}
	if o.mix > 0 {
		guard.Mix, guard.MixPerBatch = mixEx, o.mix
	}
	tr, err := recipes.TrainMLMGuarded(m, tm, trainEx, recipes.TrainOptions{
		Epochs: o.epochs, BatchSize: o.batch, LR: o.lr, Seed: o.seed, DecayToInit: o.decay, OnStep: bar.Step,
	}, guard)
	bar.Finish()
	if err != nil {
		return res, err
	}
	res.report = tr
	losses := tr.Losses
	trainTime := time.Since(trainStart)
	after := tr.HeldAfter
	afterTop, err := topAll(m, tm, tok, prompts)
	if err != nil {
		return res, err
	}
	fmt.Printf("\ntrained %d steps in %.1fs (%.1f ms/step, ordinary-sentence checks included)\n%v\n",
		len(losses), trainTime.Seconds(), 1000*trainTime.Seconds()/float64(len(losses)), tr)
	fmt.Printf("\nnew words, held-out accuracy:        %5.1f%% (before %.1f%%)\n", 100*tr.HeldAfter.Accuracy, 100*tr.HeldBefore.Accuracy)
	fmt.Printf("ordinary sentences, held-out accuracy: %5.1f%% (base model %.1f%%, %+.1f points)\n",
		100*tr.OrdinaryAfter.Accuracy, 100*tr.OrdinaryBefore.Accuracy, 100*(tr.OrdinaryAfter.Accuracy-tr.OrdinaryBefore.Accuracy))
	for i, p := range prompts {
		fmt.Printf("\n%q\n  before: %s\n  after:  %s\n", p, beforeTop[i], afterTop[i])
	}

	// 5. Save the adapter (PEFT layout), reload it into a fresh base.
	// For PyTorch: base_model_name_or_path is the base as it was (absolute,
	// so AutoPeftModel finds it from anywhere), and the tokenizer files with
	// the added tokens sit next to the adapter, so AutoPeftModel resizes the
	// base to the new vocabulary before applying the rows (README "Take it
	// to PyTorch").
	adapterDir := filepath.Join(o.outDir, "adapter")
	absBase, err := filepath.Abs(baseDir)
	if err != nil {
		return res, err
	}
	if err := tm.Save(adapterDir, "", trainabletokens.SaveOptions{BaseModelNameOrPath: absBase}); err != nil {
		return res, err
	}
	if err := newtokens.WriteTokenizerFiles(adapterDir, tok, baseDir); err != nil {
		return res, err
	}
	fresh, err := models.LoadBERT(grownDir)
	if err != nil {
		return res, err
	}
	reloaded, err := trainabletokens.Load(fresh, adapterDir, "")
	if err != nil {
		return res, err
	}
	same, err := samePredictions(m, tm, fresh, reloaded, evalEx)
	if err != nil {
		return res, err
	}
	fmt.Printf("\nadapter reloaded into a fresh copy of the base: predictions identical bit for bit: %v\n", same)
	if !same {
		return res, errors.New("reloaded adapter predicts differently")
	}

	// 6. Merge into a plain cybertron model and save it.
	plain, err := tm.MergeAndUnload(true)
	if err != nil {
		return res, err
	}
	mergedDir := filepath.Join(o.outDir, "merged")
	if err := saveModelDir(plain, tok, baseDir, mergedDir); err != nil {
		return res, err
	}
	merged, err := models.LoadBERT(mergedDir)
	if err != nil {
		return res, err
	}
	mergedEval, err := recipes.EvaluateMLM(merged, nil, evalEx)
	if err != nil {
		return res, err
	}
	fmt.Printf("merged model reloaded from disk: %v\n", mergedEval)
	if math.Abs(mergedEval.Loss-after.Loss) > 1e-6 {
		return res, fmt.Errorf("merged model loss %.6f differs from the adapter's %.6f", mergedEval.Loss, after.Loss)
	}

	// 7. The loss curve.
	png, err := notebookutil.LossCurvePNG(losses, 640, 360)
	if err != nil {
		return res, err
	}
	pngPath := filepath.Join(o.outDir, "loss.png")
	if err := writeAtomic(pngPath, png); err != nil {
		return res, err
	}
	fmt.Printf("\noutputs:\n  adapter      %s\n  merged model %s\n  loss curve   %s\n  grown base   %s\ntotal %.1fs\n",
		adapterDir, mergedDir, pngPath, grownDir, time.Since(start).Seconds())
	return res, nil
}

// baseModelDir returns the model directory to start from: the user's, or
// the embedded tiny BERT written under out/.
func baseModelDir(o options) (string, error) {
	if o.modelDir != "" {
		return o.modelDir, nil
	}
	return models.Tiny("bert-tiny", filepath.Join(o.outDir, "tiny"))
}

type corpora struct {
	words, train, eval, ordinary, mix []string
}

func inputs(o options) (c corpora, err error) {
	read := func(file, embedded string) ([]string, error) {
		if file == "" {
			return gopeft.CorpusLines(embedded)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, l := range strings.Split(string(data), "\n") {
			if strings.TrimSpace(l) != "" {
				out = append(out, strings.TrimSpace(l))
			}
		}
		return out, nil
	}
	if o.tokens != "" {
		for _, w := range strings.Split(o.tokens, ",") {
			c.words = append(c.words, strings.TrimSpace(w))
		}
	} else if c.words, err = gopeft.CorpusLines("new_tokens.txt"); err != nil {
		return
	}
	if c.train, err = read(o.trainFile, "mlm_train.txt"); err != nil {
		return
	}
	if c.eval, err = read(o.evalFile, "mlm_eval.txt"); err != nil {
		return
	}
	if c.ordinary, err = read(o.ordinaryFile, "mlm_ordinary_eval.txt"); err != nil {
		return
	}
	c.mix, err = read(o.mixFile, "mlm_ordinary_train.txt")
	return
}

func promptList(o options, words []string) []string {
	if o.prompts != "" {
		return strings.Split(o.prompts, "|")
	}
	return []string{
		"is the [MASK] red ? yes , it is red .",
		"i saw a blue [MASK] on the table .",
		"a sweet [MASK] is made with sugar .",
		"the [MASK] sings in the morning .",
	}
}

func topAll(m *bert.ModelForMaskedLM, tm *trainabletokens.Model, tok *newtokens.Tokenizer, prompts []string) ([]string, error) {
	var out []string
	for _, p := range prompts {
		preds, err := recipes.TopPredictions(m, tm, tok, p, 3)
		if err != nil {
			return nil, err
		}
		var parts []string
		for _, pr := range preds {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", pr.Token, 100*pr.Probability))
		}
		out = append(out, strings.Join(parts, ", "))
	}
	return out, nil
}

// samePredictions compares cybertron's inference logits of two adapter
// models on every example, bit for bit.
func samePredictions(a *bert.ModelForMaskedLM, ta *trainabletokens.Model, b *bert.ModelForMaskedLM, tb *trainabletokens.Model, examples []finetune.MaskedExample) (bool, error) {
	for _, ex := range examples {
		var pa, pb map[int][]float64
		if err := ta.Do(func() error { pa = logits(a, ex.Tokens); return nil }); err != nil {
			return false, err
		}
		if err := tb.Do(func() error { pb = logits(b, ex.Tokens); return nil }); err != nil {
			return false, err
		}
		for pos, x := range pa {
			y := pb[pos]
			if len(x) != len(y) {
				return false, nil
			}
			for i := range x {
				if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
					return false, nil
				}
			}
		}
	}
	return true, nil
}

func logits(m *bert.ModelForMaskedLM, tokens []string) map[int][]float64 {
	out := map[int][]float64{}
	for pos, y := range m.Predict(tokens) {
		out[pos] = y.Value().(mat.Matrix).Data().F64()
	}
	return out
}

// saveModelDir writes a cybertron model directory: the source's config and
// tokenizer config, the vocabulary with the added words, spago_model.bin.
func saveModelDir(m nn.Model, tok *newtokens.Tokenizer, srcDir, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"config.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(filepath.Join(srcDir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := writeAtomic(filepath.Join(dst, f), data); err != nil {
			return err
		}
	}
	if err := newtokens.WriteVocabFiles(dst, tok); err != nil {
		return err
	}
	return models.Save(m, dst)
}

// writeAtomic writes through the project's one atomic writer (a temporary
// file in the same directory, fsync, rename, fsync of the directory); a
// program outside this module would use github.com/google/renameio/v2.
func writeAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o644)
}
