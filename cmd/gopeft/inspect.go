package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gopeft/gopeft/internal/regular"
	"github.com/gopeft/gopeft/internal/safetensors"
	"github.com/gopeft/gopeft/registry"
	"github.com/gopeft/gopeft/trainabletokens"
	"github.com/gopeft/gopeft/tying"
	"github.com/gopeft/gopeft/untrained"
)

type tableInfo struct {
	HFName string   `json:"hf_name"`
	GoPath string   `json:"go_path"`
	Names  []string `json:"names"`
	Rows   int      `json:"rows"`
	Dim    int      `json:"dim"`
	Input  bool     `json:"input"`
	Tying  string   `json:"tying"`
	Tied   []string `json:"tied_copies"`
	// Untrained are the rows that look untrained (package untrained's
	// default rule), UntrainedSummary its one-line report with the rule.
	Untrained        []int  `json:"untrained_rows"`
	UntrainedSummary string `json:"untrained"`
}

type modelInfo struct {
	Kind         string      `json:"kind"`
	Dir          string      `json:"dir"`
	Family       string      `json:"family"`
	Architecture string      `json:"architecture"`
	Layout       string      `json:"layout"`
	VocabSize    int         `json:"vocab_size"`
	AddedTokens  []string    `json:"added_tokens"`
	Tables       []tableInfo `json:"tables"`
	Outputs      []string    `json:"outputs"`
}

type tensorInfo struct {
	Name  string   `json:"name"`
	DType string   `json:"dtype"`
	Shape []uint64 `json:"shape"`
	Bytes uint64   `json:"bytes"`
}

type adapterInfo struct {
	Kind     string           `json:"kind"`
	Dir      string           `json:"dir"`
	Config   json.RawMessage  `json:"config"`
	Tensors  []tensorInfo     `json:"tensors"`
	Files    map[string]int64 `json:"files"`
	Tokens   []int            `json:"tokens"`
	PEFTOK   bool             `json:"peft_loads_cleanly"`
	Problems []string         `json:"problems"`
	Warnings []string         `json:"warnings"`
	// With --model: whether gopeft loads it into that model.
	Model       string `json:"model,omitempty"`
	GopeftLoads *bool  `json:"gopeft_loads,omitempty"`
	GopeftError string `json:"gopeft_error,omitempty"`
	// UntrainedBaseRows are the adapter's token ids whose rows in the
	// model's input table look untrained (package untrained).
	UntrainedBaseRows []int `json:"untrained_base_rows,omitempty"`
}

