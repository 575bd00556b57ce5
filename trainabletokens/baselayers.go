package trainabletokens

// Whole embedding layers in adapter files: PEFT's save_embedding_layers.
//
// When the vocabulary was resized, PEFT's save_pretrained (default
// save_embedding_layers="auto") writes, next to the trainable_tokens_delta
// tensors, every wrapped module's whole base layer:
// base_model.model.<module>.base_layer.weight ([V, dim]) and, for a head
// with a bias (BERT's cls.predictions.decoder), .base_layer.bias ([V]).
// Loading such a file into a model gives that model PEFT's function only if
// its tables are those layers. Load therefore requires the model's table to
// have V rows (grow it first: newtokens.AddTokens with the added tokens) and
// every row outside token_indices (those come from the delta) to equal the
// saved one, and SaveOptions.SaveEmbeddingLayers writes them.

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/safetensors"
	"github.com/gopeft/gopeft/registry"
)

const (
	baseWeightSuffix = ".base_layer.weight"
	baseBiasSuffix   = ".base_layer.bias"
)

// baseLayerOf extracts <module> and "weight" or "bias" from
// base_model.model.<module>.base_layer.{weight,bias}.
func baseLayerOf(key string) (mod, part string, ok bool) {
	if !strings.HasPrefix(key, tensorPrefix) {
		return "", "", false
	}
	rest := key[len(tensorPrefix):]
	switch {
	case strings.HasSuffix(rest, baseWeightSuffix) && len(rest) > len(baseWeightSuffix):
		return rest[:len(rest)-len(baseWeightSuffix)], "weight", true
	case strings.HasSuffix(rest, baseBiasSuffix) && len(rest) > len(baseBiasSuffix):
		return rest[:len(rest)-len(baseBiasSuffix)], "bias", true
	}
	return "", "", false
}

// outputNamed returns the output projection with module name mod, or nil.
func outputNamed(l *registry.Layout, mod string) *registry.Output {
	for _, o := range l.Outputs {
		if contains(o.Names, mod) {
			return o
		}
	}
	return nil
}

// checkBaseLayer checks one saved whole layer against the model: same
// number of rows, and every value equal except the rows of ids (which the
// adapter's delta replaces) and rows that are all zero in the model
// (cybertron's BERT converter leaves the last table row zero).
func checkBaseLayer(l *registry.Layout, h *safetensors.Header, r io.ReaderAt, t *safetensors.TensorInfo, mod, part string,
	selected map[*registry.Table]bool, ids []int, fe func(string, ...any) error) error {
	tab, isTable := resolveModule(l, mod)
	if tab == nil || !selected[tab] {
		return fe("tensor %q is a whole layer of module %q, which is not a table (or a head tied to one) that target_modules selects", t.Name, mod)
	}
	var lin *linear.Model
	if !isTable {
		if o := outputNamed(l, mod); o != nil {
			lin = o.Linear
		}
	}
	if t.DType != safetensors.F32 && t.DType != safetensors.F64 {
		return fe("tensor %q has dtype %s; expected F32 or F64", t.Name, t.DType)
	}
	dim := tab.Embedding.Dim
	var model []mat.Matrix // the model's rows (weight) or its one bias vector
	var width int
	switch {
	case part == "bias" && lin == nil:
		return fe("tensor %q is a bias, but %s has none in this model", t.Name, mod)
	case part == "bias":
		model, width = []mat.Matrix{lin.B.Value().(mat.Matrix)}, lin.B.Value().Size()
		if len(t.Shape) != 1 {
			return fe("tensor %q has shape %v; expected one dimension", t.Name, t.Shape)
		}
		if t.Shape[0] != uint64(width) {
			return layerSizeErr(fe, t, mod, int(t.Shape[0]), width)
		}
	case lin != nil:
		w := lin.W.Value().(mat.Matrix)
		if len(t.Shape) != 2 || t.Shape[1] != uint64(dim) {
			return fe("tensor %q has shape %v; expected [rows %d]", t.Name, t.Shape, dim)
		}
		if t.Shape[0] != uint64(w.Shape()[0]) {
			return layerSizeErr(fe, t, mod, int(t.Shape[0]), w.Shape()[0])
		}
		for i := 0; i < w.Shape()[0]; i++ {
			model = append(model, w.ExtractRow(i))
		}
		width = dim
	default:
		if len(t.Shape) != 2 || t.Shape[1] != uint64(dim) {
			return fe("tensor %q has shape %v; expected [rows %d]", t.Name, t.Shape, dim)
		}
		if t.Shape[0] != uint64(len(tab.Embedding.Weights)) {
			return layerSizeErr(fe, t, mod, int(t.Shape[0]), len(tab.Embedding.Weights))
		}
		for _, p := range tab.Embedding.Weights {
			model = append(model, p.Value().(mat.Matrix))
		}
		width = dim
	}
	data, err := h.Raw(r, t)
	if err != nil {
		return fileErr(err)
	}
	skip := map[int]bool{}
	if part == "weight" {
		for _, id := range ids {
			skip[id] = true
		}
	}
	for i, m := range model {
		if skip[i] {
			continue
		}
		vals := rows.Get(m, 0, m.Size())
		if part == "weight" && allZero(vals) {
			continue
		}
		f32 := rows.DType(m) == "float32"
		for j := range vals {
			e := i*width + j
			if part == "bias" {
				e = j
			}
			v := safetensors.At(data, t.DType, e)
			if f32 {
				v = float64(float32(v))
			}
			if v != vals[j] && !(math.IsNaN(v) && math.IsNaN(vals[j])) {
				at := fmt.Sprintf("row %d, column %d", i, j)
				if part == "bias" {
					at = fmt.Sprintf("entry %d", j)
				}
				return fe("tensor %q (the whole layer PEFT saved for %s) differs from the model at %s: %v in the file, %v in the model; the adapter was saved for another base model", t.Name, mod, at, v, vals[j])
			}
		}
	}
	return nil
}

