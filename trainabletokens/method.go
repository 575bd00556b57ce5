package trainabletokens

import (
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/registry"
)

// The registry entry that makes registry.LoadAdapter dispatch
// "TRAINABLE_TOKENS" adapter directories to Load.
func init() {
	registry.RegisterMethod(PeftType, func(model nn.Model, dir, name string) (registry.Adapter, error) {
		m, err := Load(model, dir, name)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return m, nil
	})
}

// Model is what registry.LoadAdapter returns for this method.
var _ registry.Adapter = (*Model)(nil)
