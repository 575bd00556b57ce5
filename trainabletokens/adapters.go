package trainabletokens

// Adapter management: names, activation, deletion, disable/enable, sync.

import (
	"fmt"
	"sort"
	"strings"
)

// liveNames are the adapters whose trainable rows the model uses now:
// active, not merged, and the adapters not disabled.
func (m *Model) liveNames() []string {
	if m.disabled {
		return nil
	}
	var out []string
	for _, n := range m.active {
		if !contains(m.merged, n) {
			out = append(out, n)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkDisjoint returns ErrOverlap if two of the named adapters train a
// common token id of the same table.
func (m *Model) checkDisjoint(names []string) error {
	for i := 0; i < len(names); i++ {
		for j := i + 1; j < len(names); j++ {
			a, b := m.adapters[names[i]], m.adapters[names[j]]
			for _, ta := range a.targets {
				for _, tb := range b.targets {
					if ta.group != tb.group {
						continue
					}
					if common := intersect(ta.ids, tb.ids); len(common) > 0 {
						return fmt.Errorf("%w: adapters %q and %q both train token ids %s of %s; adapters that are active or merged together must use disjoint ids",
							ErrOverlap, a.name, b.name, idList(common), ta.group.Table.HFPath)
					}
				}
			}
		}
	}
	return nil
}

func intersect(a, b []int) []int {
	in := map[int]bool{}
	for _, x := range a {
		in[x] = true
	}
	var out []int
	for _, x := range b {
		if in[x] {
			out = append(out, x)
		}
	}
	sort.Ints(out)
	return out
}

func (m *Model) lookup(names []string) error {
	for _, n := range names {
		if m.adapters[n] == nil {
			return fmt.Errorf("%w %q; adapters: %s", ErrUnknownAdapter, n, strings.Join(m.names, ", "))
		}
	}
	return nil
}

func dedupe(names []string) []string {
	var out []string
	for _, n := range names {
		if !contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// checkNewName refuses an empty or already used adapter name.
func (m *Model) checkNewName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: adapter name is empty", ErrInvalidConfig)
	}
	if m.adapters[name] != nil {
		return fmt.Errorf("%w: an adapter named %q already exists", ErrInvalidConfig, name)
	}
	return nil
}

// AddAdapter adds another adapter, inactive (as in PEFT), with rows
// initialised from the rows the model uses now (or randomly, per cfg).
func (m *Model) AddAdapter(name string, cfg Config) error {
	if err := m.lockWrite("AddAdapter"); err != nil {
		return err
	}
	defer m.unlockWrite()
	if err := m.checkNewName(name); err != nil {
		return err
	}
	a, err := m.newAdapter(name, cfg)
	if err != nil {
		return err
	}
	m.adapters[name] = a
	m.names = append(m.names, name)
	return m.apply()
}

// SetActive makes exactly the named adapters active (none: no adapter).
// Several adapters may be active at once when their token ids are disjoint
// per table, also with respect to merged adapters.
func (m *Model) SetActive(names ...string) error {
	if err := m.lockWrite("SetActive"); err != nil {
		return err
	}
	defer m.unlockWrite()
	names = dedupe(names)
	if err := m.lookup(names); err != nil {
		return err
	}
	if err := m.checkDisjoint(dedupe(append(append([]string(nil), names...), m.merged...))); err != nil {
		return err
	}
	m.active = names
	return m.apply()
}

// Delete removes an adapter. A merged adapter must be unmerged first.
func (m *Model) Delete(name string) error {
	if err := m.lockWrite("Delete"); err != nil {
		return err
	}
	defer m.unlockWrite()
	if err := m.lookup([]string{name}); err != nil {
		return err
	}
	if contains(m.merged, name) {
		return fmt.Errorf("%w: cannot delete adapter %q while it is merged; Unmerge first", ErrMerged, name)
	}
	delete(m.adapters, name)
	m.names = remove(m.names, name)
	m.active = remove(m.active, name)
	return m.apply()
}

func remove(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// Disable makes the model use its base rows (and merged adapters) only;
// active adapters stop training until Enable. Merged adapters stay merged.
func (m *Model) Disable() error {
	if err := m.lockWrite("Disable"); err != nil {
		return err
	}
	defer m.unlockWrite()
	m.disabled = true
	return m.apply()
}

// Enable undoes Disable.
func (m *Model) Enable() error {
	if err := m.lockWrite("Enable"); err != nil {
		return err
	}
	defer m.unlockWrite()
	m.disabled = false
	return m.apply()
}

// Sync writes the active rows into every tied copy again. Training steps
// change the trainable rows in place; the input table sees the change at
// once (it holds the row params), the value copies (BART lm_head, BERT MLM
// decoder) only after Sync. finetune's trainer calls it after each step;
// call it yourself after stepping the rows with your own optimizer.
func (m *Model) Sync() error {
	if err := m.lockWrite("Sync"); err != nil {
		return err
	}
	defer m.unlockWrite()
	return m.apply()
}
