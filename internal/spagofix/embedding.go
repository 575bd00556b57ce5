// Package spagofix holds the plugin's workarounds for spago v1.1.0 defects
// that block training (see ../../README.md, "Known spago issues").
package spagofix

import (
	"fmt"
	"reflect"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"

	"github.com/gopeft/gopeft/internal/walk"
)

// NeedsRenew reports whether e lost its gradient index map, which happens
// to every embedding.Model decoded by gob: the map is unexported, so gob
// leaves it nil and the first row gradient panics inside a backward
// goroutine ("assignment to entry in nil map"), killing the process.
func NeedsRenew(e *embedding.Model) bool {
	return reflect.ValueOf(e).Elem().FieldByName("embedGradIdx").IsNil()
}

// Renewed returns a fresh embedding.Model holding the same rows (the same
// *nn.Param pointers) as e, with a working gradient index.
func Renewed(e *embedding.Model) (*embedding.Model, error) {
	var f *embedding.Model
	if len(e.Weights) == 0 {
		return nil, fmt.Errorf("spagofix: embedding table with no rows")
	}
	switch e.Weights[0].Value().(type) {
	case *mat.Dense[float32]:
		f = embedding.New[float32](0, e.Dim)
	case *mat.Dense[float64]:
		f = embedding.New[float64](0, e.Dim)
	default:
		return nil, fmt.Errorf("spagofix: unsupported row type %T", e.Weights[0].Value())
	}
	f.Size, f.Weights = e.Size, e.Weights
	return f, nil
}

// Replacement records one embedding table swapped by RenewEmbeddings.
type Replacement struct {
	Old, New *embedding.Model
	// Undo puts Old back in every slot that now holds New.
	Undo func()
}

// RenewEmbeddings replaces, everywhere in model, each embedding.Model that
// NeedsRenew with a Renewed copy; every slot that pointed to the old table
// (including embedding.Shared wrappers, as in BART) points to the new one.
// Rows are untouched: only the wrapper changes.
func RenewEmbeddings(model nn.Model) ([]Replacement, error) {
	all := map[*embedding.Model][]walk.Node{}
	var order []*embedding.Model
	walk.WalkAll(model, func(n walk.Node) {
		if e, ok := n.Value.(*embedding.Model); ok {
			if _, known := all[e]; !known {
				order = append(order, e)
			}
			all[e] = append(all[e], n)
		}
	})
	var out []Replacement
	for _, e := range order {
		if !NeedsRenew(e) {
			continue
		}
		f, err := Renewed(e)
		if err != nil {
			return out, err
		}
		var done []walk.Node
		for _, n := range all[e] {
			if n.Set(f) {
				done = append(done, n)
			}
		}
		if len(done) == 0 {
			return out, fmt.Errorf("spagofix: embedding table at %s cannot be replaced (no settable field)", all[e][0].Path)
		}
		old := e
		out = append(out, Replacement{Old: old, New: f, Undo: func() {
			for _, n := range done {
				n.Set(old)
			}
		}})
	}
	return out, nil
}
