// Command newtokens is gopeft's main job: it adds new words to a cybertron
// BERT, trains only their embedding rows (Trainable Tokens), and shows what
// was learned. With no flags it runs on the embedded tiny BERT and corpus:
//
//	go run ./examples/newtokens
//
// Steps: add the words (newtokens), inject an adapter on their rows
// (trainabletokens), evaluate, train with the tied MLM decoder following the
// rows (finetune through recipes), evaluate again, save the adapter in PEFT's
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

	"github.com/gopeft/gopeft"
	"github.com/gopeft/gopeft/examples/notebookutil"
	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/atomicfile"
	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/trainabletokens"
)

type options struct {
	modelDir, trainFile, evalFile, tokens, outDir, prompts string
	epochs, batch                                          int
	lr                                                     float64
	seed                                                   uint64
	quiet                                                  bool
}

func main() {
	var o options
	flag.StringVar(&o.modelDir, "model", "", "cybertron or Hugging Face BERT masked-LM directory (default: the embedded tiny BERT)")
	flag.StringVar(&o.trainFile, "train", "", "training corpus, one sentence per line (default: the embedded mlm_train.txt)")
	flag.StringVar(&o.evalFile, "eval", "", "held-out corpus, one sentence per line (default: the embedded mlm_eval.txt)")
	flag.StringVar(&o.tokens, "tokens", "", "comma-separated words to add (default: the embedded new_tokens.txt)")
	flag.StringVar(&o.prompts, "prompts", "", "'|'-separated sentences with one [MASK] to show top predictions for (default: built from the new words)")
	flag.StringVar(&o.outDir, "out", "out", "output folder")
	flag.IntVar(&o.epochs, "epochs", 8, "passes over the training corpus")
	flag.IntVar(&o.batch, "batch", 8, "sentences per step")
	flag.Float64Var(&o.lr, "lr", 0.05, "Adam learning rate of the token rows")
	flag.Uint64Var(&o.seed, "seed", 1, "batch shuffling seed")
	flag.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "newtokens:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	start := time.Now()
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	baseDir, err := baseModelDir(o)
	if err != nil {
		return err
	}
	words, train, eval, err := inputs(o)
	if err != nil {
		return err
	}

	// 1. Load the model and its tokenizer, add the words.
	m, err := models.LoadBERT(baseDir)
	if err != nil {
		return err
	}
	tok, err := newtokens.LoadTokenizer(baseDir)
	if err != nil {
		return err
	}
	added, err := newtokens.AddTokens(m, tok, words, nil)
	if err != nil {
		return err
	}
	fmt.Printf("model %s: vocabulary %d → %d, new ids %v (rows initialised to the mean row)\n",
		baseDir, added.OldVocabSize, added.NewVocabSize, added.IDs)
	// The grown base (new rows at their initial values) is what an adapter
	// applies to: save it so a fresh copy can be loaded later.
	grownDir := filepath.Join(o.outDir, "base-with-tokens")
	if err := saveModelDir(m, tok, baseDir, grownDir); err != nil {
		return err
	}

	// 2. Masked-LM examples: every occurrence of a new word is masked.
	trainEx, err := recipes.MaskOccurrences(tok, train, added.IDs)
	if err != nil {
		return err
	}
	evalEx, err := recipes.MaskOccurrences(tok, eval, added.IDs)
	if err != nil {
		return err
	}
	if len(trainEx) == 0 {
		return errors.New("no training sentence contains a new word")
	}
	fmt.Printf("corpus: %d training sentences with new words (of %d), %d held-out\n", len(trainEx), len(train), len(evalEx))

	// 3. The adapter: only the new rows train; the decoder follows them.
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: added.IDs}, "")
	if err != nil {
		return err
	}
	rep, err := tm.Report()
	if err != nil {
		return err
	}
	fmt.Print(rep)

	prompts := promptList(o, words)
	before, err := recipes.EvaluateMLM(m, tm, evalEx)
	if err != nil {
		return err
	}
	beforeTop, err := topAll(m, tm, tok, prompts)
	if err != nil {
		return err
	}

	// 4. Train.
	trainStart := time.Now()
	losses, err := recipes.TrainMLM(m, tm, trainEx, recipes.TrainOptions{
		Epochs: o.epochs, BatchSize: o.batch, LR: o.lr, Seed: o.seed, Quiet: o.quiet,
	})
	if err != nil {
		return err
	}
	trainTime := time.Since(trainStart)
	after, err := recipes.EvaluateMLM(m, tm, evalEx)
	if err != nil {
		return err
	}
	afterTop, err := topAll(m, tm, tok, prompts)
	if err != nil {
		return err
	}
	fmt.Printf("\ntrained %d steps in %.1fs (%.1f ms/step), training loss %.3f → %.3f\n",
		len(losses), trainTime.Seconds(), 1000*trainTime.Seconds()/float64(len(losses)), losses[0], losses[len(losses)-1])
	fmt.Printf("held-out masked new words: before %v\n", before)
	fmt.Printf("                           after  %v\n", after)
	for i, p := range prompts {
		fmt.Printf("\n%q\n  before: %s\n  after:  %s\n", p, beforeTop[i], afterTop[i])
	}

	// 5. Save the adapter (PEFT layout), reload it into a fresh base.
	adapterDir := filepath.Join(o.outDir, "adapter")
	if err := tm.Save(adapterDir, "", trainabletokens.SaveOptions{BaseModelNameOrPath: baseDir}); err != nil {
		return err
	}
	fresh, err := models.LoadBERT(grownDir)
	if err != nil {
		return err
	}
	reloaded, err := trainabletokens.Load(fresh, adapterDir, "")
	if err != nil {
		return err
	}
	same, err := samePredictions(m, tm, fresh, reloaded, evalEx)
	if err != nil {
		return err
	}
	fmt.Printf("\nadapter reloaded into a fresh copy of the base: predictions identical bit for bit: %v\n", same)
	if !same {
		return errors.New("reloaded adapter predicts differently")
	}

	// 6. Merge into a plain cybertron model and save it.
	plain, err := tm.MergeAndUnload(true)
	if err != nil {
		return err
	}
	mergedDir := filepath.Join(o.outDir, "merged")
	if err := saveModelDir(plain, tok, baseDir, mergedDir); err != nil {
		return err
	}
	merged, err := models.LoadBERT(mergedDir)
	if err != nil {
		return err
	}
	mergedEval, err := recipes.EvaluateMLM(merged, nil, evalEx)
	if err != nil {
		return err
	}
	fmt.Printf("merged model reloaded from disk: %v\n", mergedEval)
	if math.Abs(mergedEval.Loss-after.Loss) > 1e-6 {
		return fmt.Errorf("merged model loss %.6f differs from the adapter's %.6f", mergedEval.Loss, after.Loss)
	}

	// 7. The loss curve.
	png, err := notebookutil.LossCurvePNG(losses, 640, 360)
	if err != nil {
		return err
	}
	pngPath := filepath.Join(o.outDir, "loss.png")
	if err := writeAtomic(pngPath, png); err != nil {
		return err
	}
	fmt.Printf("\noutputs:\n  adapter      %s\n  merged model %s\n  loss curve   %s\n  grown base   %s\ntotal %.1fs\n",
		adapterDir, mergedDir, pngPath, grownDir, time.Since(start).Seconds())
	return nil
}

// baseModelDir returns the model directory to start from: the user's, or
// the embedded tiny BERT written under out/.
func baseModelDir(o options) (string, error) {
	if o.modelDir != "" {
		return o.modelDir, nil
	}
	return models.Tiny("bert-tiny", filepath.Join(o.outDir, "tiny"))
}

func inputs(o options) (words, train, eval []string, err error) {
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
			words = append(words, strings.TrimSpace(w))
		}
	} else if words, err = gopeft.CorpusLines("new_tokens.txt"); err != nil {
		return
	}
	if train, err = read(o.trainFile, "mlm_train.txt"); err != nil {
		return
	}
	eval, err = read(o.evalFile, "mlm_eval.txt")
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
