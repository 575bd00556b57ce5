package registry

import (
	"fmt"
	"reflect"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
)

func init() {
	RegisterModel(&bert.Model{}, func(m nn.Model) (*Layout, error) {
		return bertLayout(m, m.(*bert.Model), "", "")
	})
	RegisterModel(&bert.ModelForMaskedLM{}, func(m nn.Model) (*Layout, error) {
		x := m.(*bert.ModelForMaskedLM)
		l, err := bertLayout(m, x.Bert, "Bert.", "bert.")
		if err != nil {
			return nil, err
		}
		if len(x.Layers) == 4 {
			if lin, ok := x.Layers[3].(*linear.Model); ok {
				l.Outputs = append(l.Outputs, &Output{
					Linear: lin, Path: "Layers.3", HFPath: "cls.predictions.decoder",
					Names: []string{"cls.predictions.decoder", "Layers.3"}, Of: l.Input(),
				})
			}
		}
		return l, nil
	})
	RegisterModel(&bert.ModelForSequenceClassification{}, func(m nn.Model) (*Layout, error) {
		return bertLayout(m, m.(*bert.ModelForSequenceClassification).Bert, "Bert.", "bert.")
	})
	RegisterModel(&bert.ModelForTokenClassification{}, func(m nn.Model) (*Layout, error) {
		return bertLayout(m, m.(*bert.ModelForTokenClassification).Bert, "Bert.", "bert.")
	})
	RegisterModel(&bert.ModelForQuestionAnswering{}, func(m nn.Model) (*Layout, error) {
		return bertLayout(m, m.(*bert.ModelForQuestionAnswering).Bert, "Bert.", "bert.")
	})
	RegisterModel(&bert.ModelForSequenceEncoding{}, func(m nn.Model) (*Layout, error) {
		return bertLayout(m, m.(*bert.ModelForSequenceEncoding).Bert, "Bert.", "")
	})
	RegisterModel(&bart.Model{}, func(m nn.Model) (*Layout, error) {
		return bartLayout(m, m.(*bart.Model), "", "")
	})
	RegisterModel(&bart.ModelForConditionalGeneration{}, func(m nn.Model) (*Layout, error) {
		x := m.(*bart.ModelForConditionalGeneration)
		l, err := bartLayout(m, x.Bart, "Bart.", "model.")
		if err != nil {
			return nil, err
		}
		if x.Projection != nil {
			l.Outputs = append(l.Outputs, &Output{
				Linear: x.Projection, Path: "Projection", HFPath: "lm_head",
				Names: []string{"lm_head", "Projection"}, Of: l.Input(),
			})
		}
		return l, nil
	})
	RegisterModel(&bart.ModelForSequenceClassification{}, func(m nn.Model) (*Layout, error) {
		return bartLayout(m, m.(*bart.ModelForSequenceClassification).Bart, "Bart.", "model.")
	})
}

func archName(m nn.Model) string { return reflect.TypeOf(m).Elem().String() }

// bertLayout names BERT's three tables; goPrefix/hfPrefix locate the base
// model inside a task model ("Bert."/"bert." in Hugging Face's
// BertFor* classes, nothing in BertModel).
func bertLayout(root nn.Model, m *bert.Model, goPrefix, hfPrefix string) (*Layout, error) {
	if m == nil || m.Embeddings == nil || m.Embeddings.Tokens == nil {
		return nil, fmt.Errorf("registry: %T has no BERT token embeddings", root)
	}
	e := m.Embeddings
	l := &Layout{Model: root, Architecture: archName(root)}
	add := func(tab *embedding.Model, goName, hfName string, input bool) {
		if tab == nil {
			return
		}
		gp, hp := goPrefix+"Embeddings."+goName, hfPrefix+"embeddings."+hfName
		l.Tables = append(l.Tables, &Table{
			Embedding: tab, Path: gp, HFPath: hp, Names: appendNew(nil, hp, gp), Input: input,
		})
	}
	add(e.Tokens, "Tokens", "word_embeddings", true)
	add(e.Positions, "Positions", "position_embeddings", false)
	add(e.TokenTypes, "TokenTypes", "token_type_embeddings", false)
	return l, nil
}

// bartLayout names BART's shared table (reachable as shared, encoder and
// decoder embed_tokens, one table in cybertron as in Hugging Face) and the
// two positional tables.
func bartLayout(root nn.Model, m *bart.Model, goPrefix, hfPrefix string) (*Layout, error) {
	if m == nil || m.Embeddings == nil {
		return nil, fmt.Errorf("registry: %T has no BART shared embeddings", root)
	}
	l := &Layout{Model: root, Architecture: archName(root)}
	shared := &Table{
		Embedding: m.Embeddings, Path: goPrefix + "Embeddings", HFPath: hfPrefix + "shared", Input: true,
	}
	shared.Names = appendNew(nil, shared.HFPath,
		hfPrefix+"encoder.embed_tokens", hfPrefix+"decoder.embed_tokens",
		shared.Path, goPrefix+"Encoder.Embeddings.SharedEmbeddings", goPrefix+"Decoder.Embeddings.SharedEmbeddings")
	l.Tables = append(l.Tables, shared)
	for _, side := range []struct {
		goName, hfName string
		emb            *bart.Embeddings
	}{
		{"Encoder", "encoder", embeddingsOf(m.Encoder)},
		{"Decoder", "decoder", embeddingsOfDecoder(m.Decoder)},
	} {
		if side.emb == nil || side.emb.PositionalEncoder == nil || side.emb.PositionalEncoder.Embeddings == nil {
			continue
		}
		gp := goPrefix + side.goName + ".Embeddings.PositionalEncoder.Embeddings"
		hp := hfPrefix + side.hfName + ".embed_positions"
		l.Tables = append(l.Tables, &Table{
			Embedding: side.emb.PositionalEncoder.Embeddings, Path: gp, HFPath: hp, Names: appendNew(nil, hp, gp),
		})
	}
	return l, nil
}

func embeddingsOf(e *bart.Encoder) *bart.Embeddings {
	if e == nil {
		return nil
	}
	return e.Embeddings
}

func embeddingsOfDecoder(d *bart.Decoder) *bart.Embeddings {
	if d == nil {
		return nil
	}
	return d.Embeddings
}
