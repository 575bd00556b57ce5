package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/models"
)

// binary is the gopeft command built once by TestMain: the tests run it as
// a user would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gopeft-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gopeft")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building gopeft: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// gopeft runs the built command in dir.
func gopeft(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return r
}

// ok runs gopeft, requires success and decodes its --json output into v.
func ok(t *testing.T, dir string, v any, args ...string) result {
	t.Helper()
	r := gopeft(t, dir, append(args, "--json")...)
	require.Equal(t, 0, r.code, "gopeft %v: %s", args, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), v), r.stdout)
	return r
}

// workdir returns a temporary directory with the tiny Hugging Face models
// (bert/, bart/) and the corpora (corpus/).
func workdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, sub := range map[string]string{"bert-tiny": "bert", "bart-tiny": "bart"} {
		got, err := models.Tiny(name, filepath.Join(dir, "tmp"))
		require.NoError(t, err)
		require.NoError(t, os.Rename(got, filepath.Join(dir, sub)))
	}
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "tmp")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "corpus"), 0o755))
	for _, f := range []string{"mlm_train.txt", "mlm_eval.txt", "mlm_ordinary_eval.txt", "mlm_ordinary_train.txt", "seq2seq_train.tsv", "seq2seq_eval.tsv", "new_tokens.txt"} {
		data, err := os.ReadFile(testmodels.Corpus(f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "corpus", f), data, 0o644))
	}
	return dir
}

const words = "zorblax,quindle,flumph,vintral"

// TestBERTWorkflow: add-tokens on a Hugging Face directory, train (with the
// guard) on the cybertron directory it writes, eval, merge, inspect.
func TestBERTWorkflow(t *testing.T) {
	dir := workdir(t)
	var added addTokensResult
	ok(t, dir, &added, "add-tokens", "bert", "--words-file", "corpus/new_tokens.txt", "--out", "grown")
	assert.Equal(t, []int{1038, 1039, 1040, 1041}, added.IDs)
	assert.Equal(t, 1042, added.NewVocabSize)

	var tr trainResult
	r := ok(t, dir, &tr, "train", "grown", "--text", "corpus/mlm_train.txt", "--words", words, "--epochs", "2",
		"--ordinary", "corpus/mlm_ordinary_eval.txt", "--mix-file", "corpus/mlm_ordinary_train.txt", "--mix", "16", "--out", "adapter")
	assert.Contains(t, r.stderr, fmt.Sprintf("step %d/%d", tr.Steps, tr.Steps), "plain progress lines when stderr is not a terminal")
	assert.NotContains(t, r.stderr, "\r", "no bar drawn into a pipe")
	assert.Equal(t, added.IDs, tr.Tokens)
	assert.Equal(t, "masked-lm", tr.Task)
	require.NotNil(t, tr.Ordinary)
	require.NotNil(t, tr.NewWords)
	assert.InDelta(t, 0.589, tr.Ordinary.Before.Accuracy, 0.001, "the base model on the held-out ordinary sentences")
	assert.Equal(t, 586, tr.Ordinary.Before.Positions)
	assert.Greater(t, tr.NewWords.After.Accuracy, tr.NewWords.Before.Accuracy)
	assert.Len(t, tr.Losses, tr.Steps)
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		info, err := os.Stat(filepath.Join(dir, "adapter", f))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o644), info.Mode().Perm())
	}

	var ev evalResult
	ok(t, dir, &ev, "eval", "grown", "--adapter", "adapter", "--text", "corpus/mlm_eval.txt", "--ordinary", "corpus/mlm_ordinary_eval.txt")
	assert.Equal(t, added.IDs, ev.Tokens)
	require.NotNil(t, ev.NewWords)
	assert.Equal(t, 32, ev.NewWords.Positions)
	var base evalResult
	ok(t, dir, &base, "eval", "grown", "--words", words, "--text", "corpus/mlm_eval.txt")
	assert.Less(t, base.NewWords.Accuracy, ev.NewWords.Accuracy, "the adapter learnt something")

	var merged mergeResult
	ok(t, dir, &merged, "merge", "grown", "adapter", "--out", "merged")
	var mergedEval evalResult
	ok(t, dir, &mergedEval, "eval", "merged", "--words", words, "--text", "corpus/mlm_eval.txt", "--ordinary", "corpus/mlm_ordinary_eval.txt")
	assert.InDelta(t, ev.NewWords.Loss, mergedEval.NewWords.Loss, 1e-5, "the merged model predicts as the adapter does")
	assert.InDelta(t, ev.Ordinary.Loss, mergedEval.Ordinary.Loss, 1e-5)

	var mi modelInfo
	ok(t, dir, &mi, "inspect", "merged")
	assert.Equal(t, "bert", mi.Family)
	assert.Equal(t, 1042, mi.VocabSize)
	assert.Equal(t, []string{"zorblax", "quindle", "flumph", "vintral"}, mi.AddedTokens)
	require.NotEmpty(t, mi.Tables)
	assert.Equal(t, "bert.embeddings.word_embeddings", mi.Tables[0].HFName)
	assert.True(t, mi.Tables[0].Input)
	assert.Equal(t, []string{"cls.predictions.decoder"}, mi.Tables[0].Tied)

	var ai adapterInfo
	ok(t, dir, &ai, "inspect", "adapter", "--model", "grown")
	assert.True(t, ai.PEFTOK, "%v", ai.Problems)
	require.NotNil(t, ai.GopeftLoads)
	assert.True(t, *ai.GopeftLoads)
	require.Len(t, ai.Tensors, 2, "PEFT's key set: the table and the tied decoder")
	assert.Equal(t, "base_model.model.bert.embeddings.word_embeddings.trainable_tokens_delta", ai.Tensors[0].Name)
	assert.Equal(t, "base_model.model.cls.predictions.decoder.trainable_tokens_delta", ai.Tensors[1].Name)
	assert.Equal(t, []uint64{4, 32}, ai.Tensors[0].Shape)
	assert.NotEmpty(t, ai.Warnings, "the base is a cybertron directory PEFT cannot load")

	// The text report of inspect, and an adapter PEFT would refuse.
	r = gopeft(t, dir, "inspect", "adapter")
	assert.Contains(t, r.stdout, "PEFT: loads cleanly")
	cfg, err := os.ReadFile(filepath.Join(dir, "adapter", "adapter_config.json"))
	require.NoError(t, err)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "broken"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken", "adapter_config.json"), bytes.Replace(cfg, []byte(`"task_type": null`), []byte(`"task_type": "NOPE"`), 1), 0o644))
	var bad adapterInfo
	ok(t, dir, &bad, "inspect", "broken")
	assert.False(t, bad.PEFTOK)
	assert.Len(t, bad.Problems, 2, "%v", bad.Problems) // task_type, no weights file
}

