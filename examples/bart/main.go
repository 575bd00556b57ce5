// Command bart teaches the embedded tiny BART four new words in a small
// seq2seq task, training only their rows, and shows that the encoder, the
// decoder and the LM head all use the trained rows:
//
//	go run ./examples/bart
//
// BART's encoder and decoder share one embedding table (the adapter swaps
// the rows in it once), and cybertron's lm_head is a value copy of that
// table, which the adapter keeps in step (through a differentiable op while
// training, by writing the rows after each step and on merge).
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/nlpodyssey/spago/mat"
	"github.com/rs/zerolog"

	"github.com/gopeft/gopeft"
	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/progress"
	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/trainabletokens"
)

func main() {
	// cybertron's converter reports unmapped parameters through zerolog at
	// debug level; this program (not the library) chooses to keep it quiet.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	out := flag.String("out", "out", "output folder")
	epochs := flag.Int("epochs", 30, "passes over the training pairs")
	lr := flag.Float64("lr", 0.05, "Adam learning rate of the token rows")
	quiet := flag.Bool("quiet", false, "no progress bar")
	flag.Parse()
	if err := run(*out, *epochs, *lr, *quiet); err != nil {
		fmt.Fprintln(os.Stderr, "bart:", err)
		os.Exit(1)
	}
}

func run(out string, epochs int, lr float64, quiet bool) error {
	if epochs < 1 {
		return fmt.Errorf("-epochs must be at least 1, got %d", epochs)
	}
	if !(lr > 0) || math.IsInf(lr, 0) {
		return fmt.Errorf("-lr must be a positive finite number, got %v", lr)
	}
	m, dir, err := models.TinyBART(filepath.Join(out, "tiny"))
	if err != nil {
		return err
	}
	tok, err := newtokens.LoadTokenizer(dir)
	if err != nil {
		return err
	}
	words, err := gopeft.CorpusLines("new_tokens.txt")
	if err != nil {
		return err
	}
	added, err := newtokens.AddTokens(m, tok, words, nil)
	if err != nil {
		return err
	}
	fmt.Printf("added %v as ids %v (vocabulary %d → %d)\n", added.Tokens, added.IDs, added.OldVocabSize, added.NewVocabSize)

	trainPairs, err := pairs("seq2seq_train.tsv")
	if err != nil {
		return err
	}
	evalPairs, err := pairs("seq2seq_eval.tsv")
	if err != nil {
		return err
	}
	train, err := recipes.Seq2SeqExamples(tok, trainPairs)
	if err != nil {
		return err
	}

	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: added.IDs}, "")
	if err != nil {
		return err
	}
	rep, err := tm.Report()
	if err != nil {
		return err
	}
	fmt.Print(rep)

	before := make([]string, len(evalPairs))
	for i, p := range evalPairs {
		if before[i], err = recipes.Generate(m, tm, tok, p[0]); err != nil {
			return err
		}
	}
	var bar *progress.Bar
	if !quiet {
		bar = progress.New(os.Stderr, epochs*((len(train)+7)/8))
	}
	losses, err := recipes.TrainSeq2Seq(m, tm, train, recipes.TrainOptions{Epochs: epochs, LR: lr, Seed: 1, OnStep: bar.Step})
	bar.Finish()
	if err != nil {
		return err
	}
	fmt.Printf("\ntrained %d steps: loss %.3f → %.3f\n", len(losses), losses[0], losses[len(losses)-1])

	// Who uses the trained rows: one table for encoder and decoder, and the
	// lm_head copy carries the same values.
	rowsOf := tm.TrainableParams()
	id := added.IDs[0]
	fmt.Printf("\nrow of %q (id %d):\n", added.Tokens[0], id)
	fmt.Printf("  encoder table row is the trained param: %v\n", m.Bart.Encoder.Embeddings.SharedEmbeddings.Weights[id] == rowsOf[0])
	fmt.Printf("  decoder table row is the trained param: %v\n", m.Bart.Decoder.Embeddings.SharedEmbeddings.Weights[id] == rowsOf[0])
	head := m.Projection.W.Value().(mat.Matrix).ExtractRow(id).Data().F64()
	row := rowsOf[0].Value().(mat.Matrix).Data().F64()
	same := len(head) == len(row)
	for i := range row {
		same = same && head[i] == row[i]
	}
	fmt.Printf("  lm_head row equals the trained row:     %v\n", same)
	if !same {
		return fmt.Errorf("lm_head row %d does not follow the trained row", id)
	}

	fmt.Println("\ngeneration on held-out inputs (before → after):")
	correct, correctBefore := 0, 0
	for i, p := range evalPairs {
		if strings.TrimSpace(before[i]) == strings.TrimSpace(p[1]) {
			correctBefore++
		}
		after, err := recipes.Generate(m, tm, tok, p[0])
		if err != nil {
			return err
		}
		if strings.TrimSpace(after) == strings.TrimSpace(p[1]) {
			correct++
		}
		if i < 8 {
			fmt.Printf("  %-40q  %q → %q\n", p[0], before[i], after)
		}
	}
	fmt.Printf("exact matches: %d of %d before training, %d after\n", correctBefore, len(evalPairs), correct)

	// PyTorch can load it the documented way: the base as it was (absolute
	// path) and the tokenizer with the added words next to the adapter, so
	// AutoPeftModel resizes the base (README "Take it to PyTorch").
	adapterDir := filepath.Join(out, "bart-adapter")
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := tm.Save(adapterDir, "", trainabletokens.SaveOptions{BaseModelNameOrPath: absDir}); err != nil {
		return err
	}
	if err := newtokens.WriteTokenizerFiles(adapterDir, tok, dir); err != nil {
		return err
	}
	plain, err := tm.MergeAndUnload(true)
	if err != nil {
		return err
	}
	mergedDir := filepath.Join(out, "bart-merged")
	if err := models.Save(plain, mergedDir); err != nil {
		return err
	}
	if err := newtokens.WriteVocabFiles(mergedDir, tok); err != nil {
		return err
	}
	fmt.Printf("\noutputs:\n  adapter      %s\n  merged model %s\n", adapterDir, mergedDir)
	return nil
}

func pairs(name string) ([][2]string, error) {
	lines, err := gopeft.CorpusLines(name)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(lines))
	for i, l := range lines {
		src, tgt, ok := strings.Cut(l, "\t")
		if !ok {
			return nil, fmt.Errorf("%s:%d: no tab between source and target", name, i+1)
		}
		out = append(out, [2]string{src, tgt})
	}
	return out, nil
}