func layerSizeErr(fe func(string, ...any) error, t *safetensors.TensorInfo, mod string, saved, model int) error {
	if saved < model {
		return fe("tensor %q holds the whole layer of %s with %d rows, as PEFT saves it after a vocabulary resize; the model has %d, more than the file: the adapter was saved for another base model",
			t.Name, mod, saved, model)
	}
	return fe("tensor %q holds the whole layer of %s with %d rows, as PEFT saves it after a vocabulary resize; the model has %d: grow the model to %d tokens first (newtokens.AddTokens with the tokens PEFT's tokenizer added, in id order), then load the adapter",
		t.Name, mod, saved, model, saved)
}

func allZero(v []float64) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// baseLayers renders the whole base layers of a target's modules for
// SaveOptions.SaveEmbeddingLayers: the table's rows as they are without
// any adapter (a row an adapter touched is written from its pristine
// param, which holds the base value, or the merged one once merged), a
// tied head's own rows (its pristine copies for touched rows), and the head's
// bias where the transformers module has one (BERT's
// cls.predictions.decoder; BART's lm_head has none: cybertron's Projection
// bias is final_logits_bias, a buffer PEFT does not save).
// Called with the read lock held.
func (m *Model) baseLayers(t *target, modules []string) ([]safetensors.Tensor, error) {
	e := t.group.Table.Embedding
	var base []mat.Matrix
	for id, p := range e.Weights {
		if pr := m.pristine[e][id]; pr != nil {
			p = pr.param
		}
		base = append(base, p.Value().(mat.Matrix))
	}
	data, dtype, err := encodeMatrices(base, e.Dim)
	if err != nil {
		return nil, err
	}
	var out []safetensors.Tensor
	for _, mod := range modules {
		o := outputNamed(m.layout, mod)
		layer := data
		if o != nil {
			// The head's own rows (cybertron may leave a table row zero
			// that the head has), with the pristine copies of rows
			// adapters touched.
			ci := -1
			for i, c := range t.group.Copies {
				if c.Output.Linear == o.Linear {
					ci = i
				}
			}
			w := o.Linear.W.Value().(mat.Matrix)
			var hr []mat.Matrix
			for id := 0; id < w.Shape()[0]; id++ {
				row := w.ExtractRow(id)
				if pr := m.pristine[e][id]; pr != nil && ci >= 0 && ci < len(pr.copies) {
					row = pr.copies[ci]
				}
				hr = append(hr, row)
			}
			if layer, _, err = encodeMatrices(hr, e.Dim); err != nil {
				return nil, err
			}
		}
		out = append(out, safetensors.Tensor{Name: tensorPrefix + mod + baseWeightSuffix, DType: dtype, Shape: []int{len(base), e.Dim}, Data: layer})
		if o == nil || o.Linear.B == nil || o.HFPath == "lm_head" {
			continue
		}
		b := o.Linear.B.Value().(mat.Matrix)
		bd, bdt, err := encodeMatrices([]mat.Matrix{b}, b.Size())
		if err != nil {
			return nil, err
		}
		out = append(out, safetensors.Tensor{Name: tensorPrefix + mod + baseBiasSuffix, DType: bdt, Shape: []int{b.Size()}, Data: bd})
	}
	return out, nil
}

// encodeMatrices lays matrices of width values each out as little-endian
// F32 or F64.
func encodeMatrices(ms []mat.Matrix, width int) ([]byte, safetensors.DType, error) {
	var out []byte
	var dtype safetensors.DType
	for _, x := range ms {
		f32, f64, err := rows.Floats(x)
		if err != nil {
			return nil, "", err
		}
		switch {
		case f32 != nil && dtype != safetensors.F64 && len(f32) == width:
			dtype = safetensors.F32
			out = safetensors.AppendFloat32s(out, f32)
		case f64 != nil && dtype != safetensors.F32 && len(f64) == width:
			dtype = safetensors.F64
			out = safetensors.AppendFloat64s(out, f64)
		default:
			return nil, "", fmt.Errorf("rows of mixed dtype or width (want %d values)", width)
		}
	}
	return out, dtype, nil
}
