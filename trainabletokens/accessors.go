package trainabletokens

// Read-only accessors and spago's traversal over the live rows.

import (
	"fmt"

	"github.com/nlpodyssey/spago/nn"
)

// Base returns the model the adapters are injected into: the model to run
// inference on, for a caller that got this Model from registry.LoadAdapter
// (registry.Adapter has it for that reason).
func (m *Model) Base() nn.Model { return m.base }

// Adapters returns the adapter names in the order they were added.
func (m *Model) Adapters() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]string(nil), m.names...)
}

// Active returns the active adapter names.
func (m *Model) Active() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]string(nil), m.active...)
}

// Merged returns the merged adapter names in merge order.
func (m *Model) Merged() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]string(nil), m.merged...)
}

// Disabled reports whether the adapters are disabled.
func (m *Model) Disabled() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.disabled
}

// Config returns a copy of the named adapter's config.
func (m *Model) Config(name string) (Config, error) {
	if err := m.lockRead(); err != nil {
		return Config{}, err
	}
	defer m.mu.RUnlock()
	if err := m.lookup([]string{name}); err != nil {
		return Config{}, err
	}
	return m.adapters[name].cfg.clone(), nil
}

// TrainableParams returns the rows that train now: those of the active,
// unmerged adapters while enabled. Each row appears once, even when it
// drives several tied tables. These are the only parameters of the model
// with requiresGrad set.
func (m *Model) TrainableParams() []*nn.Param {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*nn.Param
	for _, name := range m.liveNames() {
		for _, t := range m.adapters[name].targets {
			out = append(out, t.rows...)
		}
	}
	return out
}

// Rows returns the named adapter's rows in the table with the given module
// name (any name Describe knows for it, "" for the first target), in
// TokenIndices order. They are the live params: do not modify them while
// other goroutines use the model.
func (m *Model) Rows(name, table string) ([]*nn.Param, error) {
	if err := m.lockRead(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	if err := m.lookup([]string{name}); err != nil {
		return nil, err
	}
	a := m.adapters[name]
	for _, t := range a.targets {
		if table == "" || contains(t.group.Table.Names, table) {
			return append([]*nn.Param(nil), t.rows...), nil
		}
	}
	return nil, fmt.Errorf("trainabletokens: adapter %q has no rows in table %q", name, table)
}

// TraverseParams calls fn for every row that trains now (TrainableParams):
// spago's nn.ForEachParam and nn.Parameters use it, so they yield no frozen
// base parameter and no row of an inactive or merged adapter.
func (m *Model) TraverseParams(fn func(param *nn.Param)) {
	for _, p := range m.TrainableParams() {
		fn(p)
	}
}
