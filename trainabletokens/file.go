package trainabletokens

// Adapter directories in PEFT's layout: Save, Load, LoadAdapter, and the
// registry entry that makes registry.LoadAdapter dispatch "TRAINABLE_TOKENS"
// directories here.
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
// embedding layer's parameter dict. SaveOptions.TiedDuplicates does the
// same; by default each table's rows are written once, which PEFT loads
// correctly (the tied layers share the parameter) but with a "Found missing
// adapter keys" warning. Load accepts tied duplicates only when they equal
// the table's tensor bit for bit.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/registry"
)

// File names inside an adapter directory, as PEFT names them.
const (
	// ConfigFile is the adapter configuration.
	ConfigFile = registry.ConfigFile
	// WeightsFile holds the rows.
	WeightsFile = "adapter_model.safetensors"
	// PickleWeightsFile is PEFT's legacy torch.save format, which gopeft
	// does not read (pickles are code, not data).
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
	// maxConfigSize bounds adapter_config.json (a million token ids fit).
	maxConfigSize = 64 << 20
)

// ErrInvalidAdapterFile wraps every error about the content of an adapter
// directory: missing or malformed files, and files that do not fit the
// model.
var ErrInvalidAdapterFile = errors.New("trainabletokens: invalid adapter file")

func init() {
	registry.RegisterMethod(PeftType, func(model nn.Model, dir, name string) (any, error) {
		return Load(model, dir, name)
	})
}

