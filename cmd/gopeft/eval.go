package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/trainabletokens"
)

type evalResult struct {
	Model      string       `json:"model"`
	Adapter    string       `json:"adapter,omitempty"`
	Family     string       `json:"family"`
	Tokens     []int        `json:"tokens"`
	NewWords   *evalFigures `json:"new_words,omitempty"`
	Ordinary   *evalFigures `json:"ordinary,omitempty"`
	Takeover   float64      `json:"takeover"`
	Pairs      int          `json:"pairs,omitempty"`
	ExactMatch float64      `json:"exact_match"`
}

func (a *app) evalCmd() *cobra.Command {
	var text, pairs, ordinary, adapter, words, tokens string
	cmd := &cobra.Command{
		Use:   "eval MODEL_DIR [--adapter DIR] (--text FILE [--ordinary FILE] | --pairs FILE)",
		Short: "Loss and accuracy on new-word and on ordinary sentences (or seq2seq exact match)",
		Long: `eval measures a model, with an adapter applied when --adapter is given.

  --text FILE   (BERT) lines with the tokens: every occurrence masked; loss and
                top-1 accuracy. Lines without them, and --ordinary FILE, are
                ordinary sentences: each word masked alone, loss and accuracy,
                and how often a trained token is the top prediction instead.
  --pairs FILE  (BART) greedy generation from each source; the share that
                equals its target.

The tokens are the adapter's, or --words/--tokens.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (text == "") == (pairs == "") {
				return usagef("give exactly one of --text (BERT) or --pairs (BART)")
			}
			m, err := loadModel(args[0])
			if err != nil {
				return err
			}
			switch {
			case text != "" && m.family != familyBERT:
				return fmt.Errorf("--text evaluates a masked LM, which needs a BERT model; %s is a %s model (use --pairs)", m.dir, m.family)
			case pairs != "" && m.family != familyBART:
				return fmt.Errorf("--pairs evaluates seq2seq, which needs a BART model; %s is a %s model (use --text)", m.dir, m.family)
			}
			res := evalResult{Model: m.dir, Adapter: adapter, Family: m.family}
			var tm *trainabletokens.Model
			if adapter != "" {
				if tm, err = trainabletokens.Load(m.nn(), adapter, ""); err != nil {
					return err
				}
				cfg, err := tm.Config(trainabletokens.DefaultAdapterName)
				if err != nil {
					return err
				}
				res.Tokens = cfg.TokenIndices
			}
			if words != "" || tokens != "" {
				if res.Tokens, err = tokenIDs(m, splitList(words), tokens); err != nil {
					return err
				}
			}
			if text != "" {
				if len(res.Tokens) == 0 {
					return usagef("name the new tokens: --adapter, --words or --tokens")
				}
				err = a.evalMLM(m, tm, text, ordinary, &res)
			} else {
				err = a.evalPairs(m, tm, pairs, &res)
			}
			if err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s", res.Model)
				if res.Adapter != "" {
					fmt.Fprintf(w, " + adapter %s", res.Adapter)
				}
				fmt.Fprintf(w, " (%s), tokens %v\n", res.Family, res.Tokens)
				if e := res.NewWords; e != nil {
					fmt.Fprintf(w, "new words: accuracy %.1f%%, loss %.4f over %d masked tokens\n", 100*e.Accuracy, e.Loss, e.Positions)
				}
				if e := res.Ordinary; e != nil {
					fmt.Fprintf(w, "ordinary:  accuracy %.1f%%, loss %.4f over %d masked words; a trained token on top at %.1f%% of them\n",
						100*e.Accuracy, e.Loss, e.Positions, 100*res.Takeover)
				}
				if res.Pairs > 0 {
					fmt.Fprintf(w, "pairs: exact greedy match %.1f%% of %d\n", 100*res.ExactMatch, res.Pairs)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&text, "text", "", "masked-LM sentences (BERT), one per line")
	f.StringVar(&ordinary, "ordinary", "", "more ordinary sentences (BERT), one per line")
	f.StringVar(&pairs, "pairs", "", "seq2seq pairs (BART): source<TAB>target per line, or .jsonl")
	f.StringVar(&adapter, "adapter", "", "adapter directory to apply (PEFT's files)")
	f.StringVar(&words, "words", "", "comma-separated new tokens, as words")
	f.StringVar(&tokens, "tokens", "", "comma-separated new token ids")
	return cmd
}

func (a *app) evalMLM(m *model, tm *trainabletokens.Model, text, ordinaryFile string, res *evalResult) error {
	lines, err := readLines(text)
	if err != nil {
		return err
	}
	withIDs, ordinary, err := recipes.SplitLines(m.tok, lines, res.Tokens)
	if err != nil {
		return err
	}
	if ordinaryFile != "" {
		more, err := readLines(ordinaryFile)
		if err != nil {
			return err
		}
		ordinary = append(ordinary, more...)
	}
	newEx, err := recipes.MaskOccurrences(m.tok, withIDs, res.Tokens)
	if err != nil {
		return err
	}
	ordEx, err := recipes.MaskEachWord(m.tok, ordinary, res.Tokens)
	if err != nil {
		return err
	}
	if len(newEx) == 0 && len(ordEx) == 0 {
		return fmt.Errorf("%s: nothing to evaluate", text)
	}
	held, err := recipes.EvaluateMLM(m.bert, tm, newEx)
	if err != nil {
		return err
	}
	ord, takeover, err := recipes.EvaluateOrdinary(m.bert, tm, ordEx, res.Tokens)
	if err != nil {
		return err
	}
	res.NewWords, res.Ordinary, res.Takeover = figures(held), figures(ord), takeover
	return nil
}

func (a *app) evalPairs(m *model, tm *trainabletokens.Model, file string, res *evalResult) error {
	pairs, err := readPairs(file)
	if err != nil {
		return err
	}
	res.Pairs = len(pairs)
	res.ExactMatch, err = exactMatch(m, tm, pairs)
	return err
}
