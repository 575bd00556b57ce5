package trainabletokens

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/walk"
	"github.com/gopeft/gopeft/untrained"
)

// Report is what PEFT's print_trainable_parameters prints, plus the tying
// that was found.
type Report struct {
	// Trainable counts the elements of the rows that train now.
	Trainable int
	// Total counts every parameter element of the base model plus every
	// adapter row.
	Total int
	// Percent is 100·Trainable/Total.
	Percent  float64
	Adapters []AdapterReport
	// Tying has one line per table with adapters: shared aliases, tied
	// copies, and projections that are not tied (and why).
	Tying []string
}

// AdapterReport describes one adapter.
type AdapterReport struct {
	Name   string
	Active bool
	Merged bool
	Tables []string
	Tokens []int
	// Untrained are the adapter's token ids whose base rows (the table's
	// rows before any adapter, in any of Tables) look untrained by package
	// untrained's default rule: zero, or a far and small norm. Training
	// starts from those rows, and PEFT's init copies them.
	Untrained []int
}

// Report counts parameters and describes adapters and tying.
func (m *Model) Report() (Report, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.unloaded {
		return Report{}, ErrUnloaded
	}
	var r Report
	seen := map[*nn.Param]bool{}
	walk.WalkAll(m.base, func(n walk.Node) {
		if p, ok := n.Value.(*nn.Param); ok && !seen[p] {
			seen[p] = true
			r.Total += p.Value().Size()
		}
	})
	// Adapter rows swapped into tables were counted by the walk; add the
	// originals they replaced and the rows of inactive adapters.
	for _, byID := range m.pristine {
		for _, pr := range byID {
			if !seen[pr.param] {
				seen[pr.param] = true
				r.Total += pr.param.Value().Size()
			}
		}
	}
	live := map[string]bool{}
	for _, n := range m.liveNames() {
		live[n] = true
	}
	tables := map[string]bool{}
	baseUntrained := map[*embedding.Model]*untrained.Result{}
	for _, name := range m.names {
		a := m.adapters[name]
		ar := AdapterReport{Name: name, Active: contains(m.active, name), Merged: contains(m.merged, name), Tokens: sortedCopy(a.cfg.TokenIndices)}
		flagged := map[int]bool{}
		for _, t := range a.targets {
			ar.Tables = append(ar.Tables, t.group.Table.HFPath)
			tables[t.group.Table.HFPath] = true
			e := t.group.Table.Embedding
			det, ok := baseUntrained[e]
			if !ok {
				var err error
				if det, err = m.detectBase(e); err != nil {
					return Report{}, fmt.Errorf("trainabletokens: Report: table %s: %w", t.group.Table.HFPath, err)
				}
				baseUntrained[e] = det
			}
			for _, id := range t.ids {
				if det.Contains(id) && !flagged[id] {
					flagged[id] = true
					ar.Untrained = append(ar.Untrained, id)
				}
			}
			for _, p := range t.rows {
				if !seen[p] {
					seen[p] = true
					r.Total += p.Value().Size()
				}
				if live[name] {
					r.Trainable += p.Value().Size()
				}
			}
		}
		sort.Ints(ar.Untrained)
		r.Adapters = append(r.Adapters, ar)
	}
	if r.Total > 0 {
		r.Percent = 100 * float64(r.Trainable) / float64(r.Total)
	}
	for _, g := range m.groups {
		if tables[g.Table.HFPath] {
			r.Tying = append(r.Tying, g.String())
		}
	}
	sort.Strings(r.Tying)
	return r, nil
}

// String prints the report like PEFT's print_trainable_parameters, then one
// line per adapter and per tied table.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "trainable params: %s || all params: %s || trainable%%: %.4f\n", thousands(r.Trainable), thousands(r.Total), r.Percent)
	for _, a := range r.Adapters {
		state := "inactive"
		switch {
		case a.Merged:
			state = "merged"
		case a.Active:
			state = "active"
		}
		fmt.Fprintf(&b, "adapter %q (%s): %d tokens %v in %s\n", a.Name, state, len(a.Tokens), a.Tokens, strings.Join(a.Tables, ", "))
		if len(a.Untrained) > 0 {
			fmt.Fprintf(&b, "adapter %q: warning: base rows of tokens %v look untrained (zero, or a far and small norm); training starts from them\n", a.Name, a.Untrained)
		}
	}
	for _, t := range r.Tying {
		fmt.Fprintf(&b, "tying: %s\n", t)
	}
	return b.String()
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// detectBase runs untrained.Detect on a table's base rows: the pristine
// copy of every row an adapter touched, the table's own row elsewhere.
func (m *Model) detectBase(e *embedding.Model) (*untrained.Result, error) {
	byID := m.pristine[e]
	return untrained.DetectRows(len(e.Weights), func(i int) []float64 {
		if pr := byID[i]; pr != nil {
			return rows.Get(pr.value, 0, e.Dim)
		}
		return rows.Get(e.Weights[i].Value().(mat.Matrix), 0, e.Dim)
	}, nil)
}
