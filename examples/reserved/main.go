// Command reserved adds new words to a BERT without growing its vocabulary:
// the words take reserved [unusedN] slots, only their rows train (Trainable
// Tokens), and the adapter then loads into the unchanged base checkpoint —
// no resize, no tokenizer or bias mismatch — where it predicts exactly what
// the trained model predicts. With no flags it runs on the embedded tiny
// BERT and corpus:
//
//	go run ./examples/reserved
//
// Outputs go under -out (default ./out/reserved): the adapter (PEFT
// layout) and the vocabulary files with the words in their slots.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"

	"github.com/gopeft/gopeft"
	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/progress"
	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/trainabletokens"
)

type options struct {
	outDir string
	epochs int
	quiet  bool
}

func main() {
	o := options{}
	flag.StringVar(&o.outDir, "out", filepath.Join("out", "reserved"), "output folder")
	flag.IntVar(&o.epochs, "epochs", 8, "passes over the training corpus")
	flag.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	flag.Parse()
	if err := run(os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "reserved:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, o options) error {
	if o.epochs < 1 {
		return fmt.Errorf("-epochs %d: expected at least 1", o.epochs)
	}
	baseDir, err := models.Tiny("bert-tiny", filepath.Join(o.outDir, "tiny"))
	if err != nil {
		return err
	}
	words, err := gopeft.CorpusLines("new_tokens.txt")
	if err != nil {
		return err
	}
	train, err := gopeft.CorpusLines("mlm_train.txt")
	if err != nil {
		return err
	}
	eval, err := gopeft.CorpusLines("mlm_eval.txt")
	if err != nil {
		return err
	}

	// 1. The words take reserved slots: nothing grows.
	m, err := models.LoadBERT(baseDir)
	if err != nil {
		return err
	}
	tok, err := newtokens.LoadTokenizer(baseDir)
	if err != nil {
		return err
	}
	free, err := newtokens.ReservedSlots(m, tok)
	if err != nil {
		return err
	}
	res, err := newtokens.AddTokens(m, tok, words, &newtokens.Options{Reserved: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d reserved slots free; vocabulary stays at %d rows\n", len(free), res.NewVocabSize)
	for _, pt := range res.PerToken {
		fmt.Fprintf(w, "  %-8s -> id %d (was %s)\n", pt.Content, pt.ID, pt.Replaced)
	}
	vocabDir := filepath.Join(o.outDir, "vocab")
	if err := newtokens.WriteVocabFiles(vocabDir, tok); err != nil {
		return err
	}
	line, err := vocabLine(filepath.Join(vocabDir, "vocab.txt"), res.IDs[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "vocab.txt line %d now reads %q\n", res.IDs[0]+1, line)

	// 2. A plain Trainable Tokens adapter on the slot ids; train it.
	trainEx, err := recipes.MaskOccurrences(tok, train, res.IDs)
	if err != nil {
		return err
	}
	evalEx, err := recipes.MaskOccurrences(tok, eval, res.IDs)
	if err != nil {
		return err
	}
	if len(trainEx) == 0 || len(evalEx) == 0 {
		return errors.New("the corpus has no sentence with a new word")
	}
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: res.IDs}, "")
	if err != nil {
		return err
	}
	before, err := recipes.EvaluateMLM(m, tm, evalEx)
	if err != nil {
		return err
	}
	var bar *progress.Bar
	if !o.quiet {
		bar = progress.New(os.Stderr, o.epochs*((len(trainEx)+7)/8))
	}
	losses, err := recipes.TrainMLM(m, tm, trainEx, recipes.TrainOptions{Epochs: o.epochs, BatchSize: 8, LR: 0.05, Seed: 1, OnStep: bar.Step})
	bar.Finish()
	if err != nil {
		return err
	}
	after, err := recipes.EvaluateMLM(m, tm, evalEx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "trained %d steps; held-out masked new words: before %v\n                                         after  %v\n", len(losses), before, after)

	// 3. Save; load into the unchanged base checkpoint.
	adapterDir := filepath.Join(o.outDir, "adapter")
	if err := tm.Save(adapterDir, "", trainabletokens.SaveOptions{BaseModelNameOrPath: baseDir}); err != nil {
		return err
	}
	base, err := models.LoadBERT(baseDir) // [unused0]… still at those ids
	if err != nil {
		return err
	}
	loaded, err := trainabletokens.Load(base, adapterDir, "")
	if err != nil {
		return err
	}
	same, n, err := samePredictions(m, tm, base, loaded, tok, eval, res.IDs)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "adapter loaded into the unchanged base (%d rows, no resize): %d sentences predicted identically bit for bit: %v\n",
		len(base.Bert.Embeddings.Tokens.Weights), n, same)
	if !same {
		return errors.New("the adapter on the unchanged base predicts differently")
	}
	fmt.Fprintf(w, "outputs: adapter %s, vocabulary %s\n", adapterDir, vocabDir)
	return nil
}

func vocabLine(file string, id int) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	lines := strings.Split(string(data), "\n")
	if id >= len(lines) {
		return "", fmt.Errorf("%s has %d lines, no line for id %d", file, len(lines), id)
	}
	return lines[id], nil
}

// samePredictions runs every sentence holding a new word through both
// models (cybertron's Predict inside Do), the first new word masked: the
// trained model reads the new words, the base the placeholders at the
// same ids. The logits must match bit for bit.
func samePredictions(a *bert.ModelForMaskedLM, ta *trainabletokens.Model, b *bert.ModelForMaskedLM, tb *trainabletokens.Model, tok *newtokens.Tokenizer, lines []string, ids []int) (bool, int, error) {
	isNew := map[int]bool{}
	for _, id := range ids {
		isNew[id] = true
	}
	n := 0
	for _, line := range lines {
		enc, toks, err := tok.EncodeSpecial(line)
		if err != nil {
			return false, n, err
		}
		// Mask the first new word; the others stay as context.
		masked := -1
		baseToks := make([]string, len(enc))
		for i, id := range enc {
			baseToks[i] = b.Bert.Embeddings.Vocab.Items()[id]
			if isNew[id] && masked < 0 {
				masked = i
			}
		}
		if masked < 0 {
			continue
		}
		n++
		toks[masked], baseToks[masked] = "[MASK]", "[MASK]"
		var pa, pb map[int]mat.Tensor
		if err := ta.Do(func() error { pa = a.Predict(toks); return nil }); err != nil {
			return false, n, err
		}
		if err := tb.Do(func() error { pb = b.Predict(baseToks); return nil }); err != nil {
			return false, n, err
		}
		if len(pa) != 1 || len(pb) != 1 {
			return false, n, fmt.Errorf("predicted %d and %d positions, expected the masked one", len(pa), len(pb))
		}
		for pos, x := range pa {
			xs, ys := x.Value().(mat.Matrix).Data().F64(), pb[pos].Value().(mat.Matrix).Data().F64()
			if len(xs) != len(ys) {
				return false, n, nil
			}
			for i := range xs {
				if math.Float64bits(xs[i]) != math.Float64bits(ys[i]) {
					return false, n, nil
				}
			}
		}
	}
	return true, n, nil
}
