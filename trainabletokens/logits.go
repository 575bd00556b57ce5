package trainabletokens

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/tying"
)

// Logits computes the output logits of a projection of the model for
// hidden states h (dim × n) during training: when out is a tied copy of a
// table with live adapter rows, the logits of those token ids come from the
// trainable rows (differentiable, bias kept), so gradients reach the rows
// from both the input and the output side without a vocab × dim weight
// gradient. For an untied projection it is the plain frozen projection.
func (m *Model) Logits(out *linear.Model, h mat.Tensor) (mat.Tensor, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.unloaded {
		return nil, ErrUnloaded
	}
	var ids []int
	var rs []mat.Tensor
	for _, g := range m.groups {
		if !isCopy(g, out) {
			continue
		}
		for _, name := range m.liveNames() {
			for _, t := range m.adapters[name].targets {
				if t.group != g {
					continue
				}
				ids = append(ids, t.ids...)
				for _, p := range t.rows {
					rs = append(rs, p)
				}
			}
		}
	}
	y, err := tying.Logits(out, h, ids, rs)
	if err != nil {
		return nil, fmt.Errorf("trainabletokens: %w", err)
	}
	return y, nil
}

// LogitsFunc returns Logits bound to out, in the shape finetune's losses
// take. Shapes are validated by the loss functions before they call it; a
// mismatch that still gets here is a programming error and panics with
// the message Logits would return.
func (m *Model) LogitsFunc(out *linear.Model) func(h mat.Tensor) mat.Tensor {
	return func(h mat.Tensor) mat.Tensor {
		y, err := m.Logits(out, h)
		if err != nil {
			panic(err)
		}
		return y
	}
}

func isCopy(g *tying.Group, out *linear.Model) bool {
	for _, c := range g.Copies {
		if c.Output.Linear == out {
			return true
		}
	}
	return false
}
