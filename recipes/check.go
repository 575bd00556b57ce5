package recipes

import (
	"fmt"

	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/registry"
	"github.com/gopeft/gopeft/trainabletokens"
)

// checkAdapter checks that tm is an adapter model of m: injected into m
// itself or into a model sharing m's input table. A nil tm is an error
// when required (training), and means "no adapter" otherwise.
func checkAdapter(m nn.Model, tm *trainabletokens.Model, required bool) error {
	if tm == nil {
		if required {
			return fmt.Errorf("recipes: the adapter model is nil; create it with trainabletokens.New(m, cfg, name) or trainabletokens.Load")
		}
		return nil
	}
	lm, err := registry.Describe(m)
	if err != nil {
		return fmt.Errorf("recipes: %w", err)
	}
	lb, err := registry.Describe(tm.Base())
	if err != nil {
		return fmt.Errorf("recipes: the adapter's base model: %w", err)
	}
	if lm.Input() == nil || lb.Input() == nil || lm.Input().Embedding != lb.Input().Embedding {
		return fmt.Errorf("recipes: the adapter model belongs to another model (%s), not to this %s; pass the model the adapter was created on (trainabletokens.New/Load)",
			lb.Architecture, lm.Architecture)
	}
	return nil
}
