package registry

// cybertron maps five Hugging Face families onto its two architectures:
// "bert" and "electra" onto its BERT, "bart", "marian" and "pegasus" onto
// its BART. The Go type says the architecture; the base model's
// Config.ModelType (kept by the converter) says the family, and with it the
// Hugging Face module paths and classes PEFT records. ELECTRA's base model
// is "electra." and its generator head "generator_lm_head"; Marian and
// Pegasus keep BART's paths (model.shared, lm_head) under their own
// classes.

import (
	"strings"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/nn"
)

// familyVariant is what a Hugging Face family changes in its
// architecture's layout.
type familyVariant struct {
	module string
	// classes maps the BERT/BART class name to the family's ("" for none).
	classes map[string]string
	// prefix replaces the base model's Hugging Face prefix ("bert." →
	// "electra."); heads renames output heads.
	prefix [2]string
	heads  map[string]string
}

var familyVariants = map[string]familyVariant{
	"electra": {
		module: "transformers.models.electra.modeling_electra",
		classes: map[string]string{
			"BertForMaskedLM": "ElectraForMaskedLM", "BertModel": "ElectraModel",
			"BertForSequenceClassification": "ElectraForSequenceClassification",
			"BertForTokenClassification":    "ElectraForTokenClassification",
			"BertForQuestionAnswering":      "ElectraForQuestionAnswering",
		},
		prefix: [2]string{"bert.", "electra."},
		heads:  map[string]string{"cls.predictions.decoder": "generator_lm_head"},
	},
	"marian": {
		module:  "transformers.models.marian.modeling_marian",
		classes: map[string]string{"BartForConditionalGeneration": "MarianMTModel", "BartModel": "MarianModel"},
	},
	"pegasus": {
		module: "transformers.models.pegasus.modeling_pegasus",
		classes: map[string]string{
			"BartForConditionalGeneration": "PegasusForConditionalGeneration", "BartModel": "PegasusModel",
		},
	},
}

// modelTypeOf returns the base model's config model_type ("" if unknown).
func modelTypeOf(core nn.Model) string {
	switch c := core.(type) {
	case *bert.Model:
		if c != nil {
			return c.Config.ModelType
		}
	case *bart.Model:
		if c != nil {
			return c.Config.ModelType
		}
	}
	return ""
}

// applyFamily renames l's Hugging Face paths and class for the base
// model's family; BERT and BART (and unknown model types) are left as the
// architecture names them.
func applyFamily(l *Layout) {
	l.ModelType = modelTypeOf(l.Core)
	v, ok := familyVariants[l.ModelType]
	if !ok {
		return
	}
	if c, ok := v.classes[l.HFClass]; ok {
		l.HFClass, l.HFModule = c, v.module
	} else {
		l.HFClass, l.HFModule = "", "" // no transformers class of this family to name
	}
	rename := func(hf string) string {
		if v.prefix[0] != "" && strings.HasPrefix(hf, v.prefix[0]) {
			return v.prefix[1] + strings.TrimPrefix(hf, v.prefix[0])
		}
		if h, ok := v.heads[hf]; ok {
			return h
		}
		return hf
	}
	renameAll := func(hfPath string, names []string) (string, []string) {
		out := make([]string, 0, len(names))
		for _, n := range names {
			out = appendNew(out, rename(n))
		}
		return rename(hfPath), out
	}
	for _, t := range l.Tables {
		t.HFPath, t.Names = renameAll(t.HFPath, t.Names)
	}
	for _, o := range l.Outputs {
		o.HFPath, o.Names = renameAll(o.HFPath, o.Names)
	}
	for _, b := range l.BadOutputs {
		b.HFPath = rename(b.HFPath)
	}
}
