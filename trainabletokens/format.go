package trainabletokens

// Adapter directories in PEFT's layout: what the files are called and hold,
// shared by save.go and load.go. The registry entry at the bottom makes
// registry.LoadAdapter dispatch "TRAINABLE_TOKENS" directories here.
//
// What is written, per PEFT (src/peft/config.py PeftConfigMixin/PeftConfig,
// src/peft/tuners/trainable_tokens/config.py, PeftModel.save_pretrained):
//
//   - adapter_config.json: json.dumps(indent=2, sort_keys=True) of the config
//     dataclass: auto_mapping, base_model_name_or_path, inference_mode (true
//     on save), init_weights, peft_type, peft_version, revision,
//     target_modules (the resolved value: the list, the regex string, or the
//     input embedding's module name as a string), task_type, token_indices.
//     Nothing else: PEFT warns about unknown keys.
//   - adapter_model.safetensors: one [k, dim] tensor per trained table, key
//     base_model.model.<module>.trainable_tokens_delta, the absolute rows in
//     token_indices order, metadata {"format": "pt"} plus gopeft's own
//     string fields (see metaFormat and friends), which PEFT ignores.
//
// PEFT's standalone save also writes every tied module's copy of the rows
// (BART: model.encoder.embed_tokens, model.decoder.embed_tokens and lm_head;
// BERT: cls.predictions.decoder), because the tied layers share the
// embedding layer's parameter dict. Save does the same by default: it
// writes exactly the keys PEFT's state dict has (peftkeys.go);
// SaveOptions.CompactTied writes each table once, which PEFT loads
// correctly (the tied layers share the parameter) but with a "Found missing
// adapter keys" warning. Load accepts tied duplicates only when they equal
// the table's tensor bit for bit.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gopeft/gopeft/registry"
)

// File names inside an adapter directory, as PEFT names them.
const (
	// ConfigFile is the adapter configuration.
	ConfigFile = registry.ConfigFile
	// WeightsFile holds the rows.
	WeightsFile = "adapter_model.safetensors"
	// PickleWeightsFile is PEFT's torch.save format (safe_serialization=
	// False). Load reads it when there is no WeightsFile, with a reader that
	// interprets only tensor reconstruction (internal/torchbin); Save never
	// writes it.
	PickleWeightsFile = "adapter_model.bin"
)

// PEFTVersion is written as peft_version: the PEFT release whose file
// format Save follows. PEFT parses this field as a version number, so it
// must be one.
const PEFTVersion = "0.20.0"

// Keys of adapter_model.safetensors' __metadata__ written by Save. PEFT
// ignores them; Load checks them when present (files written by PEFT have
// only "format").
const (
	metaFormat       = "format"               // "pt", as PEFT writes it
	metaGopeft       = "gopeft.format"        // version of gopeft's fields: "1"
	metaAdapter      = "gopeft.adapter"       // adapter name at save time (informative)
	metaTokenIndices = "gopeft.token_indices" // JSON list, must equal the config's
	// metaTokenIndicesDigest replaces metaTokenIndices when the list is
	// long: the hex SHA-256 of the JSON list, so that the header stays a
	// few hundred bytes whatever k (the file is then within 1% of the rows'
	// own size from k = 100 rows of width 256 on).
	metaTokenIndicesDigest = "gopeft.token_indices.sha256"
	// maxInlineIndices is the longest JSON list written inline.
	maxInlineIndices  = 64
	metaVocabPrefix   = "gopeft.vocab_size." // + module: rows of the table at save time
	metaDimPrefix     = "gopeft.dim."        // + module: row width of the table
	gopeftFormatValue = "1"
)

const (
	tensorPrefix = "base_model.model."
	tensorSuffix = ".trainable_tokens_delta"
	// MaxConfigSize bounds adapter_config.json: Load refuses a larger file
	// before reading it (a million token ids fit).
	MaxConfigSize = 64 << 20
)

// ErrInvalidAdapterFile wraps every error about the content of an adapter
// directory: missing or malformed files, and files that do not fit the
// model.
var ErrInvalidAdapterFile = errors.New("trainabletokens: invalid adapter file")