func (a *app) inspectCmd() *cobra.Command {
	var modelDir string
	cmd := &cobra.Command{
		Use:   "inspect DIR [--model MODEL_DIR]",
		Short: "Describe a model (tables, tying, HF names) or an adapter (config, tensors, sizes, PEFT check)",
		Long: `inspect describes DIR.

A model directory (Hugging Face or cybertron): its family, vocabulary (with added
tokens), every token table with its Hugging Face and Go names, and what is tied
to it (shared pointers, value copies such as BERT's MLM decoder and BART's
lm_head).

An adapter directory (adapter_config.json): its config, every tensor with dtype,
shape and size, the file sizes, and whether PEFT will load it cleanly: the
problems PEFT would fail on and the warnings it would print, checked against
PEFT's rules for Trainable Tokens files. With --model, also against that base
model (token ids inside its vocabulary, modules it has, row width), and whether
gopeft loads it into the model.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if info, err := os.Stat(dir); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("%q does not exist", dir)
				}
				return err
			} else if !info.IsDir() {
				return fmt.Errorf("%q is not a directory (want a model or adapter directory)", dir)
			}
			if _, err := os.Stat(filepath.Join(dir, "adapter_config.json")); err == nil {
				res, err := inspectAdapter(dir, modelDir)
				if err != nil {
					return err
				}
				return a.emit(res, func(w io.Writer) { res.print(w) })
			}
			if modelDir != "" {
				return usagef("--model is for inspecting an adapter directory; %q has no adapter_config.json", dir)
			}
			res, err := inspectModel(dir)
			if err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) { res.print(w) })
		},
	}
	cmd.Flags().StringVar(&modelDir, "model", "", "base model directory to check an adapter against")
	return cmd
}

func inspectModel(dir string) (modelInfo, error) {
	m, err := loadModel(dir)
	if err != nil {
		return modelInfo{}, err
	}
	l, err := registry.Describe(m.nn())
	if err != nil {
		return modelInfo{}, err
	}
	groups, err := tying.Detect(l)
	if err != nil {
		return modelInfo{}, err
	}
	res := modelInfo{Kind: "model", Dir: dir, Family: m.family, Architecture: l.Architecture, VocabSize: m.tok.VocabSize(),
		AddedTokens: []string{}}
	if _, err := os.Stat(filepath.Join(dir, "spago_model.bin")); err == nil {
		res.Layout = "cybertron (spago_model.bin)"
	}
	for _, t := range m.tok.Added() {
		res.AddedTokens = append(res.AddedTokens, t.Content)
	}
	for i, t := range l.Tables {
		ti := tableInfo{HFName: t.HFPath, GoPath: t.Path, Names: t.Names, Input: t.Input, Rows: len(t.Embedding.Weights), Tied: []string{}}
		if ti.Rows > 0 {
			ti.Dim = t.Embedding.Weights[0].Value().Size()
		}
		det, err := untrained.Detect(t.Embedding, nil)
		if err != nil {
			return modelInfo{}, fmt.Errorf("table %s: %w", t.HFPath, err)
		}
		ti.Untrained, ti.UntrainedSummary = det.IDs(), det.String()
		if i < len(groups) {
			ti.Tying = groups[i].String()
			for _, c := range groups[i].Copies {
				ti.Tied = append(ti.Tied, c.Output.HFPath)
			}
		}
		res.Tables = append(res.Tables, ti)
	}
	for _, o := range l.Outputs {
		res.Outputs = append(res.Outputs, o.HFPath)
	}
	return res, nil
}

func (r modelInfo) print(w io.Writer) {
	fmt.Fprintf(w, "model %s: %s (%s)", r.Dir, r.Family, r.Architecture)
	if r.Layout != "" {
		fmt.Fprintf(w, ", %s", r.Layout)
	}
	fmt.Fprintf(w, "\nvocabulary: %d tokens", r.VocabSize)
	if len(r.AddedTokens) > 0 {
		fmt.Fprintf(w, ", added: %s", strings.Join(r.AddedTokens, " "))
	}
	fmt.Fprintln(w)
	for _, t := range r.Tables {
		kind := "table"
		if t.Input {
			kind = "input table"
		}
		fmt.Fprintf(w, "%s %s: %d × %d (Go %s; names %s)\n  tying: %s\n", kind, t.HFName, t.Rows, t.Dim, t.GoPath, strings.Join(t.Names, ", "), t.Tying)
		if t.UntrainedSummary != "" {
			fmt.Fprintf(w, "  untrained: %s\n", t.UntrainedSummary)
		}
	}
	if len(r.Outputs) > 0 {
		fmt.Fprintf(w, "output projections: %s\n", strings.Join(r.Outputs, ", "))
	}
}

// PEFT's task types (peft.utils.peft_types.TaskType); any other non-null
// task_type makes PeftConfig fail.
var peftTaskTypes = map[string]bool{"SEQ_CLS": true, "SEQ_2_SEQ_LM": true, "CAUSAL_LM": true, "TOKEN_CLS": true, "QUESTION_ANS": true, "FEATURE_EXTRACTION": true}

// The fields of PEFT's TrainableTokensConfig; others are warned about and
// dropped by PEFT.
var peftConfigFields = map[string]bool{"auto_mapping": true, "base_model_name_or_path": true, "inference_mode": true, "init_weights": true,
	"peft_type": true, "peft_version": true, "revision": true, "target_modules": true, "task_type": true, "token_indices": true}

func inspectAdapter(dir, modelDir string) (adapterInfo, error) {
	res := adapterInfo{Kind: "adapter", Dir: dir, Files: map[string]int64{}, Problems: []string{}, Warnings: []string{}}
	cfgPath := filepath.Join(dir, "adapter_config.json")
	raw, err := readFile(cfgPath)
	if err != nil {
		return res, err
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return res, fmt.Errorf("%s: not a JSON object: %w", cfgPath, err)
	}
	res.Config = raw
	entries, err := os.ReadDir(dir)
	if err != nil {
		return res, err
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			res.Files[e.Name()] = info.Size()
		}
	}
	problem := func(f string, a ...any) { res.Problems = append(res.Problems, fmt.Sprintf(f, a...)) }
	warn := func(f string, a ...any) { res.Warnings = append(res.Warnings, fmt.Sprintf(f, a...)) }

	var peftType string
	if err := json.Unmarshal(cfg["peft_type"], &peftType); err != nil || peftType == "" {
		problem("adapter_config.json has no peft_type string")
	} else if peftType != "TRAINABLE_TOKENS" {
		problem("peft_type is %q, not TRAINABLE_TOKENS", peftType)
	}
	var unknown []string
	for k := range cfg {
		if !peftConfigFields[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		warn("PEFT ignores unknown config fields with a warning: %s", strings.Join(unknown, ", "))
	}
	if tt, ok := cfg["task_type"]; ok && string(tt) != "null" {
		var s string
		if json.Unmarshal(tt, &s) != nil || !peftTaskTypes[s] {
			problem("task_type %s is not one of PEFT's task types", tt)
		}
	}
	if err := json.Unmarshal(cfg["token_indices"], &res.Tokens); err != nil {
		problem("token_indices is not a list of integers")
	} else if len(res.Tokens) == 0 {
		problem("token_indices is empty")
	}

	stPath := filepath.Join(dir, "adapter_model.safetensors")
	if _, ok := res.Files["adapter_model.safetensors"]; ok {
		f, _, err := regular.Open(stPath)
		if err != nil {
			return res, err
		}
		defer f.Close()
		h, err := safetensors.ReadHeader(f, res.Files["adapter_model.safetensors"], stPath)
		if err != nil {
			problem("%v", err)
		} else {
			inspectTensors(&res, h, problem, warn)
		}
	} else if _, ok := res.Files["adapter_model.bin"]; ok {
		warn("only adapter_model.bin (a pickle): PEFT and gopeft load it (gopeft interprets tensor reconstruction only); safetensors is preferred")
	} else {
		problem("no adapter_model.safetensors (or adapter_model.bin)")
	}
	if base := baseDir(cfg); base != "" && !hasHFWeights(base) {
		warn("base_model_name_or_path %q is a local directory without Hugging Face weights (pytorch_model.bin or model.safetensors): for PEFT, load the Hugging Face model (resized to the added tokens) yourself", base)
	}
	if base := baseVocab(cfg); base > 0 {
		for _, id := range res.Tokens {
			if id >= base {
				problem("token id %d is outside the vocabulary (%d) of base_model_name_or_path's config.json: PEFT fails with an IndexError unless the model is resized first (resize_token_embeddings)", id, base)
				break
			}
		}
	}
	if modelDir != "" {
		res.Model = modelDir
		m, err := loadModel(modelDir)
		if err != nil {
			return res, err
		}
		if l, err := registry.Describe(m.nn()); err == nil && l.Input() != nil {
			if det, err := untrained.Detect(l.Input().Embedding, nil); err == nil {
				for _, id := range res.Tokens {
					if det.Contains(id) {
						res.UntrainedBaseRows = append(res.UntrainedBaseRows, id)
					}
				}
			}
		}
		ok := true
		if _, err := trainabletokens.Load(m.nn(), dir, ""); err != nil {
			ok, res.GopeftError = false, oneLine(err.Error())
		}
		res.GopeftLoads = &ok
	}
	res.PEFTOK = len(res.Problems) == 0
	return res, nil
}

func inspectTensors(res *adapterInfo, h *safetensors.Header, problem, warn func(string, ...any)) {
	dims := map[uint64]bool{}
	for _, t := range h.Tensors {
		bytes := t.End - t.Begin
		res.Tensors = append(res.Tensors, tensorInfo{Name: t.Name, DType: string(t.DType), Shape: t.Shape, Bytes: bytes})
		switch {
		case strings.Contains(t.Name, ".base_layer."):
			warn("%s: a full embedding layer (PEFT saves these after a resize); PEFT loads it, gopeft refuses it", t.Name)
			continue
		case !strings.HasPrefix(t.Name, "base_model.model.") || !strings.HasSuffix(t.Name, ".trainable_tokens_delta"):
			problem("tensor %s is not base_model.model.<module>.trainable_tokens_delta", t.Name)
			continue
		}
		switch t.DType {
		case "F32", "F64", "F16", "BF16":
		default:
			problem("tensor %s has dtype %s (want a float type)", t.Name, t.DType)
		}
		if len(t.Shape) != 2 || (len(res.Tokens) > 0 && t.Shape[0] != uint64(len(res.Tokens))) {
			problem("tensor %s has shape %v, want [%d, dim] (one row per token index)", t.Name, t.Shape, len(res.Tokens))
			continue
		}
		dims[t.Shape[1]] = true
	}
	if len(dims) > 1 {
		problem("the delta tensors have different widths")
	}
	if len(res.Tensors) == 0 {
		problem("the safetensors file has no tensor")
	}
}

// baseDir returns base_model_name_or_path when it is a local directory.
func baseDir(cfg map[string]json.RawMessage) string {
	var base string
	if json.Unmarshal(cfg["base_model_name_or_path"], &base) != nil || base == "" {
		return ""
	}
	if info, err := os.Stat(base); err != nil || !info.IsDir() {
		return ""
	}
	return base
}

func hasHFWeights(dir string) bool {
	for _, f := range []string{"pytorch_model.bin", "model.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// baseVocab returns vocab_size from the config.json of a local
// base_model_name_or_path, or 0.
func baseVocab(cfg map[string]json.RawMessage) int {
	var base string
	if json.Unmarshal(cfg["base_model_name_or_path"], &base) != nil || base == "" {
		return 0
	}
	data, err := regular.ReadFile(filepath.Join(base, "config.json"), 1<<20)
	if err != nil {
		return 0
	}
	var c struct {
		VocabSize int `json:"vocab_size"`
	}
	if json.Unmarshal(data, &c) != nil {
		return 0
	}
	return c.VocabSize
}

func (r adapterInfo) print(w io.Writer) {
	fmt.Fprintf(w, "adapter %s: tokens %v\n", r.Dir, r.Tokens)
	var cfg map[string]any
	if json.Unmarshal(r.Config, &cfg) == nil {
		keys := make([]string, 0, len(cfg))
		for k := range cfg {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, _ := json.Marshal(cfg[k])
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	for _, t := range r.Tensors {
		fmt.Fprintf(w, "tensor %s %s %v (%d bytes)\n", t.Name, t.DType, t.Shape, t.Bytes)
	}
	names := make([]string, 0, len(r.Files))
	for n := range r.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "file %s: %d bytes\n", n, r.Files[n])
	}
	if r.PEFTOK {
		fmt.Fprintln(w, "PEFT: loads cleanly")
	} else {
		fmt.Fprintln(w, "PEFT: will NOT load it:")
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "  problem:", p)
	}
	for _, p := range r.Warnings {
		fmt.Fprintln(w, "  warning:", p)
	}
	if r.GopeftLoads != nil {
		if *r.GopeftLoads {
			fmt.Fprintf(w, "gopeft: loads into %s\n", r.Model)
		} else {
			fmt.Fprintf(w, "gopeft: does not load into %s: %s\n", r.Model, r.GopeftError)
		}
	}
	if len(r.UntrainedBaseRows) > 0 {
		fmt.Fprintf(w, "untrained: the base rows of tokens %v look untrained in %s (zero, or a far and small norm)\n", r.UntrainedBaseRows, r.Model)
	}
}
