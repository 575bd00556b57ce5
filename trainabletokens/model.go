package trainabletokens

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/spagofix"
	"github.com/gopeft/gopeft/registry"
	"github.com/gopeft/gopeft/tying"
)

// DefaultAdapterName is the name New uses when given "" (PEFT's "default").
const DefaultAdapterName = "default"

var (
	// ErrUnknownAdapter is returned for an adapter name that was never added.
	ErrUnknownAdapter = errors.New("trainabletokens: unknown adapter")
	// ErrOverlap is returned when adapters that would be active or merged
	// together train the same token id of the same table.
	ErrOverlap = errors.New("trainabletokens: overlapping token indices")
	// ErrMerged is returned when an operation needs an unmerged adapter.
	ErrMerged = errors.New("trainabletokens: adapter is merged")
	// ErrUnloaded is returned by every method after Unload or MergeAndUnload.
	ErrUnloaded = errors.New("trainabletokens: model was unloaded")
	// ErrNotFinite is returned by a safe merge of rows holding NaN or Inf,
	// and by Step for a NaN or Inf gradient or update.
	ErrNotFinite = errors.New("trainabletokens: adapter rows are not finite")
	// ErrAlreadyInjected is returned by New and Load for a model that
	// already carries an adapter.
	ErrAlreadyInjected = errors.New("trainabletokens: model already carries an adapter")
)

// Model is a base model with Trainable Tokens adapters injected.
//
// Injection swaps pointers, nothing else: each chosen row of a table
// (embedding.Model.Weights[id], its own *nn.Param in spago) is replaced by
// the adapter's trainable row while the adapter is active, and the
// original param is kept aside untouched. Every other parameter of the model
// is frozen. Tied value copies of the table (output projections) carry the
// active rows too, with their original rows kept for exact restoration.
// The model therefore never contains a plugin type: nn.Dump and cybertron's
// own inference code work on it as they are.
//
// Model is a spago model (it embeds nn.Module) whose parameters, as spago's
// own traversal (nn.ForEachParam, nn.Parameters) sees them, are exactly the
// rows that train now: those of the active, unmerged adapters. So spago's
// optimizers can be pointed at it; see Step for the synchronous update
// spago's Optimizer.Optimize does not give.
//
// All methods are safe for concurrent use; the locking rule is in lock.go:
// adapter changes wait for running Do calls, read-only methods never do,
// and an adapter change called inside Do is an error, not a deadlock.
type Model struct {
	nn.Module

	run   sync.RWMutex
	mu    sync.RWMutex
	doers map[uint64]int // goroutines inside Do

	base    nn.Model
	layout  *registry.Layout
	groups  []*tying.Group
	groupOf map[*embedding.Model]*tying.Group

	adapters map[string]*adapter
	names    []string // insertion order
	active   []string
	merged   []string // merge order
	disabled bool

	pristine map[*embedding.Model]map[int]*pristineRow
	flags    []paramFlag
	renewed  []spagofix.Replacement
	unloaded bool
}

type adapter struct {
	name    string
	cfg     Config
	targets []*target
}

// target is one adapter's rows in one table; all tied copies of the table
// follow them.
type target struct {
	group *tying.Group
	ids   []int
	rows  []*nn.Param
}

// pristineRow is a table row as it was before any adapter touched it.
type pristineRow struct {
	param  *nn.Param    // the table's own param for the row
	value  mat.Matrix   // a bit copy of its value
	copies []mat.Matrix // the row in every tied copy, in Group.Copies order
}

type paramFlag struct {
	p            *nn.Param
	requiresGrad bool
}