// SaveOptions tunes Save.
type SaveOptions struct {
	// BaseModelNameOrPath is written as base_model_name_or_path: the Hub id
	// or local path of the base model, which PEFT's AutoPeftModel loads
	// ("" writes null).
	BaseModelNameOrPath string
	// Revision is written as revision, the base model's revision ("" writes null).
	Revision string
	// CompactTied writes each table's rows once, under the table's own
	// module name (when PEFT wraps it). By default Save writes PEFT's exact
	// key set: one copy per module PEFT wraps, tied modules included (BART's
	// model.shared, encoder/decoder embed_tokens and lm_head; BERT's
	// word_embeddings and cls.predictions.decoder), so PEFT loads the file
	// with no warning. PEFT loads a compact file correctly too (its tied
	// layers share the embedding's parameter) but warns "Found missing
	// adapter keys". Load reads both forms.
	CompactTied bool
	// SaveEmbeddingLayers also writes every wrapped module's whole base
	// layer, as PEFT's save_embedding_layers does (its default after a
	// vocabulary resize): base_model.model.<module>.base_layer.weight (the
	// table without any adapter's rows: [V, dim]) and, for BERT's MLM
	// decoder, .base_layer.bias ([V]). The file then carries the resized
	// vocabulary itself; it grows by V·dim values per module.
	SaveEmbeddingLayers bool
	// ModulesToSave also writes the model's task head (a classifier
	// trained with the rows, as PEFT's modules_to_save trains it) under
	// PEFT's saved modules_to_save keys: base_model.model.<module>.weight
	// and .bias, with transformers' module names ("classifier",
	// "qa_outputs", "classification_head.dense"/".out_proj"). Load copies
	// them into the model's head, replacing its values (Unload and Delete
	// do not restore them). Save fails on a model without a task head.
	ModulesToSave bool
}

// LoadOptions tunes Load and LoadAdapter.
type LoadOptions struct {
	// AllowNonFinite loads rows holding NaN or ±Inf, an error by default.
	AllowNonFinite bool
	// AllowVocabChange loads a file that gopeft saved for a table with a
	// different number of rows than the model's (an error by default: the
	// base model is probably not the one the adapter was trained on). Files
	// without gopeft's metadata, such as PEFT's own, carry no vocabulary size.
	AllowVocabChange bool
}

// peftConfigFile is adapter_config.json as PEFT writes it; the field order
// is json.dumps' sort_keys order.
type peftConfigFile struct {
	AutoMapping         *autoMapping `json:"auto_mapping"`
	BaseModelNameOrPath *string      `json:"base_model_name_or_path"`
	InferenceMode       bool         `json:"inference_mode"`
	InitWeights         bool         `json:"init_weights"`
	PeftType            string       `json:"peft_type"`
	PeftVersion         string       `json:"peft_version"`
	Revision            *string      `json:"revision"`
	TargetModules       any          `json:"target_modules"`
	TaskType            *string      `json:"task_type"`
	TokenIndices        []int        `json:"token_indices"`
}

// autoMapping is what PEFT writes when task_type is null, so that
// AutoPeftModel can find the base model class.
type autoMapping struct {
	BaseModelClass string `json:"base_model_class"`
	ParentLibrary  string `json:"parent_library"`
}

// tensorKey is the safetensors key of module's rows.
func tensorKey(module string) string { return tensorPrefix + module + tensorSuffix }

// moduleOf extracts <module> from base_model.model.<module>.trainable_tokens_delta.
func moduleOf(key string) (string, bool) {
	if !strings.HasPrefix(key, tensorPrefix) || !strings.HasSuffix(key, tensorSuffix) || len(key) <= len(tensorPrefix)+len(tensorSuffix) {
		return "", false
	}
	return key[len(tensorPrefix) : len(key)-len(tensorSuffix)], true
}

// resolveModule finds the table a full module name denotes: one of a
// table's names (isTable) or one of an output projection's names, standing
// for the table it is tied to.
func resolveModule(l *registry.Layout, mod string) (tab *registry.Table, isTable bool) {
	for _, t := range l.Tables {
		if contains(t.Names, mod) {
			return t, true
		}
	}
	for _, o := range l.Outputs {
		if o.Of != nil && contains(o.Names, mod) {
			return o.Of, false
		}
	}
	return nil, false
}

// tiedModules lists the other Hugging Face module names PEFT saves the
// table's rows under: aliases of the table that are module paths (BART's
// encoder and decoder embed_tokens) and projections that are tied copies.
func tiedModules(t *target) []string {
	tab := t.group.Table
	var out []string
	for _, n := range tab.Names {
		if n != tab.HFPath && n == registry.SnakePath(n) {
			out = append(out, n)
		}
	}
	for _, c := range t.group.Copies {
		if c.Output.HFPath != "" && !contains(out, c.Output.HFPath) && c.Output.HFPath != tab.HFPath {
			out = append(out, c.Output.HFPath)
		}
	}
	return out
}

func targetsString(c Config) string {
	switch {
	case c.TargetRegex != "":
		return strconv.Quote(c.TargetRegex)
	case len(c.TargetModules) > 0:
		return fmt.Sprintf("%q", c.TargetModules)
	}
	return "null (the input embedding)"
}

// indicesDigest is the hex SHA-256 of the JSON list of ids.
func indicesDigest(ids []int) string {
	b, _ := json.Marshal(ids)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// idList renders token ids for an error message: all of them when there
// are few, else the count and the first few.
func idList(ids []int) string {
	const few = 8
	if len(ids) <= few {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%d ids %v...", len(ids), ids[:few])
}
