package trainabletokens

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/registry"
)

// Merge writes the named adapters' rows (default: the active ones) into the
// base rows of every target table and every tied copy. Merged adapters stop
// training. Adapters merged together, or with adapters merged earlier, must
// use disjoint token ids per table. With safe set, rows holding NaN or Inf
// are an error and nothing is written. Merging an adapter already merged is
// a no-op.
func (m *Model) Merge(safe bool, names ...string) error {
	if err := m.lockWrite("Merge"); err != nil {
		return err
	}
	defer m.unlockWrite()
	return m.merge(safe, names)
}

func (m *Model) merge(safe bool, names []string) error {
	if len(names) == 0 {
		names = m.active
	}
	names = dedupe(names)
	if err := m.lookup(names); err != nil {
		return err
	}
	var fresh []string
	for _, n := range names {
		if !contains(m.merged, n) {
			fresh = append(fresh, n)
		}
	}
	if err := m.checkDisjoint(append(append([]string(nil), m.merged...), fresh...)); err != nil {
		return err
	}
	if safe {
		for _, n := range fresh {
			if err := m.checkFinite(n); err != nil {
				return err
			}
		}
	}
	// An active adapter overlapping a newly merged one would fight over rows.
	if err := m.checkDisjoint(dedupe(append(append(append([]string(nil), m.merged...), fresh...), m.liveNames()...))); err != nil {
		return err
	}
	m.merged = append(m.merged, fresh...)
	return m.apply()
}

func (m *Model) checkFinite(name string) error {
	for _, t := range m.adapters[name].targets {
		for k, id := range t.ids {
			if ok, col := rows.Finite(t.rows[k].Value().(mat.Matrix), 0, t.group.Table.Embedding.Dim); !ok {
				return fmt.Errorf("%w: adapter %q, token id %d of %s has a NaN or Inf at column %d; nothing was merged",
					ErrNotFinite, name, id, t.group.Table.HFPath, col)
			}
		}
	}
	return nil
}

// Unmerge restores the exact original bits of every row merged adapters
// wrote, in the tables and in their tied copies. Adapters that are still
// active go back to being used (and trained) unmerged. With nothing merged
// it is a no-op.
func (m *Model) Unmerge() error {
	if err := m.lockWrite("Unmerge"); err != nil {
		return err
	}
	defer m.unlockWrite()
	m.merged = nil
	return m.apply()
}

// MergeAndUnload merges the named adapters (default: the active ones) and
// returns the base model with those rows baked in and nothing of the plugin
// left: the original row params back in every table, every parameter's
// requiresGrad flag as it was before injection. The result is a plain
// cybertron model (nn.Dump and cybertron's task loaders work on it).
// Adapters not merged are dropped. The Model is unusable afterwards.
func (m *Model) MergeAndUnload(safe bool, names ...string) (nn.Model, error) {
	if err := m.lockWrite("MergeAndUnload"); err != nil {
		return nil, err
	}
	defer m.unlockWrite()
	if err := m.merge(safe, names); err != nil {
		return nil, err
	}
	return m.unload()
}

// Unload removes every adapter (unmerging merged ones) and returns the base
// model exactly as it was before New: same row params, same bits in every
// table and tied copy, same requiresGrad flags. The Model is unusable
// afterwards.
func (m *Model) Unload() (nn.Model, error) {
	if err := m.lockWrite("Unload"); err != nil {
		return nil, err
	}
	defer m.unlockWrite()
	m.merged = nil
	return m.unload()
}

// unload keeps merged adapters, drops the rest and releases the model.
func (m *Model) unload() (nn.Model, error) {
	m.disabled = true
	if err := m.apply(); err != nil {
		return nil, err
	}
	m.restoreFlags()
	for _, g := range m.groups {
		registry.UnmarkInjected(g.Table.Embedding)
	}
	undo(m.renewed)
	m.unloaded = true
	m.adapters, m.pristine = nil, nil
	return m.base, nil
}
