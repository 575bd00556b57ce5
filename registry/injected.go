package registry

import (
	"runtime"
	"sync"
	"weak"

	"github.com/nlpodyssey/spago/nn/embedding"
)

// Which tables carry an adapter now. A method records its injection here
// (MarkInjected) and clears it when it gives the model back
// (UnmarkInjected), so that a second injection into the same model (a
// re-run notebook cell) and packages that must not change an injected
// model's tables (newtokens) can refuse with a clear error. The keys are
// weak: a table the program dropped is forgotten, never kept alive.
var injected sync.Map // weak.Pointer[embedding.Model] → string (the method)

// MarkInjected records that method's adapter is injected into table.
func MarkInjected(table *embedding.Model, method string) {
	if table == nil {
		return
	}
	key := weak.Make(table)
	if _, loaded := injected.LoadOrStore(key, method); !loaded {
		runtime.AddCleanup(table, func(k weak.Pointer[embedding.Model]) { injected.Delete(k) }, key)
	}
}

// UnmarkInjected forgets an injection recorded by MarkInjected.
func UnmarkInjected(table *embedding.Model) {
	if table != nil {
		injected.Delete(weak.Make(table))
	}
}

// InjectedBy returns the method whose adapter is injected into a table of
// l, and that table; "" and nil when there is none.
func (l *Layout) InjectedBy() (string, *Table) {
	for _, t := range l.Tables {
		if v, ok := injected.Load(weak.Make(t.Embedding)); ok {
			return v.(string), t
		}
	}
	return "", nil
}
