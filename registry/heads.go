package registry

import (
	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
)

// Head is a linear layer of a task head and its Hugging Face module path:
// what PEFT's modules_to_save trains and saves, under
// base_model.model.<HFPath>.weight / .bias.
type Head struct {
	HFPath string
	Linear *linear.Model
}

// TaskHeads returns the linear layers of the task head of cybertron's task
// models, with transformers' module names: "classifier" (BERT sequence and
// token classification), "qa_outputs" (BERT question answering),
// "classification_head.dense" and "classification_head.out_proj" (BART
// sequence classification). nil for models without a task head, and for an
// ELECTRA sequence classifier (cybertron's pooler + classifier is not
// ELECTRA's classification head, so no transformers name fits).
func TaskHeads(model nn.Model) []*Head {
	lin := func(m nn.StandardModel) *linear.Model {
		l, _ := m.(*linear.Model)
		return l
	}
	var out []*Head
	add := func(hf string, l *linear.Model) {
		if l != nil && l.W != nil && l.B != nil {
			out = append(out, &Head{HFPath: hf, Linear: l})
		}
	}
	switch m := model.(type) {
	case *bert.ModelForSequenceClassification:
		if m != nil && m.Bert != nil && m.Bert.Config.ModelType != "electra" {
			add("classifier", m.Classifier)
		}
	case *bert.ModelForTokenClassification:
		if m != nil {
			add("classifier", m.Classifier)
		}
	case *bert.ModelForQuestionAnswering:
		if m != nil {
			add("qa_outputs", m.Classifier)
		}
	case *bart.ModelForSequenceClassification:
		if m != nil && m.Classifier != nil && len(m.Classifier.Layers) == 3 {
			add("classification_head.dense", lin(m.Classifier.Layers[0]))
			add("classification_head.out_proj", lin(m.Classifier.Layers[2]))
		}
	}
	return out
}
