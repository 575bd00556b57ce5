package main

import (
	"math"
	"math/rand/v2"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"

	"github.com/gopeft/gopeft/internal/walk"
)

// randomize gives a freshly built model trained-looking scales: embedding
// rows N(0, 0.1²), linear weights uniform in ±sqrt(6/(in+out)) with zero
// bias, layer norms 1 and 0. BART's sinusoidal positions are kept.
func randomize(model any, rng *rand.Rand) {
	walk.Walk(model, func(n walk.Node) bool {
		switch v := n.Value.(type) {
		case *bart.PositionalEncoder:
			return false
		case *embedding.Model:
			for _, r := range v.Weights {
				d := mat.Data[float32](r.Value())
				for i := range d {
					d[i] = float32(0.1 * rng.NormFloat64())
				}
			}
			return false
		case *linear.Model:
			s := v.W.Value().Shape()
			lim := math.Sqrt(6 / float64(s[0]+s[1]))
			w := mat.Data[float32](v.W.Value())
			for i := range w {
				w[i] = float32(lim * (2*rng.Float64() - 1))
			}
			clear(mat.Data[float32](v.B.Value()))
		case *layernorm.Model:
			w := mat.Data[float32](v.W.Value())
			for i := range w {
				w[i] = 1
			}
			clear(mat.Data[float32](v.B.Value()))
		}
		return true
	})
}

// tie makes out's weight a value copy of the table rows, as cybertron's
// converters write tied checkpoints, with a zero bias.
func tie(out *linear.Model, rows []*nn.Param, dim int) {
	w := mat.Data[float32](out.W.Value())
	for id, r := range rows {
		copy(w[id*dim:(id+1)*dim], mat.Data[float32](r.Value()))
	}
	clear(mat.Data[float32](out.B.Value()))
}