// TestBARTWorkflow: seq2seq training on JSON Lines pairs; BART's shared
// table is the adapter's key.
func TestBARTWorkflow(t *testing.T) {
	dir := workdir(t)
	var added addTokensResult
	ok(t, dir, &added, "add-tokens", "bart", "--words", words, "--out", "grown")
	tsv, err := os.ReadFile(filepath.Join(dir, "corpus", "seq2seq_train.tsv"))
	require.NoError(t, err)
	var jsonl bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(string(tsv)), "\n") {
		src, tgt, _ := strings.Cut(line, "\t")
		b, _ := json.Marshal(map[string]string{"source": src, "target": tgt})
		jsonl.Write(append(b, '\n'))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pairs.jsonl"), jsonl.Bytes(), 0o644))

	var tr trainResult
	ok(t, dir, &tr, "train", "grown", "--pairs", "pairs.jsonl", "--eval", "corpus/seq2seq_eval.tsv", "--words", words, "--epochs", "2", "--out", "adapter", "-q")
	assert.Equal(t, "seq2seq", tr.Task)
	assert.Equal(t, 64, tr.Examples)
	assert.Equal(t, 20, tr.HeldPairs)
	assert.Equal(t, 0.0, tr.Guard.Decay, "no decay for seq2seq unless asked")
	assert.Less(t, tr.LastLoss, tr.FirstLoss)

	var ai adapterInfo
	ok(t, dir, &ai, "inspect", "adapter", "--model", "grown")
	var names []string
	for _, ts := range ai.Tensors {
		names = append(names, ts.Name)
	}
	assert.ElementsMatch(t, []string{ // PEFT's key set: the shared table and its tied modules
		"base_model.model.model.shared.trainable_tokens_delta",
		"base_model.model.model.encoder.embed_tokens.trainable_tokens_delta",
		"base_model.model.model.decoder.embed_tokens.trainable_tokens_delta",
		"base_model.model.lm_head.trainable_tokens_delta",
	}, names)
	require.NotNil(t, ai.GopeftLoads)
	assert.True(t, *ai.GopeftLoads, ai.GopeftError)

	var ev evalResult
	ok(t, dir, &ev, "eval", "grown", "--adapter", "adapter", "--pairs", "corpus/seq2seq_eval.tsv")
	assert.Equal(t, 20, ev.Pairs)
	assert.InDelta(t, tr.ExactMatch[1], ev.ExactMatch, 1e-12)
	var merged mergeResult
	ok(t, dir, &merged, "merge", "grown", "adapter", "--out", "merged")
	var mi modelInfo
	ok(t, dir, &mi, "inspect", "merged")
	assert.Equal(t, "bart", mi.Family)
	assert.Equal(t, 1104, mi.VocabSize)
}

