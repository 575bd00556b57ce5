package trainabletokens

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/optimizers"

	"github.com/gopeft/gopeft/internal/rows"
)

// Step is one synchronous optimizer step over the rows that train now, for
// a training loop of your own (forward, ag.Backward, Step):
//
//   - every live row with a gradient is checked: a NaN or ±Inf gradient is
//     an error wrapping ErrNotFinite that names the adapter, the table and
//     the token id, and no row changes;
//   - s.OptimizeParams runs on each such row, one after the other, then
//     s.IncExample if s has it (spago's adam does);
//   - a row the update made non-finite (a learning rate of +Inf, an
//     overflow) is an error wrapping ErrNotFinite, and every row of the step
//     gets back the value it had before it (the optimizer's own state, such
//     as Adam's moments, has moved on);
//   - the rows' tables forget their gradients, and the tied copies follow
//     the new rows (what Sync does).
//
// It returns the number of rows updated. Why not spago's own loop:
// optimizers.New(nn.Parameters(m), s).Optimize() works on this model (its
// parameters are the live rows), but Optimize returns before the goroutines
// that update the rows have finished, so a forward or a Sync right after it
// races with the updates. Step is the safe call. Step is an adapter change
// (it waits for Do calls; inside Do it returns ErrInsideDo).
func (m *Model) Step(s optimizers.OptimizationStrategy) (int, error) {
	if s == nil {
		return 0, fmt.Errorf("trainabletokens: Step: nil optimization strategy")
	}
	if err := m.lockWrite("Step"); err != nil {
		return 0, err
	}
	defer m.unlockWrite()
	type stepRow struct {
		p      *nn.Param
		before mat.Matrix
		where  string
	}
	var todo []stepRow
	for _, name := range m.liveNames() {
		for _, t := range m.adapters[name].targets {
			dim := t.group.Table.Embedding.Dim
			for k, p := range t.rows {
				if !p.HasGrad() {
					continue
				}
				where := fmt.Sprintf("adapter %q, token id %d of %s", name, t.ids[k], t.group.Table.HFPath)
				g, ok := p.Grad().(mat.Matrix)
				if !ok {
					return 0, fmt.Errorf("trainabletokens: Step: %s: gradient is a %T", where, p.Grad())
				}
				if ok, col := rows.Finite(g, 0, dim); !ok {
					return 0, fmt.Errorf("%w: Step: the gradient of %s has a NaN or Inf at column %d; no row was updated (check the loss and the learning rate)", ErrNotFinite, where, col)
				}
				todo = append(todo, stepRow{p: p, before: p.Value().(mat.Matrix).Clone(), where: where})
			}
		}
	}
	restore := func() {
		for _, r := range todo {
			_ = rows.Copy(r.p.Value().(mat.Matrix), 0, r.before, 0, r.before.Size())
			if r.p.HasGrad() {
				r.p.ZeroGrad()
			}
		}
	}
	for _, r := range todo {
		if err := s.OptimizeParams(r.p); err != nil {
			restore()
			return 0, fmt.Errorf("trainabletokens: Step: %s: %w", r.where, err)
		}
	}
	if inc, ok := s.(interface{ IncExample() }); ok {
		inc.IncExample()
	}
	for _, r := range todo {
		if ok, col := rows.Finite(r.p.Value().(mat.Matrix), 0, r.before.Size()); !ok {
			restore()
			return 0, fmt.Errorf("%w: Step: the update made %s NaN or Inf at column %d; every row keeps its value from before the step (check the learning rate)", ErrNotFinite, r.where, col)
		}
	}
	for _, r := range todo {
		if r.p.HasGrad() {
			r.p.ZeroGrad()
		}
	}
	for _, g := range m.groups {
		g.Table.Embedding.ZeroGrad()
	}
	if err := m.apply(); err != nil {
		return 0, err
	}
	return len(todo), nil
}
