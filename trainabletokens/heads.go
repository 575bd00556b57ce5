package trainabletokens

// The task head in the adapter file (SaveOptions.ModulesToSave): the
// linear layers of a classification or question-answering head, under
// PEFT's modules_to_save key names (the form PEFT saves: the wrapper's
// "modules_to_save.<adapter>." removed), base_model.model.<module>.weight
// and .bias. Load copies them into the model's head.

import (
	"fmt"
	"strings"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/safetensors"
	"github.com/gopeft/gopeft/registry"
)

// headTensors encodes the task head of model.
func headTensors(model nn.Model) ([]safetensors.Tensor, error) {
	heads := registry.TaskHeads(model)
	if len(heads) == 0 {
		return nil, fmt.Errorf("trainabletokens: save: SaveOptions.ModulesToSave is set, but %T has no task head (want cybertron's BERT sequence/token classification or question answering, or BART sequence classification)", model)
	}
	var out []safetensors.Tensor
	for _, h := range heads {
		for _, part := range []struct {
			suffix string
			p      *nn.Param
		}{{".weight", h.Linear.W}, {".bias", h.Linear.B}} {
			m := part.p.Value().(mat.Matrix)
			if ok, _ := rows.Finite(m, 0, m.Size()); !ok {
				return nil, fmt.Errorf("%w: head %s%s holds a NaN or Inf; nothing was saved", ErrNotFinite, h.HFPath, part.suffix)
			}
			f32, f64, err := rows.Floats(m)
			if err != nil {
				return nil, fmt.Errorf("trainabletokens: save: head %s%s: %w", h.HFPath, part.suffix, err)
			}
			shape := []int{m.Shape()[0]}
			if part.suffix == ".weight" {
				shape = []int{m.Shape()[0], m.Shape()[1]}
			}
			t := safetensors.Tensor{Name: tensorPrefix + h.HFPath + part.suffix, Shape: shape}
			if f32 != nil {
				t.DType, t.Data = safetensors.F32, safetensors.AppendFloat32s(nil, f32)
			} else {
				t.DType, t.Data = safetensors.F64, safetensors.AppendFloat64s(nil, f64)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// headPart is one head tensor found in a file, checked against the model.
type headPart struct {
	param *nn.Param
	data  []float64
}

// headOf maps a tensor name to the model's head param it holds.
func headOf(model nn.Model, name string) (*nn.Param, bool) {
	if !strings.HasPrefix(name, tensorPrefix) {
		return nil, false
	}
	rest := strings.TrimPrefix(name, tensorPrefix)
	for _, h := range registry.TaskHeads(model) {
		switch rest {
		case h.HFPath + ".weight":
			return h.Linear.W, true
		case h.HFPath + ".bias":
			return h.Linear.B, true
		}
	}
	return nil, false
}

// readHead checks a head tensor's dtype and shape against p and returns
// its values.
func readHead(h *safetensors.Header, src *source, t *safetensors.TensorInfo, p *nn.Param, fe func(string, ...any) error) (headPart, error) {
	if _, _, err := rows.Floats(p.Value().(mat.Matrix)); err != nil {
		return headPart{}, fe("head tensor %q: the model's head: %v", t.Name, err)
	}
	want := p.Value().Shape()
	if len(want) == 2 && want[1] == 1 && len(t.Shape) == 1 { // a bias: spago's column, torch's vector
		want = want[:1]
	}
	ok := len(t.Shape) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = t.Shape[i] == uint64(want[i])
	}
	if !ok {
		return headPart{}, fe("head tensor %q has shape %v; the model's head has %v", t.Name, t.Shape, want)
	}
	if t.DType != safetensors.F32 && t.DType != safetensors.F64 {
		return headPart{}, fe("head tensor %q has dtype %s; expected F32 or F64", t.Name, t.DType)
	}
	raw, err := h.Raw(src.weights, t)
	if err != nil {
		return headPart{}, fileErr(err)
	}
	n := int(t.Elements())
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = safetensors.At(raw, t.DType, i)
		if vals[i] != vals[i] || vals[i] > 1e308 || vals[i] < -1e308 {
			return headPart{}, fe("head tensor %q element %d is %v; expected a finite number", t.Name, i, vals[i])
		}
	}
	return headPart{param: p, data: vals}, nil
}

// apply writes the values into the head param, in place (its flags stay).
func (hp headPart) apply() {
	f32, f64, _ := rows.Floats(hp.param.Value().(mat.Matrix)) // dtype checked by readHead's caller
	for i, v := range hp.data {
		if f32 != nil {
			f32[i] = float32(v)
		} else {
			f64[i] = v
		}
	}
}