// SaveOptions tunes Save.
type SaveOptions struct {
	// BaseModelNameOrPath is written as base_model_name_or_path: the Hub id
	// or local path of the base model, which PEFT's AutoPeftModel loads
	// ("" writes null).
	BaseModelNameOrPath string
	// Revision is written as revision, the base model's revision ("" writes null).
	Revision string
	// TiedDuplicates also writes every tied module's copy of a table's rows
	// under its own key, as PEFT's standalone save does (BART's
	// encoder/decoder embed_tokens and lm_head, BERT's
	// cls.predictions.decoder). Off by default: each table is written once.
	TiedDuplicates bool
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

// hfClasses maps cybertron model types to their transformers classes.
var hfClasses = map[reflect.Type]autoMapping{
	reflect.TypeOf(&bert.Model{}):                          {"BertModel", "transformers.models.bert.modeling_bert"},
	reflect.TypeOf(&bert.ModelForMaskedLM{}):               {"BertForMaskedLM", "transformers.models.bert.modeling_bert"},
	reflect.TypeOf(&bert.ModelForSequenceClassification{}): {"BertForSequenceClassification", "transformers.models.bert.modeling_bert"},
	reflect.TypeOf(&bert.ModelForTokenClassification{}):    {"BertForTokenClassification", "transformers.models.bert.modeling_bert"},
	reflect.TypeOf(&bert.ModelForQuestionAnswering{}):      {"BertForQuestionAnswering", "transformers.models.bert.modeling_bert"},
	reflect.TypeOf(&bart.Model{}):                          {"BartModel", "transformers.models.bart.modeling_bart"},
	reflect.TypeOf(&bart.ModelForConditionalGeneration{}):  {"BartForConditionalGeneration", "transformers.models.bart.modeling_bart"},
	reflect.TypeOf(&bart.ModelForSequenceClassification{}): {"BartForSequenceClassification", "transformers.models.bart.modeling_bart"},
}

// Save writes the named adapter ("" means the first one added) to dir in
// PEFT's layout (adapter_config.json and adapter_model.safetensors), so
// that PEFT's PeftModel.from_pretrained and Load read it back. The rows
// written are the adapter's current rows, whether it is active, inactive
// or merged.
//
// The write is atomic: both files are written and synced in a temporary
// directory next to dir, which then replaces dir in one rename (on Linux an
// atomic exchange). Whatever fails, dir holds either the previous adapter
// or the new one, never a mix or a truncated file. Other entries of an
// existing dir (a tokenizer, a README, PEFT's sub-directories of other
// adapters) are carried over into the new directory.
func (m *Model) Save(dir, name string, opts SaveOptions) error {
	if dir == "" {
		return fmt.Errorf("trainabletokens: save: empty directory name")
	}
	files, err := m.encode(name, opts)
	if err != nil {
		return err
	}
	return writeDirAtomic(dir, files)
}

// encode renders the adapter's two files under the read lock.
func (m *Model) encode(name string, opts SaveOptions) (map[string][]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.unloaded {
		return nil, ErrUnloaded
	}
	if name == "" {
		if len(m.names) == 0 {
			return nil, fmt.Errorf("%w: the model has no adapter to save", ErrUnknownAdapter)
		}
		name = m.names[0]
	}
	if err := m.lookup([]string{name}); err != nil {
		return nil, err
	}
	a := m.adapters[name]
	cfg := peftConfigFile{
		InferenceMode: true,
		InitWeights:   a.cfg.InitWeights == InitFromBase,
		PeftType:      PeftType,
		PeftVersion:   PEFTVersion,
		TokenIndices:  append([]int{}, a.cfg.TokenIndices...),
	}
	if am, ok := hfClasses[reflect.TypeOf(m.base)]; ok {
		cfg.AutoMapping = &am
	}
	if opts.BaseModelNameOrPath != "" {
		cfg.BaseModelNameOrPath = &opts.BaseModelNameOrPath
	}
	if opts.Revision != "" {
		cfg.Revision = &opts.Revision
	}
	switch {
	case a.cfg.TargetRegex != "":
		cfg.TargetModules = a.cfg.TargetRegex
	case len(a.cfg.TargetModules) > 0:
		cfg.TargetModules = append([]string(nil), a.cfg.TargetModules...)
	default: // resolved to the input embedding: PEFT writes its name as a string
		cfg.TargetModules = a.targets[0].group.Table.HFPath
	}
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}

	ids, _ := json.Marshal(a.cfg.TokenIndices)
	meta := map[string]string{
		metaFormat:  "pt",
		metaGopeft:  gopeftFormatValue,
		metaAdapter: name,
	}
	if len(ids) <= maxInlineIndices {
		meta[metaTokenIndices] = string(ids)
	} else {
		meta[metaTokenIndicesDigest] = indicesDigest(a.cfg.TokenIndices)
	}
	var tensors []stOut
	for _, t := range a.targets {
		tab := t.group.Table
		dim := tab.Embedding.Dim
		data, dtype, err := encodeRows(t.rows, dim)
		if err != nil {
			return nil, fmt.Errorf("trainabletokens: saving %s: %w", tab.HFPath, err)
		}
		modules := []string{tab.HFPath}
		if opts.TiedDuplicates {
			modules = append(modules, tiedModules(t)...)
		}
		for _, mod := range modules {
			tensors = append(tensors, stOut{name: tensorPrefix + mod + tensorSuffix, dtype: dtype, shape: []int{len(t.ids), dim}, data: data})
		}
		meta[metaVocabPrefix+tab.HFPath] = strconv.Itoa(len(tab.Embedding.Weights))
		meta[metaDimPrefix+tab.HFPath] = strconv.Itoa(dim)
	}
	st, err := encodeSafetensors(meta, tensors)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{ConfigFile: cfgJSON, WeightsFile: st}, nil
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

// encodeRows lays k rows of width dim out as little-endian F32 or F64.
func encodeRows(ps []*nn.Param, dim int) ([]byte, string, error) {
	var out []byte
	dtype := ""
	for _, p := range ps {
		f32, f64, err := rows.Floats(p.Value().(mat.Matrix))
		if err != nil {
			return nil, "", err
		}
		switch {
		case f32 != nil && dtype != "F64" && len(f32) == dim:
			dtype = "F32"
			for _, v := range f32 {
				out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
			}
		case f64 != nil && dtype != "F32" && len(f64) == dim:
			dtype = "F64"
			for _, v := range f64 {
				out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
			}
		default:
			return nil, "", fmt.Errorf("rows of mixed dtype or width (want %d values)", dim)
		}
	}
	return out, dtype, nil
}

// Load injects the adapter stored in dir (PEFT's layout, written by PEFT or
// by Save) into model under the adapter name ("" means "default"), active.
// The adapter's rows are exactly the rows in the file (absolute rows, as in
// PEFT), whatever the model's rows are; tied copies follow them.
//
// Everything is checked before the model changes: on any error the model
// is untouched. Errors about the files wrap ErrInvalidAdapterFile and name
// the offending value and what was expected. A float64 file loads into a
// float32 model only when every value converts exactly (otherwise it is an
// error naming the first value that does not); a float32 file always
// widens exactly into a float64 model.
func Load(model nn.Model, dir, name string, opts ...LoadOptions) (*Model, error) {
	if name == "" {
		name = DefaultAdapterName
	}
	o, err := oneOption(opts)
	if err != nil {
		return nil, err
	}
	src, err := openSource(dir)
	if err != nil {
		return nil, err
	}
	defer src.close()
	return loadNew(model, src, name, o)
}

// LoadAdapter adds the adapter stored in dir under name, inactive (as
// AddAdapter does); SetActive switches to it. On error nothing changes.
func (m *Model) LoadAdapter(dir, name string, opts ...LoadOptions) error {
	o, err := oneOption(opts)
	if err != nil {
		return err
	}
	src, err := openSource(dir)
	if err != nil {
		return err
	}
	defer src.close()
	return m.loadAdapter(src, name, o)
}

func oneOption(opts []LoadOptions) (LoadOptions, error) {
	switch len(opts) {
	case 0:
		return LoadOptions{}, nil
	case 1:
		return opts[0], nil
	}
	return LoadOptions{}, fmt.Errorf("trainabletokens: pass at most one LoadOptions, got %d", len(opts))
}

// source is an adapter directory's content: the config bytes and the
// safetensors file, read lazily.
type source struct {
	configPath  string
	config      []byte
	weightsPath string
	weights     io.ReaderAt
	size        int64
	closer      io.Closer
}

func (s *source) close() {
	if s.closer != nil {
		s.closer.Close()
	}
}

func openSource(dir string) (*source, error) {
	s := &source{configPath: filepath.Join(dir, ConfigFile), weightsPath: filepath.Join(dir, WeightsFile)}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("%w: adapter directory: %v", ErrInvalidAdapterFile, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrInvalidAdapterFile, dir)
	}
	cfg, err := readCapped(s.configPath, maxConfigSize)
	if err != nil {
		return nil, err
	}
	s.config = cfg
	f, err := os.Open(s.weightsPath)
	if err != nil {
		if _, perr := os.Stat(filepath.Join(dir, PickleWeightsFile)); perr == nil {
			return nil, fmt.Errorf("%w: %s has %s (a PyTorch pickle) but no %s; gopeft reads safetensors only: save the adapter with PEFT's safe_serialization=True (the default)",
				ErrInvalidAdapterFile, dir, PickleWeightsFile, WeightsFile)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidAdapterFile, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %v", ErrInvalidAdapterFile, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInvalidAdapterFile, s.weightsPath)
	}
	s.weights, s.size, s.closer = f, fi.Size(), f
	return s, nil
}

func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidAdapterFile, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidAdapterFile, path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidAdapterFile, path, limit)
	}
	return data, nil
}

