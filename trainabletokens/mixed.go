package trainabletokens

import (
	"fmt"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/tying"
)

// Mixed-adapter batches: one inference pass in which every sample uses its
// own adapter (or none). PEFT applies one set of active adapters to a whole
// batch; a service holding one small adapter per customer would otherwise
// run one batch per adapter.
//
// Sample s is computed with exactly the rows the model would use after
// SetActive(adapters[s]) (Disable() for ""): the adapter's rows in its
// tables and in their tied output copies, every other row as the base holds
// it (merged adapters included). Adapters may overlap in ids: no two apply
// to one sample. The model's own state (which adapters are active) is not
// changed. The call holds the bookkeeping lock shared for the whole pass
// (lock.go): adapter changes wait for it, and it may be called inside Do.

// MixedMaskedLMLogits runs a masked-LM batch (a *bert.ModelForMaskedLM
// base) in one fused pass, sample s with adapter adapters[s] ("" for the
// base model without live adapters), and returns per sample its logits,
// vocab × len(Positions) — the same values, bit for bit, as
// finetune.MaskedLMLogits with that adapter active and m.LogitsFunc of the
// output layer (tests compare them).
func (m *Model) MixedMaskedLMLogits(batch []finetune.MaskedInput, adapters []string) ([]mat.Matrix, error) {
	return mixed(m, "MixedMaskedLMLogits", "samples", len(batch), adapters,
		func(mlm *bert.ModelForMaskedLM) (*linear.Model, error) {
			if len(mlm.Layers) == 0 {
				return nil, fmt.Errorf("trainabletokens: MixedMaskedLMLogits: the model has no output layer")
			}
			out, _ := mlm.Layers[len(mlm.Layers)-1].(*linear.Model)
			return out, nil
		},
		func(mlm *bert.ModelForMaskedLM, rows []finetune.SampleRows) ([]mat.Matrix, error) {
			return finetune.MixedMaskedLMLogits(mlm, batch, rows)
		})
}

// MixedConditionalGenerationLogits is MixedMaskedLMLogits for a
// *bart.ModelForConditionalGeneration base: sample s is source ids
// sources[s] and decoder input ids decoderInputs[s] (teacher forcing) with
// adapter adapters[s]; the result per sample is the logits at every decoder
// position, as finetune.ConditionalGenerationLogits gives them with that
// adapter active and m.LogitsFunc(Projection).
func (m *Model) MixedConditionalGenerationLogits(sources, decoderInputs [][]int, adapters []string) ([]mat.Matrix, error) {
	return mixed(m, "MixedConditionalGenerationLogits", "samples", len(sources), adapters, bartProjection,
		func(gen *bart.ModelForConditionalGeneration, rows []finetune.SampleRows) ([]mat.Matrix, error) {
			return finetune.MixedConditionalGenerationLogits(gen, sources, decoderInputs, rows)
		})
}

// mixed is the part every Mixed* call shares: under the bookkeeping lock
// (shared, for the whole pass) it checks that the model is loaded, that its
// base is a B (fn names the call in errors) and that there is one adapter
// name per sample (what names the samples), builds each sample's rows with
// the tied output copy that out picks from the base, and runs the pass.
func mixed[B nn.Model, R any](m *Model, fn, what string, samples int, adapters []string,
	out func(B) (*linear.Model, error), run func(B, []finetune.SampleRows) (R, error)) (R, error) {
	var zero R
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.unloaded {
		return zero, ErrUnloaded
	}
	base, ok := m.base.(B)
	if !ok {
		return zero, fmt.Errorf("trainabletokens: %s needs a %T base, this model is %T", fn, base, m.base)
	}
	if len(adapters) != samples {
		return zero, fmt.Errorf("trainabletokens: %s: %d %s but %d adapter names", fn, samples, what, len(adapters))
	}
	o, err := out(base)
	if err != nil {
		return zero, err
	}
	rows, err := m.sampleRows(adapters, o)
	if err != nil {
		return zero, err
	}
	return run(base, rows)
}

// bartProjection is the tied output copy of a BART generation model.
func bartProjection(gen *bart.ModelForConditionalGeneration) (*linear.Model, error) {
	return gen.Projection, nil
}

// sampleRows builds each sample's row overrides: for every row any adapter
// touches, the row the model holds with no live adapter (base or merged),
// then the sample's adapter's rows on top; the output rows are those of the
// tied copy out (nil: none). Callers hold m.mu.
func (m *Model) sampleRows(adapters []string, out *linear.Model) ([]finetune.SampleRows, error) {
	for i, name := range adapters {
		if name != "" && m.adapters[name] == nil {
			return nil, fmt.Errorf("%w: %q (sample %d); adapters: %v", ErrUnknownAdapter, name, i, m.names)
		}
	}
	// Merged rows win over pristine ones, as apply writes them.
	mergedRow := map[*embedding.Model]map[int]mat.Matrix{}
	for _, name := range m.merged {
		for _, t := range m.adapters[name].targets {
			e := t.group.Table.Embedding
			if mergedRow[e] == nil {
				mergedRow[e] = map[int]mat.Matrix{}
			}
			for k, id := range t.ids {
				mergedRow[e][id] = t.rows[k].Value().(mat.Matrix)
			}
		}
	}
	base := finetune.SampleRows{Input: map[*embedding.Model]map[int]mat.Matrix{}, Output: map[int]mat.Matrix{}}
	for e, byID := range m.pristine {
		g := m.groupOf[e]
		copyAt := copyIndex(g.Copies, out)
		base.Input[e] = map[int]mat.Matrix{}
		for id, pr := range byID {
			if v, ok := mergedRow[e][id]; ok {
				base.Input[e][id] = v
				if copyAt >= 0 {
					base.Output[id] = v
				}
				continue
			}
			base.Input[e][id] = pr.value
			if copyAt >= 0 {
				base.Output[id] = pr.copies[copyAt]
			}
		}
	}
	own := map[string]finetune.SampleRows{}
	res := make([]finetune.SampleRows, len(adapters))
	for i, name := range adapters {
		if name == "" {
			res[i] = base
			continue
		}
		if r, ok := own[name]; ok {
			res[i] = r
			continue
		}
		r := finetune.SampleRows{Input: map[*embedding.Model]map[int]mat.Matrix{}, Output: map[int]mat.Matrix{}}
		for e, byID := range base.Input {
			r.Input[e] = make(map[int]mat.Matrix, len(byID))
			for id, v := range byID {
				r.Input[e][id] = v
			}
		}
		for id, v := range base.Output {
			r.Output[id] = v
		}
		for _, t := range m.adapters[name].targets {
			e := t.group.Table.Embedding
			tied := copyIndex(t.group.Copies, out) >= 0
			for k, id := range t.ids {
				v := t.rows[k].Value().(mat.Matrix)
				r.Input[e][id] = v
				if tied {
					r.Output[id] = v
				}
			}
		}
		own[name] = r
		res[i] = r
	}
	return res, nil
}

// copyIndex is the index of out among a group's tied copies, or -1.
func copyIndex(copies []*tying.Copy, out *linear.Model) int {
	if out == nil {
		return -1
	}
	for i, c := range copies {
		if c.Output.Linear == out {
			return i
		}
	}
	return -1
}
