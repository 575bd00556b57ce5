package trainabletokens

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/nlpodyssey/spago/mat"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/safetensors"
	"github.com/gopeft/gopeft/internal/strictjson"
	"github.com/gopeft/gopeft/registry"
)

// loadPlan is a fully validated adapter: its config, the tables it
// targets and, per table, the k rows converted to the model's dtype.
type loadPlan struct {
	cfg    Config
	tables []*registry.Table
	rows   map[string]*tableRows // by table HFPath
	heads  []headPart            // task head values (SaveOptions.ModulesToSave)
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

// plan reads and checks everything against the layout without changing
// it: the config is parsed and validated, its targets matched and checked
// once.
func plan(l *registry.Layout, src *source, o LoadOptions) (*loadPlan, error) {
	cfg, err := parseConfig(src.config, src.configPath)
	if err != nil {
		return nil, err
	}
	tables, err := l.Match(cfg.targets())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidAdapterFile, src.configPath, fmt.Errorf("%w: %w", ErrInvalidConfig, err))
	}
	for _, t := range tables {
		for i, id := range cfg.TokenIndices {
			if n := len(t.Embedding.Weights); id >= n {
				return nil, fmt.Errorf("%w: %s: token_indices[%d] = %d is outside the vocabulary of %s: allowed [0, %d) (a new token? grow the model first with newtokens.AddTokens, as PEFT's AutoPeftModel resizes the base to the tokenizer saved next to the adapter)",
					ErrInvalidAdapterFile, src.configPath, i, id, t.HFPath, n)
			}
		}
	}
	if err := checkTables(tables, cfg); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidAdapterFile, src.configPath, err)
	}
	if err := checkHeads(l, cfg); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidAdapterFile, src.configPath, err)
	}
	h, err := safetensors.ReadHeader(src.weights, src.size, src.weightsPath)
	if err != nil {
		return nil, fileErr(err)
	}
	if err := checkMetadata(h, l, cfg, src, o); err != nil {
		return nil, err
	}
	fe := func(format string, args ...any) error { return stErr(src.weightsPath, format, args...) }

	// Map every tensor to a table; group tied duplicates.
	selected := map[*registry.Table]bool{}
	for _, t := range tables {
		selected[t] = true
	}
	byTable := map[*registry.Table][]*safetensors.TensorInfo{}
	primary := map[*registry.Table]*safetensors.TensorInfo{}
	var baseLayers []*safetensors.TensorInfo
	var heads []headPart
	for _, t := range h.Tensors {
		if p, ok := headOf(l.Model, t.Name); ok { // the task head (heads.go)
			hp, err := readHead(h, src, t, p, fe)
			if err != nil {
				return nil, err
			}
			heads = append(heads, hp)
			continue
		}
		if _, _, ok := baseLayerOf(t.Name); ok {
			baseLayers = append(baseLayers, t) // checked below
			continue
		}
		mod, ok := moduleOf(t.Name)
		if !ok {
			return nil, fe("tensor %q is not a Trainable Tokens tensor; expected keys %s<module>%s (or PEFT's whole layers %s<module>%s / %s)", t.Name, tensorPrefix, tensorSuffix, tensorPrefix, baseWeightSuffix, baseBiasSuffix)
		}
		tab, isTable := resolveModule(l, mod)
		if tab == nil {
			return nil, fe("tensor %q is for module %q, which is no embedding table of %s (nor a projection tied to one); embedding modules: %s",
				t.Name, mod, l.Architecture, strings.Join(l.Names(), ", "))
		}
		if !selected[tab] {
			return nil, fe("tensor %q is for table %s, which target_modules %s in %s does not select; %s",
				t.Name, tab.HFPath, targetsString(cfg), filepath.Base(src.configPath), src.mixedPair())
		}
		byTable[tab] = append(byTable[tab], t)
		if isTable && (primary[tab] == nil || mod == tab.HFPath) {
			primary[tab] = t
		}
	}

	for _, t := range baseLayers {
		mod, part, _ := baseLayerOf(t.Name)
		if err := checkBaseLayer(l, h, src.weights, t, mod, part, selected, cfg.TokenIndices, fe); err != nil {
			return nil, err
		}
	}

	k := len(cfg.TokenIndices)
	p := &loadPlan{cfg: cfg, tables: tables, rows: map[string]*tableRows{}, heads: heads}
	for _, tab := range tables {
		ts := byTable[tab]
		if len(ts) == 0 {
			return nil, fe("no tensor for table %s; expected key %q, as target_modules %s in %s selects the table; %s",
				tab.HFPath, tensorKey(tab.HFPath), targetsString(cfg), filepath.Base(src.configPath), src.mixedPair())
		}
		main := primary[tab]
		if main == nil { // only tied modules' copies (e.g. target lm_head alone)
			main = ts[0]
		}
		dim := tab.Embedding.Dim
		if main.DType != safetensors.F32 && main.DType != safetensors.F64 {
			return nil, fe("tensor %q has dtype %s; expected F32 or F64", main.Name, main.DType)
		}
		if len(main.Shape) != 2 {
			return nil, fe("tensor %q has shape %v; expected 2 dimensions [%d %d] (len(token_indices) rows of width %d)", main.Name, main.Shape, k, dim, dim)
		}
		if main.Shape[0] != uint64(k) {
			return nil, fe("tensor %q has %d rows; expected %d, one per token_indices entry %s", main.Name, main.Shape[0], k, idList(cfg.TokenIndices))
		}
		if main.Shape[1] != uint64(dim) {
			return nil, fe("tensor %q rows are %d wide; table %s has dimension %d", main.Name, main.Shape[1], tab.HFPath, dim)
		}
		data, err := h.Raw(src.weights, main)
		if err != nil {
			return nil, fileErr(err)
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

// mixedPair ends the errors about a config and weights that disagree,
// naming both files.
func (s *source) mixedPair() string {
	return fmt.Sprintf("the two files come from different saves (or a save was interrupted between them): %s and %s; save the adapter again",
		s.configPath, s.weightsPath)
}

// stErr formats an error about the content of a weights file.
func stErr(file, format string, args ...any) error {
	return fileErr(&safetensors.Error{File: file, Msg: fmt.Sprintf(format, args...)})
}

// fileErr marks a codec error as an adapter file error.
func fileErr(err error) error {
	return fmt.Errorf("%w: %w", ErrInvalidAdapterFile, err)
}

// sameTensor checks that a tied duplicate equals the main tensor bit for bit.
func sameTensor(h *safetensors.Header, r io.ReaderAt, main, dup *safetensors.TensorInfo, data []byte, ids []int, dim int) error {
	if dup.DType != main.DType || !reflect.DeepEqual(dup.Shape, main.Shape) {
		return stErr(h.File, "tied duplicate %q (%s %v) differs from %q (%s %v); PEFT writes tied modules as identical copies",
			dup.Name, dup.DType, dup.Shape, main.Name, main.DType, main.Shape)
	}
	other, err := h.Raw(r, dup)
	if err != nil {
		return fileErr(err)
	}
	if bytes.Equal(data, other) {
		return nil
	}
	w := 4
	if main.DType == safetensors.F64 {
		w = 8
	}
	for i := 0; i+w <= len(data); i += w {
		if !bytes.Equal(data[i:i+w], other[i:i+w]) {
			e := i / w
			return stErr(h.File, "tied duplicate %q differs from %q at row %d (token id %d), column %d: %v vs %v; PEFT writes tied modules as identical copies",
				dup.Name, main.Name, e/dim, ids[e/dim], e%dim, safetensors.At(other, main.DType, e), safetensors.At(data, main.DType, e))
		}
	}
	return nil
}

// convertRows decodes the tensor into the model's dtype, checking
// finiteness and, for float64 → float32, exactness.
func convertRows(t *safetensors.TensorInfo, data []byte, tab *registry.Table, ids []int, dim int, o LoadOptions, fe func(string, ...any) error) (*tableRows, error) {
	modelDType := rows.DType(tab.Embedding.Weights[ids[0]].Value().(mat.Matrix))
	n := len(ids) * dim
	vals := make([]float64, n)
	for e := 0; e < n; e++ {
		v := safetensors.At(data, t.DType, e)
		if !o.AllowNonFinite && (math.IsNaN(v) || math.IsInf(v, 0)) {
			return nil, fe("tensor %q row %d (token id %d), column %d is %v; rows must be finite (LoadOptions.AllowNonFinite loads them anyway)",
				t.Name, e/dim, ids[e/dim], e%dim, v)
		}
		if modelDType == "float32" && t.DType == safetensors.F64 && !math.IsNaN(v) && float64(float32(v)) != v {
			return nil, fe("tensor %q is F64 and the model is float32, but row %d (token id %d), column %d = %v has no exact float32 value; convert the file to F32 (rounding) if that is intended",
				t.Name, e/dim, ids[e/dim], e%dim, strconv.FormatFloat(v, 'g', -1, 64))
		}
		vals[e] = v
	}
	tr := &tableRows{}
	switch modelDType {
	case "float32":
		if t.DType == safetensors.F32 { // keep NaN payloads bit-exact
			tr.f32 = safetensors.Float32s(data)
		} else {
			tr.f32 = make([]float32, n)
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
func checkMetadata(h *safetensors.Header, l *registry.Layout, cfg Config, src *source, o LoadOptions) error {
	md := h.Metadata
	if v, ok := md[metaGopeft]; ok && v != gopeftFormatValue {
		return stErr(h.File, "%s is %q; this gopeft reads format %q (written by a newer gopeft?)", metaGopeft, v, gopeftFormatValue)
	}
	if v, ok := md[metaTokenIndicesDigest]; ok && v != indicesDigest(cfg.TokenIndices) {
		return stErr(h.File, "records a digest of token_indices (%s) that does not match the %d token_indices of %s; %s",
			strictjson.Short([]byte(v)), len(cfg.TokenIndices), ConfigFile, src.mixedPair())
	}
	if v, ok := md[metaTokenIndices]; ok {
		var ids []int
		if err := json.Unmarshal([]byte(v), &ids); err != nil || ids == nil {
			return stErr(h.File, "metadata %s = %s is not a JSON list of integers", metaTokenIndices, strictjson.Short([]byte(v)))
		}
		if !reflect.DeepEqual(ids, cfg.TokenIndices) {
			return stErr(h.File, "records token_indices %s but %s has %s; %s", idList(ids), ConfigFile, idList(cfg.TokenIndices), src.mixedPair())
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
		got, err := strictjson.Natural(md[key])
		if err != nil {
			return stErr(h.File, "metadata %s = %q: %v", key, md[key], err)
		}
		if strings.HasPrefix(key, metaDimPrefix) {
			if want = tab.Embedding.Dim; got != uint64(want) {
				return stErr(h.File, "was saved for %s with dimension %d; the model's table has dimension %d", mod, got, want)
			}
			continue
		}
		if want = len(tab.Embedding.Weights); got != uint64(want) && !o.AllowVocabChange {
			return stErr(h.File, "was saved for %s with a vocabulary of %d rows; the model's table has %d (a different base model? LoadOptions.AllowVocabChange loads it anyway)", mod, got, want)
		}
	}
	return nil
}
