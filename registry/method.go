package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/regular"
)

// ErrUnknownMethod is returned for a peft_type nobody registered.
var ErrUnknownMethod = errors.New("unknown peft_type")

// ConfigFile is the name of the adapter configuration file in an adapter
// directory, as PEFT writes it.
const ConfigFile = "adapter_config.json"

// Adapter is what a method's Loader returns: the base model with the
// method's adapters injected (for Trainable Tokens, a
// *trainabletokens.Model). It is a spago model whose parameters are the
// trainable ones, and names the calls every PEFT method shares; type-assert
// it to the method's own type for the rest.
type Adapter interface {
	nn.Model
	// Base returns the model the adapters are injected into.
	Base() nn.Model
	// Adapters lists the adapter names in the order they were added.
	Adapters() []string
	// Active lists the active adapter names.
	Active() []string
	// SetActive makes exactly the named adapters active.
	SetActive(names ...string) error
	// MergeAndUnload merges the named adapters (default: the active ones)
	// and returns the plain base model.
	MergeAndUnload(safe bool, names ...string) (nn.Model, error)
	// Unload removes every adapter and returns the base model as it was.
	Unload() (nn.Model, error)
}

// Loader loads the adapter stored in dir into model under the adapter name
// and returns the method's adapter model.
type Loader func(model nn.Model, dir, name string) (Adapter, error)

var (
	methodsMu sync.RWMutex
	methods   = map[string]Loader{}
)

// RegisterMethod makes a PEFT method loadable by its peft_type. It panics
// if the type is registered twice or the loader is nil.
func RegisterMethod(peftType string, load Loader) {
	methodsMu.Lock()
	defer methodsMu.Unlock()
	if load == nil {
		panic("registry: RegisterMethod loader is nil")
	}
	if _, dup := methods[peftType]; dup {
		panic("registry: RegisterMethod called twice for " + peftType)
	}
	methods[peftType] = load
}

// Methods lists the registered peft_type names, sorted.
func Methods() []string {
	methodsMu.RLock()
	defer methodsMu.RUnlock()
	out := make([]string, 0, len(methods))
	for k := range methods {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PeftType reads the peft_type of the adapter directory dir.
func PeftType(dir string) (string, error) {
	path := filepath.Join(dir, ConfigFile)
	// A FIFO or device here is an error at once; the cap is the one
	// trainabletokens documents for adapter_config.json.
	data, err := regular.ReadFile(path, 64<<20)
	if err != nil {
		return "", fmt.Errorf("adapter config: %w", err)
	}
	var head struct {
		PeftType *string `json:"peft_type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return "", fmt.Errorf("adapter config %s: malformed JSON: %v", path, err)
	}
	if head.PeftType == nil {
		return "", fmt.Errorf("adapter config %s: missing \"peft_type\"", path)
	}
	return *head.PeftType, nil
}

// LoadAdapter reads dir's peft_type and hands the directory to the method
// registered for it.
func LoadAdapter(model nn.Model, dir, name string) (Adapter, error) {
	t, err := PeftType(dir)
	if err != nil {
		return nil, err
	}
	methodsMu.RLock()
	load := methods[t]
	methodsMu.RUnlock()
	if load == nil {
		return nil, fmt.Errorf("%w %q in %s; registered: %s (import the method's package to register it)",
			ErrUnknownMethod, t, filepath.Join(dir, ConfigFile), strings.Join(Methods(), ", "))
	}
	return load(model, dir, name)
}
