package tying

import (
	"fmt"
	"math"
	"strings"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/walk"
	"github.com/gopeft/gopeft/registry"
)

// Tolerance is the relative per-element tolerance under which a projection
// row counts as a copy of a table row: |w−e| ≤ Tolerance·max(1, |e|).
// Converters copy bits, so real copies differ by 0; the slack only absorbs a
// float64 → float32 round trip.
const Tolerance = 1e-6

// Copy is an output projection whose rows are a value copy of a table.
type Copy struct {
	Output *registry.Output
	// MaxAbsDiff is the largest element difference found (0 for exact copies).
	MaxAbsDiff float64
	// SkippedRows are rows that are all zeros in the table but not in the
	// projection; they are ignored when comparing. cybertron's BERT converter
	// never fills the last row of the converted vocabulary (vocabulary.Term is
	// off by one), while the decoder gets it. An adapter training such a row
	// still writes both.
	SkippedRows []int
}

// Untied is a projection of the table's shape that is not a copy.
type Untied struct {
	Output *registry.Output
	Reason string
}

// Group is one embedding table with everything that shares its rows.
type Group struct {
	Table *registry.Table
	// Aliases are the Go paths of every slot holding the same table pointer
	// (BART: the model's table and the encoder's and decoder's Shared wrappers).
	Aliases []string
	Copies  []*Copy
	Untied  []*Untied
}

// Detect returns one Group per table of the layout, in layout order.
func Detect(l *registry.Layout) ([]*Group, error) {
	slots := map[*embedding.Model][]string{}
	var linears []walk.Node
	walk.WalkAll(l.Model, func(n walk.Node) {
		switch v := n.Value.(type) {
		case *embedding.Model:
			slots[v] = append(slots[v], strings.TrimSuffix(n.Path, ".Model"))
		case *linear.Model:
			linears = append(linears, n)
		}
	})
	var out []*Group
	for _, t := range l.Tables {
		g := &Group{Table: t, Aliases: slots[t.Embedding]}
		cands := outputsFor(l, t, linears)
		for _, o := range cands {
			c, reason, err := compare(t.Embedding, o.Linear)
			if err != nil {
				return nil, fmt.Errorf("tying: %s vs %s: %w", t.HFPath, o.HFPath, err)
			}
			if reason != "" {
				if o.Of == t { // only report what the architecture expected to be tied
					g.Untied = append(g.Untied, &Untied{Output: o, Reason: reason})
				}
				continue
			}
			c.Output = o
			g.Copies = append(g.Copies, c)
		}
		out = append(out, g)
	}
	return out, nil
}

// outputsFor lists the registered outputs of t plus any other linear layer
// in the model whose weight has the table's shape (vocab × dim).
func outputsFor(l *registry.Layout, t *registry.Table, linears []walk.Node) []*registry.Output {
	var out []*registry.Output
	known := map[*linear.Model]bool{}
	for _, o := range l.Outputs {
		known[o.Linear] = true
		if o.Of == t || shapeFits(t.Embedding, o.Linear) {
			out = append(out, o)
		}
	}
	for _, n := range linears {
		lin := n.Value.(*linear.Model)
		if known[lin] || !shapeFits(t.Embedding, lin) {
			continue
		}
		known[lin] = true
		out = append(out, &registry.Output{Linear: lin, Path: n.Path, HFPath: registry.SnakePath(n.Path), Names: []string{registry.SnakePath(n.Path), n.Path}})
	}
	return out
}

func shapeFits(e *embedding.Model, lin *linear.Model) bool {
	if lin == nil || lin.W == nil {
		return false
	}
	s := lin.W.Value().Shape()
	return len(s) == 2 && s[0] == len(e.Weights) && s[1] == e.Dim
}