// New injects a Trainable Tokens adapter named name ("" means "default")
// into base and makes it active. Nothing in base changes when New fails.
func New(base nn.Model, cfg Config, name string) (*Model, error) {
	if name == "" {
		name = DefaultAdapterName
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	layout, err := registry.Describe(base)
	if err != nil {
		return nil, err
	}
	tables, err := checkTargets(layout, cfg)
	if err != nil {
		return nil, err
	}
	return inject(base, layout, name, cfg, tables)
}

// inject builds the Model around base from its layout and a validated cfg
// whose targets (tables) were matched and checked on that layout, by New or
// by Load: nothing is described, matched or validated again.
func inject(base nn.Model, layout *registry.Layout, name string, cfg Config, tables []*registry.Table) (*Model, error) {
	if err := checkNotInjected(layout); err != nil {
		return nil, err
	}
	// Everything the user asked for is valid: from here on base changes.
	renewed, err := spagofix.RenewEmbeddings(base)
	if err != nil {
		undo(renewed)
		return nil, err
	}
	m := &Model{
		doers:    map[uint64]int{},
		base:     base,
		adapters: map[string]*adapter{},
		groupOf:  map[*embedding.Model]*tying.Group{},
		pristine: map[*embedding.Model]map[int]*pristineRow{},
		renewed:  renewed,
	}
	if err := m.describe(layout); err != nil {
		undo(renewed)
		return nil, err
	}
	m.freeze()
	a, err := m.buildAdapter(name, cfg, tables)
	if err != nil {
		m.restoreFlags()
		undo(renewed)
		return nil, err
	}
	m.adapters[name] = a
	m.names = append(m.names, name)
	m.active = []string{name}
	if err := m.apply(); err != nil {
		return nil, err
	}
	for _, g := range m.groups {
		registry.MarkInjected(g.Table.Embedding, PeftType)
	}
	return m, nil
}

// checkNotInjected refuses a model that carries an adapter already: a
// second injection would take the first one's rows for the base rows, and
// unloading both would leave trained rows in the "restored" model.
func checkNotInjected(l *registry.Layout) error {
	if method, t := l.InjectedBy(); t != nil {
		return fmt.Errorf("%w: %s of %s has a %s adapter injected; add more adapters to that adapter model (AddAdapter, LoadAdapter), or Unload it first (re-running a notebook cell? load the base model again in the same cell)",
			ErrAlreadyInjected, t.HFPath, l.Architecture, method)
	}
	return nil
}

func undo(rs []spagofix.Replacement) {
	for i := len(rs) - 1; i >= 0; i-- {
		rs[i].Undo()
	}
}

// describe adopts l, pointing its tables at the embedding tables
// RenewEmbeddings put in their place, and finds the tying groups.
func (m *Model) describe(l *registry.Layout) error {
	for _, r := range m.renewed {
		for _, t := range l.Tables {
			if t.Embedding == r.Old {
				t.Embedding = r.New
			}
		}
	}
	gs, err := tying.Detect(l)
	if err != nil {
		return err
	}
	m.layout, m.groups = l, gs
	for _, g := range gs {
		m.groupOf[g.Table.Embedding] = g
	}
	return nil
}

// checkTargets resolves the config's targets on a layout and checks the
// indices against each table's size.
func checkTargets(l *registry.Layout, cfg Config) ([]*registry.Table, error) {
	tables, err := l.Match(cfg.targets())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := checkHeads(l, cfg); err != nil {
		return nil, err
	}
	return tables, checkTables(tables, cfg)
}

// checkHeads refuses targets naming an output head that is not a copy of
// its table (an untied cls.predictions.decoder or lm_head): PEFT would
// train that Linear's own rows, and this package trains tables only, so
// training the input table in its place would silently be something else.
// Whether a head is a copy is tying's rule.
func checkHeads(l *registry.Layout, cfg Config) error {
	outs, _ := l.MatchedOutputs(cfg.targets())
	for _, o := range outs {
		if o.Of == nil {
			continue // Match refused it already
		}
		tied, err := tying.IsCopy(o.Of.Embedding, o.Linear)
		if err != nil {
			return fmt.Errorf("%w: target module %s: %w", ErrInvalidConfig, o.HFPath, err)
		}
		if !tied {
			return fmt.Errorf("%w: target module %s is an output head whose weights are not a copy of %s (the model is untied): PEFT would train that head's own rows, which gopeft does not do; target the embedding table %s instead, or nothing",
				ErrInvalidConfig, o.HFPath, o.Of.HFPath, o.Of.HFPath)
		}
	}
	return nil
}

// checkTables checks the indices against each matched table's size, and
// the tables' rows.
func checkTables(tables []*registry.Table, cfg Config) error {
	for _, t := range tables {
		if err := cfg.checkRange(t.HFPath, len(t.Embedding.Weights)); err != nil {
			return err
		}
		if t.Embedding.Dim <= 0 {
			return fmt.Errorf("%w: table %s has dimension %d", ErrInvalidConfig, t.HFPath, t.Embedding.Dim)
		}
		for _, id := range cfg.TokenIndices {
			if rows.DType(t.Embedding.Weights[id].Value().(mat.Matrix)) == "" {
				return fmt.Errorf("%w: row %d of %s is a %T, expected a float32 or float64 dense matrix",
					ErrInvalidConfig, id, t.HFPath, t.Embedding.Weights[id].Value())
			}
		}
	}
	return nil
}