// loadNew builds the whole plan against model, then injects.
func loadNew(model nn.Model, src *source, name string, o LoadOptions) (*Model, error) {
	layout, err := registry.Describe(model)
	if err != nil {
		return nil, err
	}
	p, err := plan(layout, src, o)
	if err != nil {
		return nil, err
	}
	m, err := New(model, p.cfg, name)
	if err != nil {
		return nil, err // plan checked everything New checks; not expected
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	err = p.fill(m.adapters[name])
	if err == nil {
		err = m.apply()
	}
	if err != nil { // not expected either; give the model back as it was
		m.merged = nil
		m.unload()
		return nil, err
	}
	return m, nil
}

func (m *Model) loadAdapter(src *source, name string, o LoadOptions) error {
	if err := m.lockWrite(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if err := m.checkNewName(name); err != nil {
		return err
	}
	p, err := plan(m.layout, src, o)
	if err != nil {
		return err
	}
	a, err := m.newAdapter(name, p.cfg)
	if err != nil {
		return err
	}
	if err := p.fill(a); err != nil {
		return err
	}
	m.adapters[name] = a
	m.names = append(m.names, name)
	return m.apply()
}

// loadPlan is a fully validated adapter: its config and, per target table,
// the k rows converted to the model's dtype.
type loadPlan struct {
	cfg  Config
	rows map[string]*tableRows // by table HFPath (stable across New's renewal)
}

type tableRows struct {
	f32 []float32 // k·dim, row-major, or
	f64 []float64
}

// fill copies the planned rows into the adapter's row params.
func (p *loadPlan) fill(a *adapter) error {
	for _, t := range a.targets {
		tr := p.rows[t.group.Table.HFPath]
		if tr == nil {
			return fmt.Errorf("trainabletokens: internal error: no rows planned for %s", t.group.Table.HFPath)
		}
		dim := t.group.Table.Embedding.Dim
		for k, param := range t.rows {
			f32, f64, err := rows.Floats(param.Value().(mat.Matrix))
			if err != nil {
				return err
			}
			switch {
			case f32 != nil && tr.f32 != nil:
				copy(f32, tr.f32[k*dim:(k+1)*dim])
			case f64 != nil && tr.f64 != nil:
				copy(f64, tr.f64[k*dim:(k+1)*dim])
			default:
				return fmt.Errorf("trainabletokens: internal error: dtype changed for %s", t.group.Table.HFPath)
			}
		}
	}
	return nil
}

// plan reads and checks everything against the layout without changing it.
func plan(l *registry.Layout, src *source, o LoadOptions) (*loadPlan, error) {
	cfg, err := parseConfig(src.config, src.configPath)
	if err != nil {
		return nil, err
	}
	if matched, err := l.Match(cfg.targets()); err == nil {
		for _, t := range matched {
			for i, id := range cfg.TokenIndices {
				if n := len(t.Embedding.Weights); id >= n {
					return nil, fmt.Errorf("%w: %s: token_indices[%d] = %d is outside the vocabulary of %s: allowed [0, %d)",
						ErrInvalidAdapterFile, src.configPath, i, id, t.HFPath, n)
				}
			}
		}
	}
	tables, err := checkTargets(l, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidAdapterFile, src.configPath, err)
	}
	h, err := readSTHeader(src.weights, src.size, src.weightsPath)
	if err != nil {
		return nil, err
	}
	if err := checkMetadata(h, l, cfg, o); err != nil {
		return nil, err
	}
	fe := func(format string, args ...any) error { return stErr(src.weightsPath, format, args...) }

	// Map every tensor to a table; group tied duplicates.
	selected := map[*registry.Table]bool{}
	for _, t := range tables {
		selected[t] = true
	}
	byTable := map[*registry.Table][]*stTensor{}
	primary := map[*registry.Table]*stTensor{}
	for _, t := range h.tensors {
		mod, ok := moduleOf(t.name)
		if !ok {
			return nil, fe("tensor %q is not a Trainable Tokens tensor; expected keys %s<module>%s", t.name, tensorPrefix, tensorSuffix)
		}
		tab, isTable := resolveModule(l, mod)
		if tab == nil {
			return nil, fe("tensor %q is for module %q, which is no embedding table of %s (nor a projection tied to one); embedding modules: %s",
				t.name, mod, l.Architecture, strings.Join(l.Names(), ", "))
		}
		if !selected[tab] {
			return nil, fe("tensor %q is for table %s, which target_modules %s in %s does not select",
				t.name, tab.HFPath, targetsString(cfg), filepath.Base(src.configPath))
		}
		byTable[tab] = append(byTable[tab], t)
		if isTable && (primary[tab] == nil || mod == tab.HFPath) {
			primary[tab] = t
		}
	}

	k := len(cfg.TokenIndices)
	p := &loadPlan{cfg: cfg, rows: map[string]*tableRows{}}
	for _, tab := range tables {
		ts := byTable[tab]
		if len(ts) == 0 {
			return nil, fe("no tensor for table %s; expected key %q", tab.HFPath, tensorPrefix+tab.HFPath+tensorSuffix)
		}
		main := primary[tab]
		if main == nil { // only tied modules' copies (e.g. target lm_head alone)
			main = ts[0]
		}
		dim := tab.Embedding.Dim
		if main.dtype != "F32" && main.dtype != "F64" {
			return nil, fe("tensor %q has dtype %s; expected F32 or F64", main.name, main.dtype)
		}
		if len(main.shape) != 2 {
			return nil, fe("tensor %q has shape %v; expected 2 dimensions [%d %d] (len(token_indices) rows of width %d)", main.name, main.shape, k, dim, dim)
		}
		if main.shape[0] != uint64(k) {
			return nil, fe("tensor %q has %d rows; expected %d, one per token_indices entry %v", main.name, main.shape[0], k, cfg.TokenIndices)
		}
		if main.shape[1] != uint64(dim) {
			return nil, fe("tensor %q rows are %d wide; table %s has dimension %d", main.name, main.shape[1], tab.HFPath, dim)
		}
		data, err := h.read(src.weights, main)
		if err != nil {
			return nil, err
		}
		for _, dup := range ts {
			if dup == main {
				continue
			}
			if err := sameTensor(h, src.weights, main, dup, data, cfg.TokenIndices, dim); err != nil {
				return nil, err
			}
		}
		tr, err := convertRows(main, data, tab, cfg.TokenIndices, dim, o, fe)
		if err != nil {
			return nil, err
		}
		p.rows[tab.HFPath] = tr
	}
	return p, nil
}

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

func targetsString(c Config) string {
	switch {
	case c.TargetRegex != "":
		return strconv.Quote(c.TargetRegex)
	case len(c.TargetModules) > 0:
		return fmt.Sprintf("%q", c.TargetModules)
	}
	return "null (the input embedding)"
}

// sameTensor checks that a tied duplicate equals the main tensor bit for bit.
func sameTensor(h *stHeader, r io.ReaderAt, main, dup *stTensor, data []byte, ids []int, dim int) error {
	if dup.dtype != main.dtype || !reflect.DeepEqual(dup.shape, main.shape) {
		return stErr(h.file, "tied duplicate %q (%s %v) differs from %q (%s %v); PEFT writes tied modules as identical copies",
			dup.name, dup.dtype, dup.shape, main.name, main.dtype, main.shape)
	}
	other, err := h.read(r, dup)
	if err != nil {
		return err
	}
	if bytes.Equal(data, other) {
		return nil
	}
	w := 4
	if main.dtype == "F64" {
		w = 8
	}
	for i := 0; i+w <= len(data); i += w {
		if !bytes.Equal(data[i:i+w], other[i:i+w]) {
			e := i / w
			return stErr(h.file, "tied duplicate %q differs from %q at row %d (token id %d), column %d: %v vs %v; PEFT writes tied modules as identical copies",
				dup.name, main.name, e/dim, ids[e/dim], e%dim, decodeAt(other, main.dtype, e), decodeAt(data, main.dtype, e))
		}
	}
	return nil
}

func decodeAt(b []byte, dtype string, e int) float64 {
	if dtype == "F64" {
		return math.Float64frombits(binary.LittleEndian.Uint64(b[e*8:]))
	}
	return float64(math.Float32frombits(binary.LittleEndian.Uint32(b[e*4:])))
}

// convertRows decodes the tensor into the model's dtype, checking
// finiteness and, for float64 → float32, exactness.
func convertRows(t *stTensor, data []byte, tab *registry.Table, ids []int, dim int, o LoadOptions, fe func(string, ...any) error) (*tableRows, error) {
	modelDType := rows.DType(tab.Embedding.Weights[ids[0]].Value().(mat.Matrix))
	n := len(ids) * dim
	vals := make([]float64, n)
	for e := 0; e < n; e++ {
		v := decodeAt(data, t.dtype, e)
		if !o.AllowNonFinite && (math.IsNaN(v) || math.IsInf(v, 0)) {
			return nil, fe("tensor %q row %d (token id %d), column %d is %v; rows must be finite (LoadOptions.AllowNonFinite loads them anyway)",
				t.name, e/dim, ids[e/dim], e%dim, v)
		}
		if modelDType == "float32" && t.dtype == "F64" && !math.IsNaN(v) && float64(float32(v)) != v {
			return nil, fe("tensor %q is F64 and the model is float32, but row %d (token id %d), column %d = %v has no exact float32 value; convert the file to F32 (rounding) if that is intended",
				t.name, e/dim, ids[e/dim], e%dim, strconv.FormatFloat(v, 'g', -1, 64))
		}
		vals[e] = v
	}
	tr := &tableRows{}
	switch modelDType {
	case "float32":
		tr.f32 = make([]float32, n)
		if t.dtype == "F32" { // keep NaN payloads bit-exact
			for e := range tr.f32 {
				tr.f32[e] = math.Float32frombits(binary.LittleEndian.Uint32(data[e*4:]))
			}
		} else {
			for e, v := range vals {
				tr.f32[e] = float32(v)
			}
		}
	case "float64":
		tr.f64 = vals
	default:
		return nil, fe("table %s holds %T rows; expected float32 or float64", tab.HFPath, tab.Embedding.Weights[ids[0]].Value())
	}
	return tr, nil
}

// checkMetadata checks gopeft's own metadata fields, when present.
func checkMetadata(h *stHeader, l *registry.Layout, cfg Config, o LoadOptions) error {
	md := h.metadata
	if v, ok := md[metaGopeft]; ok && v != gopeftFormatValue {
		return stErr(h.file, "%s is %q; this gopeft reads format %q (written by a newer gopeft?)", metaGopeft, v, gopeftFormatValue)
	}
	if v, ok := md[metaTokenIndicesDigest]; ok && v != indicesDigest(cfg.TokenIndices) {
		return stErr(h.file, "records a digest of token_indices (%s) that does not match the %d token_indices of %s; the two files come from different saves",
			short([]byte(v)), len(cfg.TokenIndices), ConfigFile)
	}
	if v, ok := md[metaTokenIndices]; ok {
		var ids []int
		if err := json.Unmarshal([]byte(v), &ids); err != nil || ids == nil {
			return stErr(h.file, "metadata %s = %s is not a JSON list of integers", metaTokenIndices, short([]byte(v)))
		}
		if !reflect.DeepEqual(ids, cfg.TokenIndices) {
			return stErr(h.file, "records token_indices %v but %s has %v; the two files come from different saves", ids, ConfigFile, cfg.TokenIndices)
		}
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		var mod string
		var want int
		switch {
		case strings.HasPrefix(key, metaVocabPrefix):
			mod = strings.TrimPrefix(key, metaVocabPrefix)
		case strings.HasPrefix(key, metaDimPrefix):
			mod = strings.TrimPrefix(key, metaDimPrefix)
		default:
			continue
		}
		tab, _ := resolveModule(l, mod)
		if tab == nil {
			continue // the tensors' own check names unknown modules
		}
		got, err := parseNatural(md[key])
		if err != nil {
			return stErr(h.file, "metadata %s = %q: %v", key, md[key], err)
		}
		if strings.HasPrefix(key, metaDimPrefix) {
			if want = tab.Embedding.Dim; got != uint64(want) {
				return stErr(h.file, "was saved for %s with dimension %d; the model's table has dimension %d", mod, got, want)
			}
			continue
		}
		if want = len(tab.Embedding.Weights); got != uint64(want) && !o.AllowVocabChange {
			return stErr(h.file, "was saved for %s with a vocabulary of %d rows; the model's table has %d (a different base model? LoadOptions.AllowVocabChange loads it anyway)", mod, got, want)
		}
	}
	return nil
}

// indicesDigest is the hex SHA-256 of the JSON list of ids.
func indicesDigest(ids []int) string {
	b, _ := json.Marshal(ids)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// parseConfig reads adapter_config.json strictly where it matters: the
// peft_type, token_indices (integers), target_modules (null, a string or a
// list of strings) and init_weights (a bool). Other keys (PEFT's
// base_model_name_or_path, peft_version, ...) are ignored, as PEFT ignores
// unknown ones.
func parseConfig(data []byte, path string) (Config, error) {
	fe := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidAdapterFile, path, fmt.Sprintf(format, args...))
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return Config{}, fe("malformed JSON: %v", err)
	}
	members, err := jsonObject(data)
	if err != nil {
		return Config{}, fe("%v", err)
	}
	fields := map[string]json.RawMessage{}
	for _, m := range members {
		fields[m.key] = m.value
	}
	var cfg Config
	raw, ok := fields["peft_type"]
	if !ok {
		return Config{}, fe("missing \"peft_type\"; expected %q", PeftType)
	}
	var pt any
	if pt, err = jsonValue(raw); err != nil || pt != PeftType {
		return Config{}, fe("peft_type is %s; expected %q", short(raw), PeftType)
	}

	raw, ok = fields["token_indices"]
	if !ok {
		return Config{}, fe("missing \"token_indices\"; expected a list of token ids")
	}
	v, err := jsonValue(raw)
	if err != nil {
		return Config{}, fe("token_indices: %v", err)
	}
	arr, ok := v.([]any)
	if !ok {
		return Config{}, fe("token_indices is %s; expected a list of token ids", short(raw))
	}
	if len(arr) == 0 {
		return Config{}, fe("token_indices is empty; expected at least one token id")
	}
	seen := map[int]int{}
	for i, e := range arr {
		num, ok := e.(json.Number)
		if !ok {
			return Config{}, fe("token_indices[%d] is %v; expected a non-negative integer", i, e)
		}
		u, err := parseNatural(num.String())
		if err != nil || u > math.MaxInt32 {
			return Config{}, fe("token_indices[%d] = %s; expected a token id in [0, 2^31)", i, num)
		}
		id := int(u)
		if j, dup := seen[id]; dup {
			return Config{}, fe("token id %d appears twice in token_indices (positions %d and %d); each id may be listed once", id, j, i)
		}
		seen[id] = i
		cfg.TokenIndices = append(cfg.TokenIndices, id)
	}

	if raw, ok := fields["target_modules"]; ok {
		v, err := jsonValue(raw)
		if err != nil {
			return Config{}, fe("target_modules: %v", err)
		}
		switch tv := v.(type) {
		case nil:
		case string:
			if tv == "" {
				return Config{}, fe("target_modules is an empty string; expected a module name regex, a list of names or null")
			}
			cfg.TargetRegex = tv
		case []any:
			for i, e := range tv {
				s, ok := e.(string)
				if !ok || s == "" {
					return Config{}, fe("target_modules[%d] is %v; expected a non-empty module name", i, e)
				}
				cfg.TargetModules = append(cfg.TargetModules, s)
			}
			if len(cfg.TargetModules) == 0 {
				return Config{}, fe("target_modules is an empty list; expected module names, a regex string or null")
			}
		default:
			return Config{}, fe("target_modules is %s; expected null, a string or a list of strings", short(raw))
		}
	}
	if raw, ok := fields["init_weights"]; ok {
		v, err := jsonValue(raw)
		if err != nil {
			return Config{}, fe("init_weights: %v", err)
		}
		switch b := v.(type) {
		case bool:
			if !b {
				cfg.InitWeights = InitRandom
			}
		default:
			return Config{}, fe("init_weights is %s; expected true or false", short(raw))
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fe("%v", err)
	}
	return cfg, nil
}
