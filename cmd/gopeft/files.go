package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/atomicfile"
	"github.com/gopeft/gopeft/internal/regular"
	"github.com/gopeft/gopeft/models"
	"github.com/gopeft/gopeft/newtokens"
)

// Model families the command handles.
const (
	familyBERT = "bert"
	familyBART = "bart"
)

// model is a loaded model directory.
type model struct {
	dir    string
	family string
	bert   *bert.ModelForMaskedLM
	bart   *bart.ModelForConditionalGeneration
	tok    *newtokens.Tokenizer
}

func (m *model) nn() nn.Model {
	if m.bert != nil {
		return m.bert
	}
	return m.bart
}

// family reads model_type from dir's config.json.
func family(dir string) (string, error) {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("model directory %q does not exist", dir)
	}
	if err != nil {
		return "", err
	}
	if !info.IsDir() {
		return "", fmt.Errorf("%q is not a directory (want a model directory with config.json)", dir)
	}
	data, err := regular.ReadFile(filepath.Join(dir, "config.json"), 0)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%q is not a model directory: it has no config.json", dir)
	}
	if err != nil {
		return "", err
	}
	var cfg struct {
		ModelType string `json:"model_type"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	switch cfg.ModelType {
	case familyBERT, familyBART:
		return cfg.ModelType, nil
	case "":
		return "", fmt.Errorf("%s has no model_type (want \"bert\" or \"bart\")", filepath.Join(dir, "config.json"))
	}
	return "", fmt.Errorf("%q is a %q model; gopeft handles \"bert\" (masked LM) and \"bart\" (seq2seq) models", dir, cfg.ModelType)
}

// loadModel loads a Hugging Face or cybertron model directory and its
// tokenizer (with any tokens added by add-tokens).
func loadModel(dir string) (*model, error) {
	fam, err := family(dir)
	if err != nil {
		return nil, err
	}
	m := &model{dir: dir, family: fam}
	if fam == familyBERT {
		m.bert, err = models.LoadBERT(dir)
	} else {
		m.bart, err = models.LoadBART(dir)
	}
	if err != nil {
		return nil, err
	}
	if m.tok, err = newtokens.LoadTokenizer(dir); err != nil {
		return nil, err
	}
	return m, nil
}

// outDir creates dir for a command's output. It refuses a directory that
// exists and is not empty, so no file of the user's is ever replaced. The
// returned cleanup removes what was created, for a command that fails.
func outDir(dir string) (cleanup func(), err error) {
	if dir == "" {
		return nil, usagef("--out is required")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return nil, fmt.Errorf("output directory %q exists and is not empty (choose a new one)", dir)
	case err == nil:
		return func() {}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	// Create the missing directories, remembering the first one created.
	first := dir
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || p == filepath.Dir(p) {
			break
		}
		first = p
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return func() { os.RemoveAll(first) }, nil
}

// saveModelDir writes a cybertron model directory: src's configs, the
// tokenizer's vocabulary files (with added tokens) and spago_model.bin.
func saveModelDir(m nn.Model, tok *newtokens.Tokenizer, src, dst string) error {
	for _, f := range []string{"config.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"} {
		data, err := regular.ReadFile(filepath.Join(src, f), 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			return err
		}
	}
	if err := newtokens.WriteVocabFiles(dst, tok); err != nil {
		return err
	}
	return models.Save(m, dst)
}

// readLines returns the non-blank lines of a text file, trimmed.
func readLines(file string) ([]string, error) {
	data, err := readFile(file)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no non-empty line", file)
	}
	return out, nil
}

// readFile reads a regular file (not a FIFO or a device, which could block;
// internal/regular also checks the opened file, so a swap cannot hang it).
func readFile(file string) ([]byte, error) {
	return regular.ReadFile(file, 0)
}

// readPairs reads source/target pairs: JSON Lines ({"source": …,
// "target": …} per line) when the file ends in .jsonl, else one
// tab-separated pair per line.
func readPairs(file string) ([][2]string, error) {
	data, err := readFile(file)
	if err != nil {
		return nil, err
	}
	jsonl := strings.EqualFold(filepath.Ext(file), ".jsonl")
	var out [][2]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		var p [2]string
		if jsonl {
			var rec struct {
				Source *string `json:"source"`
				Target *string `json:"target"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", file, n, err)
			}
			if rec.Source == nil || rec.Target == nil {
				return nil, fmt.Errorf("%s:%d: want {\"source\": …, \"target\": …}", file, n)
			}
			p = [2]string{*rec.Source, *rec.Target}
		} else {
			src, tgt, ok := strings.Cut(line, "\t")
			if !ok {
				return nil, fmt.Errorf("%s:%d: no tab between source and target", file, n)
			}
			p = [2]string{strings.TrimSpace(src), strings.TrimSpace(tgt)}
		}
		if p[0] == "" || p[1] == "" {
			return nil, fmt.Errorf("%s:%d: empty source or target", file, n)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no pair", file)
	}
	return out, nil
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, w := range strings.Split(s, ",") {
		if w = strings.TrimSpace(w); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// tokenIDs resolves words (each must be one token of the model, e.g. added
// by add-tokens) and ids into a list of token ids.
func tokenIDs(m *model, words []string, ids string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	add := func(id int) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, w := range words {
		id, ok := m.tok.ID(w)
		if !ok {
			return nil, fmt.Errorf("word %q is not a token of %s (add it first: gopeft add-tokens %s --words %s --out DIR)", w, m.dir, m.dir, w)
		}
		add(id)
	}
	vocab := m.tok.VocabSize()
	for _, s := range splitList(ids) {
		id, err := strconv.Atoi(s)
		if err != nil {
			return nil, usagef("--tokens: %q is not a token id", s)
		}
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("token id %d is outside %s's vocabulary [0, %d)", id, m.dir, vocab)
		}
		add(id)
	}
	if len(out) == 0 {
		return nil, usagef("name the tokens to train: --words or --tokens")
	}
	return out, nil
}
