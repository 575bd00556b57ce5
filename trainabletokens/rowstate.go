package trainabletokens

// Row state: freezing, building adapters, and apply, the one function
// through which every change of which rows the model uses goes.

import (
	"math"
	"math/rand/v2"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/walk"
	"github.com/gopeft/gopeft/registry"
	"github.com/gopeft/gopeft/tying"
)

// freeze records every parameter's requiresGrad flag and clears it.
func (m *Model) freeze() {
	seen := map[*nn.Param]bool{}
	walk.WalkAll(m.base, func(n walk.Node) {
		if p, ok := n.Value.(*nn.Param); ok && !seen[p] {
			seen[p] = true
			m.flags = append(m.flags, paramFlag{p, p.RequiresGrad()})
			p.SetRequiresGrad(false)
		}
	})
}

func (m *Model) restoreFlags() {
	for _, f := range m.flags {
		f.p.SetRequiresGrad(f.requiresGrad)
	}
}

// newAdapter validates cfg against the model and builds the adapter's rows.
// It changes nothing in the model but the pristine bookkeeping.
func (m *Model) newAdapter(name string, cfg Config) (*adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tables, err := checkTargets(m.layout, cfg)
	if err != nil {
		return nil, err
	}
	return m.buildAdapter(name, cfg, tables)
}

// buildAdapter builds the rows of an adapter whose cfg was validated and
// whose tables were matched and checked on m.layout.
func (m *Model) buildAdapter(name string, cfg Config, tables []*registry.Table) (*adapter, error) {
	cfg = cfg.clone()
	a := &adapter{name: name, cfg: cfg}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	for _, t := range tables {
		g := m.groupOf[t.Embedding]
		tg := &target{group: g, ids: cfg.TokenIndices}
		for _, id := range cfg.TokenIndices {
			pr := m.pristineFor(g, id)
			v := pr.param.Value().(mat.Matrix).Clone()
			if cfg.InitWeights == InitRandom {
				vals := make([]float64, t.Embedding.Dim)
				for i := range vals {
					vals[i] = rng.NormFloat64()
				}
				if err := rows.Set(v, 0, vals); err != nil {
					return nil, err
				}
			}
			p := nn.NewParam(v)
			p.SetRequiresGrad(false)
			tg.rows = append(tg.rows, p)
		}
		a.targets = append(a.targets, tg)
	}
	return a, nil
}

// pristineFor returns (capturing on first use) the original state of a row.
func (m *Model) pristineFor(g *tying.Group, id int) *pristineRow {
	e := g.Table.Embedding
	byID := m.pristine[e]
	if byID == nil {
		byID = map[int]*pristineRow{}
		m.pristine[e] = byID
	}
	if pr := byID[id]; pr != nil {
		return pr
	}
	p := e.Weights[id]
	pr := &pristineRow{param: p, value: p.Value().(mat.Matrix).Clone(), copies: g.CopyRows(id)}
	byID[id] = pr
	return pr
}

// apply makes the model's rows match the adapters' state, from scratch:
// every touched row back to its pristine bits, merged adapters written into
// the table and its copies, active adapters' rows swapped in (copies follow),
// and only active, unmerged rows left trainable. Cost: O(touched rows · dim).
func (m *Model) apply() error {
	for e, byID := range m.pristine {
		g := m.groupOf[e]
		for id, pr := range byID {
			e.Weights[id] = pr.param
			if err := rows.Copy(pr.param.Value().(mat.Matrix), 0, pr.value, 0, e.Dim); err != nil {
				return err
			}
			if err := g.RestoreCopyRows(id, pr.copies); err != nil {
				return err
			}
		}
	}
	for _, name := range m.merged {
		for _, t := range m.adapters[name].targets {
			e := t.group.Table.Embedding
			for k, id := range t.ids {
				v := t.rows[k].Value().(mat.Matrix)
				if err := rows.Copy(m.pristine[e][id].param.Value().(mat.Matrix), 0, v, 0, e.Dim); err != nil {
					return err
				}
				if err := t.group.WriteRow(id, v); err != nil {
					return err
				}
				if err := m.keepSkippedCopies(t.group, id, v); err != nil {
					return err
				}
			}
		}
	}
	for _, name := range m.liveNames() {
		for _, t := range m.adapters[name].targets {
			for k, id := range t.ids {
				t.group.Table.Embedding.Weights[id] = t.rows[k]
				if err := t.group.WriteRow(id, t.rows[k].Value().(mat.Matrix)); err != nil {
					return err
				}
				if err := m.keepSkippedCopies(t.group, id, t.rows[k].Value().(mat.Matrix)); err != nil {
					return err
				}
			}
		}
	}
	live := map[string]bool{}
	for _, n := range m.liveNames() {
		live[n] = true
	}
	for name, a := range m.adapters {
		for _, t := range a.targets {
			for _, p := range t.rows {
				p.SetRequiresGrad(live[name])
			}
		}
	}
	return nil
}

// keepSkippedCopies undoes, for row id of g, the write of v into tied copies
// whose row id Detect skipped (zero in the table, not in the copy: cybertron's
// BERT converter leaves the last vocabulary row of the table zero) while v
// is still the table's own pristine row: an untrained adapter on such an id
// must not overwrite the copy's real row with zeros. Once trained, the row
// goes into every copy.
func (m *Model) keepSkippedCopies(g *tying.Group, id int, v mat.Matrix) error {
	pr := m.pristine[g.Table.Embedding][id]
	if pr == nil || !sameBits(v, pr.value) {
		return nil
	}
	for i, c := range g.Copies {
		for _, s := range c.SkippedRows {
			if s == id {
				if err := rows.Copy(c.Output.Linear.W.Value().(mat.Matrix), id, pr.copies[i], 0, g.Table.Embedding.Dim); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sameBits reports whether two matrices hold the same bits.
func sameBits(a, b mat.Matrix) bool {
	if a.Size() != b.Size() {
		return false
	}
	x, y := rows.Get(a, 0, a.Size()), rows.Get(b, 0, b.Size())
	for i := range x {
		if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
			return false
		}
	}
	return true
}