// compare checks whether lin.W is a copy of e. It returns a non-empty
// reason when it is not.
func compare(e *embedding.Model, lin *linear.Model) (*Copy, string, error) {
	if !shapeFits(e, lin) {
		return nil, fmt.Sprintf("weight shape %v differs from the table's [%d %d]", lin.W.Value().Shape(), len(e.Weights), e.Dim), nil
	}
	w := lin.W.Value().(mat.Matrix)
	if rows.DType(w) == "" {
		return nil, "", fmt.Errorf("unsupported weight type %T", w)
	}
	c := &Copy{}
	for i, p := range e.Weights {
		row := p.Value().(mat.Matrix)
		if rows.DType(row) != rows.DType(w) {
			return nil, fmt.Sprintf("dtype %s differs from the table's %s", rows.DType(w), rows.DType(row)), nil
		}
		er, wr := rows.Get(row, 0, e.Dim), rows.Get(w, i, e.Dim)
		worst, ok := 0.0, true
		for j := range er {
			d := math.Abs(er[j] - wr[j])
			worst = math.Max(worst, d)
			if !(d <= Tolerance*math.Max(1, math.Abs(er[j]))) { // also false for NaN
				ok = false
			}
		}
		if !ok {
			if rows.Zero(row, 0, e.Dim) {
				c.SkippedRows = append(c.SkippedRows, i)
				continue
			}
			return nil, fmt.Sprintf("row %d differs from the table by up to %.3g (tolerance %g relative)", i, worst, Tolerance), nil
		}
		c.MaxAbsDiff = math.Max(c.MaxAbsDiff, worst)
	}
	if compared := len(e.Weights) - len(c.SkippedRows); compared < len(c.SkippedRows) {
		return nil, fmt.Sprintf("only %d of %d table rows are non-zero", compared, len(e.Weights)), nil
	}
	return c, "", nil
}

// WriteRow writes src (a dim × 1 row of the table's dtype) into row id of
// every copy of the group.
func (g *Group) WriteRow(id int, src mat.Matrix) error {
	for _, c := range g.Copies {
		if err := rows.Copy(c.Output.Linear.W.Value().(mat.Matrix), id, src, 0, g.Table.Embedding.Dim); err != nil {
			return fmt.Errorf("tying: writing row %d of %s: %w", id, c.Output.HFPath, err)
		}
	}
	return nil
}

// CopyRows returns a snapshot of row id of every copy, in Copies order.
func (g *Group) CopyRows(id int) []mat.Matrix {
	out := make([]mat.Matrix, len(g.Copies))
	for i, c := range g.Copies {
		out[i] = c.Output.Linear.W.Value().(mat.Matrix).ExtractRow(id)
	}
	return out
}

// RestoreCopyRows writes back a CopyRows snapshot bit for bit.
func (g *Group) RestoreCopyRows(id int, snap []mat.Matrix) error {
	for i, c := range g.Copies {
		if err := rows.Copy(c.Output.Linear.W.Value().(mat.Matrix), id, snap[i], 0, g.Table.Embedding.Dim); err != nil {
			return err
		}
	}
	return nil
}

// String describes the group in one line, e.g.
// "model.shared (aliases: 3) → tied: lm_head".
func (g *Group) String() string {
	var b strings.Builder
	b.WriteString(g.Table.HFPath)
	if len(g.Aliases) > 1 {
		fmt.Fprintf(&b, " (shared by %d slots: %s)", len(g.Aliases), strings.Join(g.Aliases, ", "))
	}
	for _, c := range g.Copies {
		fmt.Fprintf(&b, "; tied copy: %s (max diff %.3g", c.Output.HFPath, c.MaxAbsDiff)
		if len(c.SkippedRows) > 0 {
			fmt.Fprintf(&b, ", rows %v skipped: zero in the table", c.SkippedRows)
		}
		b.WriteString(")")
	}
	for _, u := range g.Untied {
		fmt.Fprintf(&b, "; NOT tied: %s (%s)", u.Output.HFPath, u.Reason)
	}
	return b.String()
}

// IsCopy reports whether the weight of lin is a value copy of table's rows
// under the rule Detect uses (every row equal within Tolerance, rows that
// are all zero in the table skipped, at least as many rows compared as
// skipped). It is the one rule of the project: newtokens asks it too. A
// weight whose shape is not the table's is not a copy; an unsupported dtype
// is an error.
func IsCopy(table *embedding.Model, lin *linear.Model) (bool, error) {
	if table == nil || lin == nil || lin.W == nil {
		return false, nil
	}
	c, _, err := compare(table, lin)
	if err != nil {
		return false, fmt.Errorf("tying: %w", err)
	}
	return c != nil, nil
}
