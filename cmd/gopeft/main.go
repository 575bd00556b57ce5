// Command gopeft adds tokens to a cybertron BERT or BART model directory,
// trains only their embedding rows (PEFT's Trainable Tokens), evaluates,
// merges and inspects models and adapters, from the command line:
//
//	go install github.com/gopeft/gopeft/cmd/gopeft@latest
//	gopeft add-tokens MODEL_DIR --words zorblax,quindle --out grown
//	gopeft train grown --text corpus.txt --words zorblax,quindle --out adapter
//	gopeft eval grown --adapter adapter --text held-out.txt
//	gopeft merge grown adapter --out merged
//	gopeft inspect adapter --model grown
//
// A model directory is either Hugging Face's (config.json, the tokenizer
// files, pytorch_model.bin: converted on first use with cybertron's
// converter) or cybertron's (spago_model.bin instead). Every subcommand
// has --help; --json prints one machine-readable JSON object on stdout
// instead of the text report; progress goes to stderr, as a bar on a
// terminal and as plain lines otherwise (--quiet: none). A failure prints
// one line, "gopeft: …", on stderr and exits with status 1 (2 for a
// command-line usage error).
//
// The command line is built on github.com/spf13/cobra (with spf13/pflag):
// it is the Go ecosystem's convention for multi-command tools (kubectl,
// hugo, gh, docker's CLI use it), so subcommands, POSIX flags and --help
// behave as users of those tools expect, and it is actively maintained.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// app holds the global flags and where output goes (tests run the built
// binary; the writers are the process's own).
type app struct {
	stdout, stderr io.Writer
	json           bool
	quiet          bool
}

// usageError marks errors in the command line itself (exit status 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func main() {
	a := &app{stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(a.run(os.Args[1:]))
}

// run executes one command line and returns the exit status.
func (a *app) run(args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(a.stderr, "gopeft: "+oneLine(err.Error()))
	var u usageError
	if errors.As(err, &u) || isCobraUsage(err) {
		return 2
	}
	return 1
}

// isCobraUsage recognises cobra's own command-line errors (unknown
// command or flag, wrong argument count), which it returns unwrapped.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "gopeft",
		Short: "Add tokens to a BERT or BART model and train only their rows (PEFT's Trainable Tokens)",
		Long: `gopeft adds words to a cybertron BERT or BART model directory, trains only their
embedding rows (every tied copy of the table follows), and saves the result as a
PEFT adapter (adapter_config.json + adapter_model.safetensors). Model directories
may be Hugging Face's (pytorch_model.bin) or cybertron's (spago_model.bin).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print one JSON object with the results on stdout instead of the text report")
	root.PersistentFlags().BoolVarP(&a.quiet, "quiet", "q", false, "no progress output on stderr")
	root.AddCommand(a.addTokensCmd(), a.trainCmd(), a.evalCmd(), a.mergeCmd(), a.inspectCmd())
	return root
}

// emit prints the result: as JSON with --json, else through text.
func (a *app) emit(v any, text func(w io.Writer)) error {
	if a.json {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(a.stdout)
	return nil
}

// logf prints a progress line on stderr unless --quiet.
func (a *app) logf(format string, args ...any) {
	if !a.quiet {
		fmt.Fprintf(a.stderr, format+"\n", args...)
	}
}
