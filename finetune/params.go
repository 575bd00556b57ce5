package finetune

import (
	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"

	"github.com/gopeft/gopeft/internal/spagofix"
	"github.com/gopeft/gopeft/internal/walk"
)

// AllParams returns every parameter reachable from model, each once,
// including every row of every embedding table (spago's nn.ForEachParam
// lists only the rows that currently have a gradient).
func AllParams(model nn.Model) []*nn.Param {
	var out []*nn.Param
	walk.Walk(model, func(n walk.Node) bool {
		if p, ok := n.Value.(*nn.Param); ok {
			out = append(out, p)
		}
		return true
	})
	return out
}

// SetRequiresGrad sets the requires-gradient flag of every parameter of
// model, embedding rows included: SetRequiresGrad(m, false) freezes it all.
func SetRequiresGrad(model nn.Model, requiresGrad bool) {
	for _, p := range AllParams(model) {
		p.SetRequiresGrad(requiresGrad)
	}
}

// PrepareLoaded makes a model decoded by gob (nn.Load, nn.LoadFromFile)
// trainable. gob cannot restore two things training needs:
//   - an embedding table's gradient index (unexported), without which the
//     first row gradient panics inside a backward goroutine; every table is
//     replaced by one holding the same row params and a working index;
//   - BART's embedding.Shared wrappers, which encode to nothing; nil ones
//     are pointed at the model's Embeddings table, as cybertron's loaders do.
//
// Rows, values and flags are untouched, so a model saved afterwards is the
// same as before. Calling it on a fresh or already prepared model is a no-op.
func PrepareLoaded(model nn.Model) error {
	var barts []*bart.Model
	walk.Walk(model, func(n walk.Node) bool {
		if b, ok := n.Value.(*bart.Model); ok {
			barts = append(barts, b)
		}
		return true
	})
	for _, b := range barts {
		for _, e := range []*bart.Embeddings{encoderEmbeddings(b), decoderEmbeddings(b)} {
			if e != nil && e.SharedEmbeddings.Model == nil {
				e.SharedEmbeddings = embedding.Shared{Model: b.Embeddings}
			}
		}
	}
	_, err := spagofix.RenewEmbeddings(model)
	return err
}

func encoderEmbeddings(b *bart.Model) *bart.Embeddings {
	if b.Encoder == nil {
		return nil
	}
	return b.Encoder.Embeddings
}

func decoderEmbeddings(b *bart.Model) *bart.Embeddings {
	if b.Decoder == nil {
		return nil
	}
	return b.Decoder.Embeddings
}
