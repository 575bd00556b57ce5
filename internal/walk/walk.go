// Package walk visits every node of a spago model tree by reflection, with
// a dotted path for each node and a way to replace it in its parent.
//
// spago's own traversal (nn.Apply, nn.ForEachParam) hides embedding rows
// that have no gradient and gives no paths; the plugin needs both: paths for
// TargetModules matching and every row for freezing.
package walk

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/nlpodyssey/spago/nn"
)

// Node is one value found while walking a model.
type Node struct {
	// Path is the dotted Go path from the root, e.g. "Bert.Embeddings.Tokens"
	// or "Layers.3" for slice elements.
	Path string
	// Value is the node itself (a pointer, an interface value or a struct).
	Value any
	// Settable reports whether Set can replace the node in its parent.
	Settable bool

	slot reflect.Value
}

// Set replaces the node in its parent field or slice slot. It reports false
// when the slot cannot be set or v does not fit its type.
func (n Node) Set(v any) bool {
	if !n.Settable {
		return false
	}
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || !rv.Type().AssignableTo(n.slot.Type()) {
		return false
	}
	n.slot.Set(rv)
	return true
}

var (
	moduleType = reflect.TypeOf(nn.Module{})
	paramType  = reflect.TypeOf(&nn.Param{})
)

// Walk calls visit for every pointer, interface and struct node reachable
// from root through exported fields and slice elements, depth first in field
// order. A pointer is visited once, at the first path that reaches it. visit
// returns false to skip the node's children. Params (*nn.Param) are visited
// but not descended into.
func Walk(root any, visit func(Node) bool) {
	w := walker{seen: map[uintptr]bool{}, visit: visit}
	w.start(root)
}

// WalkAll is like Walk but also reports every later slot that holds an
// already visited pointer (without descending into it again), so a caller
// can find all the places that share one object, e.g. BART's table and its
// two embedding.Shared wrappers.
func WalkAll(root any, visit func(Node)) {
	w := walker{seen: map[uintptr]bool{}, all: true, visit: func(n Node) bool { visit(n); return true }}
	w.start(root)
}

func (w *walker) start(root any) {
	rv := reflect.ValueOf(root)
	if !rv.IsValid() {
		return
	}
	w.value(rv, reflect.Value{}, "")
}

type walker struct {
	seen  map[uintptr]bool
	all   bool
	visit func(Node) bool
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (w *walker) value(v, slot reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		// The interface slot is the settable place; describe the dynamic value.
		w.value(v.Elem(), slot, path)
	case reflect.Ptr:
		if v.IsNil() {
			return
		}
		addr := v.Pointer()
		if w.seen[addr] {
			if w.all {
				w.emit(v, slot, path)
			}
			return
		}
		w.seen[addr] = true
		if !w.emit(v, slot, path) || v.Type() == paramType {
			return
		}
		if v.Elem().Kind() == reflect.Struct {
			w.fields(v.Elem(), path)
		}
	case reflect.Struct:
		if v.Type() == moduleType {
			return
		}
		if !w.emit(v, slot, path) {
			return
		}
		w.fields(v, path)
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			el := v.Index(i)
			w.value(el, settable(el), join(path, strconv.Itoa(i)))
		}
	}
}

func (w *walker) emit(v, slot reflect.Value, path string) bool {
	if path == "" {
		return w.visit(Node{Path: path, Value: v.Interface()})
	}
	return w.visit(Node{Path: path, Value: v.Interface(), Settable: slot.IsValid() && slot.CanSet(), slot: slot})
}

func (w *walker) fields(v reflect.Value, path string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Type == moduleType {
			continue
		}
		fv := v.Field(i)
		w.value(fv, settable(fv), join(path, f.Name))
	}
}

func settable(v reflect.Value) reflect.Value {
	if v.CanSet() {
		return v
	}
	return reflect.Value{}
}

// GoPath writes a Node path's slice indices Go style: "Layers.3" →
// "Layers[3]", for messages a Go user reads.
func GoPath(p string) string {
	parts := strings.Split(p, ".")
	var b strings.Builder
	for i, s := range parts {
		if s != "" && strings.Trim(s, "0123456789") == "" {
			b.WriteString("[" + s + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}