// TestBadInput: every mistake exits non-zero with one line on stderr that
// names it, and leaves no output directory behind.
func TestBadInput(t *testing.T) {
	dir := workdir(t)
	var added addTokensResult
	ok(t, dir, &added, "add-tokens", "bert", "--words", words, "--out", "grown")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "empty.txt"), []byte("\n \n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ordinary.txt"), []byte("the dog is brown .\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "gpt2"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gpt2", "config.json"), []byte(`{"model_type": "gpt2"}`), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "full"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "full", "mine.txt"), []byte("user's file"), 0o644))
	train := []string{"train", "grown", "--text", "corpus/mlm_train.txt", "--words", words, "--epochs", "1"}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"add-tokens", "missing", "--words", "x", "--out", "o"}, 1, `model directory "missing" does not exist`},
		{[]string{"add-tokens", "corpus", "--words", "x", "--out", "o"}, 1, "has no config.json"},
		{[]string{"add-tokens", "gpt2", "--words", "x", "--out", "o"}, 1, `is a "gpt2" model`},
		{[]string{"add-tokens", "bert", "--words", "the", "--out", "o"}, 1, `"the"`},
		{[]string{"add-tokens", "bert", "--out", "o"}, 2, "no words to add"},
		{[]string{"add-tokens", "bert", "--words-file", "empty.txt", "--out", "o"}, 1, "empty.txt: no non-empty line"},
		{[]string{"add-tokens", "bert", "--words", "x", "--out", "full"}, 1, `"full" exists and is not empty`},
		{[]string{"add-tokens", "bert", "--words", "x"}, 2, "--out is required"},
		{append(train, "--out", "o", "--epochs", "0"), 2, "--epochs must be at least 1, got 0"},
		{append(train, "--out", "o", "--lr", "-1"), 2, "--lr"},
		{append(train, "--out", "o", "--decay", "1"), 2, "--decay"},
		{[]string{"train", "grown", "--text", "empty.txt", "--words", words, "--out", "o"}, 1, "empty.txt: no non-empty line"},
		{[]string{"train", "grown", "--text", "ordinary.txt", "--words", words, "--out", "o"}, 1, "no line contains any of the tokens"},
		{[]string{"train", "grown", "--text", "corpus/mlm_train.txt", "--words", "blorf", "--out", "o"}, 1, `word "blorf" is not a token of grown`},
		{[]string{"train", "grown", "--text", "corpus/mlm_train.txt", "--tokens", "99999", "--out", "o"}, 1, "token id 99999 is outside"},
		{[]string{"train", "grown", "--text", "corpus/mlm_train.txt", "--out", "o"}, 2, "--words or --tokens"},
		{[]string{"train", "bart", "--text", "corpus/mlm_train.txt", "--words", "a", "--out", "o"}, 1, "needs a BERT model; bart is a bart model"},
		{[]string{"train", "grown", "--pairs", "corpus/seq2seq_train.tsv", "--words", words, "--out", "o"}, 1, "needs a BART model"},
		{[]string{"train", "grown", "--words", words, "--out", "o"}, 2, "exactly one of --text"},
		{[]string{"train", "grown", "--text", "missing.txt", "--words", words, "--out", "o"}, 1, "missing.txt"},
		{[]string{"eval", "grown", "--text", "corpus/mlm_eval.txt"}, 2, "name the new tokens"},
		{[]string{"merge", "grown", "missing-adapter", "--out", "o"}, 1, "missing-adapter"},
		{[]string{"inspect", "nothere"}, 1, `"nothere" does not exist`},
		{[]string{"inspect", "grown", "--model", "grown"}, 2, "--model is for inspecting an adapter"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"train", "--bogus"}, 2, "unknown flag: --bogus"},
	}
	for _, c := range cases {
		r := gopeft(t, dir, c.args...)
		assert.Equal(t, c.code, r.code, "%v: %s", c.args, r.stderr)
		assert.Contains(t, r.stderr, c.want, "%v", c.args)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		assert.Len(t, lines, 1, "one line: %q", r.stderr)
		assert.True(t, strings.HasPrefix(lines[len(lines)-1], "gopeft: "), r.stderr)
		assert.NoDirExists(t, filepath.Join(dir, "o"), "%v left its output directory", c.args)
		assert.Empty(t, r.stdout, "%v", c.args)
	}
	data, err := os.ReadFile(filepath.Join(dir, "full", "mine.txt"))
	require.NoError(t, err)
	assert.Equal(t, "user's file", string(data))
}

// TestHelp: every subcommand documents itself and exits 0.
func TestHelp(t *testing.T) {
	for _, sub := range []string{"", "add-tokens", "train", "eval", "merge", "inspect"} {
		args := []string{"--help"}
		if sub != "" {
			args = []string{sub, "--help"}
		}
		r := gopeft(t, t.TempDir(), args...)
		assert.Equal(t, 0, r.code, sub)
		assert.Contains(t, r.stdout, "Usage:", sub)
		assert.Contains(t, r.stdout, "--json", sub)
	}
}
