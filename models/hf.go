package models

import (
	"errors"
	"fmt"
	"math"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/activation"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"

	"github.com/gopeft/gopeft/hfact"
	"github.com/gopeft/gopeft/internal/walk"
)

// cybertronEps is the LayerNorm eps cybertron builds every BERT and BART
// layer norm with, whatever config.json says.
const cybertronEps = 1e-5

// HFSettings is what HFFunction sets on a model: Hugging Face's LayerNorm
// eps and activation for its config.
type HFSettings struct {
	// LayerNormEps is config.json's layer_norm_eps (BERT; transformers'
	// default 1e-12 when absent), or 1e-5 for BART, whose modeling code
	// uses torch's default.
	LayerNormEps float64
	// Activation is config.json's hidden_act (BERT) or
	// activation_function (BART; default "gelu").
	Activation string
}

// HFSettingsOf reads the settings Hugging Face uses for the BERT or BART
// model inside model from the config cybertron stored in it (the
// config.json it was converted from).
func HFSettingsOf(model nn.Model) (HFSettings, error) {
	if model == nil {
		return HFSettings{}, errors.New("models: nil model")
	}
	var s HFSettings
	found := ""
	walk.Walk(model, func(n walk.Node) bool {
		if found != "" {
			return false
		}
		switch v := n.Value.(type) {
		case *bert.Model:
			found = "BERT"
			s = HFSettings{LayerNormEps: v.Config.LayerNormEps, Activation: v.Config.HiddenAct}
			if s.LayerNormEps == 0 {
				s.LayerNormEps = 1e-12 // BertConfig's default
			}
			return false
		case *bart.Model:
			found = "BART"
			s = HFSettings{LayerNormEps: 1e-5, Activation: v.Config.ActivationFunction}
			if s.Activation == "" {
				s.Activation = "gelu" // BartConfig's default
			}
			return false
		}
		return true
	})
	if found == "" {
		return HFSettings{}, fmt.Errorf("models: %T holds no cybertron BERT or BART model", model)
	}
	if math.IsNaN(s.LayerNormEps) || math.IsInf(s.LayerNormEps, 0) || s.LayerNormEps <= 0 || s.LayerNormEps >= 1 {
		return HFSettings{}, fmt.Errorf("models: %s layer_norm_eps is %v, expected a positive number below 1", found, s.LayerNormEps)
	}
	if _, err := spagoGELUIsExact(s.Activation); err != nil {
		return HFSettings{}, fmt.Errorf("models: %s: %w", found, err)
	}
	return s, nil
}

// spagoGELUIsExact maps a transformers activation name (ACT2FN) to what a
// spago GELU module built for it must become: true for "gelu" (exact erf
// GELU), false for names cybertron already runs as transformers does.
func spagoGELUIsExact(name string) (bool, error) {
	switch name {
	case "gelu":
		return true, nil
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish", "tanh", "sigmoid":
		// tanh GELU (spago's GELU), or an activation spago computes as
		// transformers does.
		return false, nil
	}
	return false, fmt.Errorf("activation %q is not one gopeft can run as transformers does (want gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu, swish, tanh or sigmoid)", name)
}

// HFFunction makes a cybertron BERT or BART compute Hugging Face's function
// instead of cybertron's: every LayerNorm gets config.json's eps (cybertron
// builds them all with 1e-5; BERT checkpoints say 1e-12), and where the
// config asks for "gelu" every GELU module becomes hfact.GELU, the exact erf
// form (spago's GELU is the tanh approximation). Training (finetune's
// graph and fused paths) and cybertron's own inference both use the
// modules, so both change. Calling it again changes nothing. LoadBERT and
// LoadBART call it.
//
// A model saved afterwards (Save, nn.Dump) holds hfact.GELU modules: it
// loads through this package, or in any program that imports
// github.com/gopeft/gopeft/hfact. CybertronFunction undoes HFFunction for
// programs that cannot.
func HFFunction(model nn.Model) error {
	s, err := HFSettingsOf(model)
	if err != nil {
		return err
	}
	exact, _ := spagoGELUIsExact(s.Activation)
	return setFunction(model, s.LayerNormEps, exact)
}

// CybertronFunction puts back cybertron's function: LayerNorm eps 1e-5 and
// spago's tanh GELU. A model saved afterwards loads in a program that
// links only cybertron and spago, at the cost of the deviations listed in
// the README's fidelity table.
func CybertronFunction(model nn.Model) error {
	if _, err := HFSettingsOf(model); err != nil {
		return err
	}
	return setFunction(model, cybertronEps, false)
}

// setFunction sets eps on every LayerNorm of model and makes every GELU
// module exact (hfact.GELU) or spago's tanh form.
func setFunction(model nn.Model, eps float64, exact bool) error {
	var norms []*layernorm.Model
	var gelus []walk.Node
	walk.WalkAll(model, func(n walk.Node) {
		switch v := n.Value.(type) {
		case *layernorm.Model:
			norms = append(norms, v)
		case *activation.Model:
			if v.Activation == activation.GELU && exact {
				gelus = append(gelus, n)
			}
		case *hfact.GELU:
			if !exact {
				gelus = append(gelus, n)
			}
		}
	})
	for _, ln := range norms {
		if ln.Eps == nil || ln.Eps.Value() == nil {
			return fmt.Errorf("models: a LayerNorm has no eps buffer")
		}
		cur, ok := ln.Eps.Value().(mat.Matrix)
		if !ok || cur.Size() != 1 {
			return fmt.Errorf("models: a LayerNorm's eps is a %T, expected a 1×1 matrix", ln.Eps.Value())
		}
	}
	for _, n := range gelus {
		if !n.Settable {
			return fmt.Errorf("models: the GELU at %s cannot be replaced", n.Path)
		}
	}
	for i, n := range gelus {
		var m nn.StandardModel = activation.New(activation.GELU)
		if exact {
			m = &hfact.GELU{}
		}
		if !n.Set(m) {
			for _, done := range gelus[:i] { // leave the model as it was
				done.Set(done.Value)
			}
			return fmt.Errorf("models: the GELU at %s does not accept a %T", n.Path, m)
		}
	}
	for _, ln := range norms {
		ln.Eps = nn.Buf(ln.Eps.Value().(mat.Matrix).NewScalar(eps))
	}
	return nil
}
