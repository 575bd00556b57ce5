package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/trainabletokens"
)

type addTokensResult struct {
	Model        string   `json:"model"`
	Family       string   `json:"family"`
	Out          string   `json:"out"`
	Words        []string `json:"words"`
	IDs          []int    `json:"ids"`
	OldVocabSize int      `json:"old_vocab_size"`
	NewVocabSize int      `json:"new_vocab_size"`
	Init         string   `json:"init"`
}

func (a *app) addTokensCmd() *cobra.Command {
	var words, wordsFile, out, init string
	var seed uint64
	var reserved bool
	cmd := &cobra.Command{
		Use:   "add-tokens MODEL_DIR --words a,b | --words-file FILE --out DIR",
		Short: "Add words to a model's vocabulary: a grown model directory with its tokenizer files",
		Long: `add-tokens adds each word as one new token: the embedding table (and every tied
copy: BERT's MLM decoder, BART's shared table and lm_head) grows by one row per
word, initialised from the existing rows (--init), and the tokenizer learns the
word. The result is a cybertron model directory (config.json, vocabulary files
with the added tokens, spago_model.bin) that train, eval and merge read.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			list := splitList(words)
			if wordsFile != "" {
				lines, err := readLines(wordsFile)
				if err != nil {
					return err
				}
				list = append(list, lines...)
			}
			if len(list) == 0 {
				return usagef("no words to add: --words a,b or --words-file FILE")
			}
			it, err := newtokens.ParseInit(init)
			if err != nil {
				return usageError{err}
			}
			m, err := loadModel(args[0])
			if err != nil {
				return err
			}
			cleanup, err := outDir(out)
			if err != nil {
				return err
			}
			res, err := a.addTokens(m, list, &newtokens.Options{Init: it, Seed: seed, Reserved: reserved}, out)
			if err != nil {
				cleanup()
				return err
			}
			res.Init = init
			return a.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "added %d tokens to %s (%s): vocabulary %d → %d\n", len(res.IDs), res.Model, res.Family, res.OldVocabSize, res.NewVocabSize)
				for i, word := range res.Words {
					fmt.Fprintf(w, "  %-20s id %d\n", word, res.IDs[i])
				}
				fmt.Fprintf(w, "grown model: %s\nnext: gopeft train %s --words %s ...\n", res.Out, res.Out, joinWords(res.Words))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&words, "words", "", "comma-separated words to add")
	f.StringVar(&wordsFile, "words-file", "", "file with one word to add per line")
	f.StringVar(&out, "out", "", "new directory for the grown model (required; must not exist or be empty)")
	f.StringVar(&init, "init", "mean", "initial rows: mean (of the existing rows), random, or subtoken-mean (of the word's old pieces)")
	f.Uint64Var(&seed, "seed", 1, "seed of --init random")
	f.BoolVar(&reserved, "reserved", false, "put the words into the vocabulary's reserved slots ([unusedN]) instead of growing it")
	return cmd
}

func (a *app) addTokens(m *model, words []string, opts *newtokens.Options, out string) (addTokensResult, error) {
	added, err := newtokens.AddTokens(m.nn(), m.tok, words, opts)
	if err != nil {
		return addTokensResult{}, err
	}
	if err := saveModelDir(m.nn(), m.tok, m.dir, out); err != nil {
		return addTokensResult{}, err
	}
	return addTokensResult{Model: m.dir, Family: m.family, Out: out, Words: added.Tokens, IDs: added.IDs,
		OldVocabSize: added.OldVocabSize, NewVocabSize: added.NewVocabSize}, nil
}

func joinWords(ws []string) string {
	s := ""
	for i, w := range ws {
		if i > 0 {
			s += ","
		}
		s += w
	}
	return s
}

type mergeResult struct {
	Model   string `json:"model"`
	Adapter string `json:"adapter"`
	Out     string `json:"out"`
	Tokens  []int  `json:"tokens"`
}

func (a *app) mergeCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "merge MODEL_DIR ADAPTER_DIR --out DIR",
		Short: "Merge an adapter into its base model: a plain model directory cybertron loads",
		Long: `merge loads the adapter (PEFT's files, written by gopeft train or by PEFT) into the
base model it was trained on, writes its rows into the table and every tied copy,
and saves the result as a cybertron model directory with the base's tokenizer
files. The adapter's base must be the model it was trained on (for new tokens:
the directory add-tokens wrote).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := loadModel(args[0])
			if err != nil {
				return err
			}
			tm, err := trainabletokens.Load(m.nn(), args[1], "")
			if err != nil {
				return err
			}
			cfg, err := tm.Config("default")
			if err != nil {
				return err
			}
			cleanup, err := outDir(out)
			if err != nil {
				return err
			}
			plain, err := tm.MergeAndUnload(true)
			if err == nil {
				err = saveModelDir(plain, m.tok, m.dir, out)
			}
			if err != nil {
				cleanup()
				return err
			}
			res := mergeResult{Model: m.dir, Adapter: args[1], Out: out, Tokens: cfg.TokenIndices}
			return a.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "merged %s (%d tokens) into %s: %s\n", res.Adapter, len(res.Tokens), res.Model, res.Out)
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "new directory for the merged model (required; must not exist or be empty)")
	return cmd
}
