package trainabletokens

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/spagofix"
	"github.com/gopeft/gopeft/internal/walk"
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

// Base returns the model the adapters are injected into: the model to run
// inference on, for a caller that got this Model from registry.LoadAdapter
// (registry.Adapter has it for that reason).
func (m *Model) Base() nn.Model { return m.base }

// Adapters returns the adapter names in the order they were added.
func (m *Model) Adapters() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]string(nil), m.names...)
}

// Active returns the active adapter names.
func (m *Model) Active() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]string(nil), m.active...)
}

// Merged returns the merged adapter names in merge order.
func (m *Model) Merged() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]string(nil), m.merged...)
}

// Disabled reports whether the adapters are disabled.
func (m *Model) Disabled() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.disabled
}

// Config returns a copy of the named adapter's config.
func (m *Model) Config(name string) (Config, error) {
	if err := m.lockRead(); err != nil {
		return Config{}, err
	}
	defer m.mu.RUnlock()
	if err := m.lookup([]string{name}); err != nil {
		return Config{}, err
	}
	return m.adapters[name].cfg.clone(), nil
}

// TrainableParams returns the rows that train now: those of the active,
// unmerged adapters while enabled. Each row appears once, even when it
// drives several tied tables. These are the only parameters of the model
// with requiresGrad set.
func (m *Model) TrainableParams() []*nn.Param {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*nn.Param
	for _, name := range m.liveNames() {
		for _, t := range m.adapters[name].targets {
			out = append(out, t.rows...)
		}
	}
	return out
}

// Rows returns the named adapter's rows in the table with the given module
// name (any name Describe knows for it, "" for the first target), in
// TokenIndices order. They are the live params: do not modify them while
// other goroutines use the model.
func (m *Model) Rows(name, table string) ([]*nn.Param, error) {
	if err := m.lockRead(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	if err := m.lookup([]string{name}); err != nil {
		return nil, err
	}
	a := m.adapters[name]
	for _, t := range a.targets {
		if table == "" || contains(t.group.Table.Names, table) {
			return append([]*nn.Param(nil), t.rows...), nil
		}
	}
	return nil, fmt.Errorf("trainabletokens: adapter %q has no rows in table %q", name, table)
}

// TraverseParams calls fn for every row that trains now (TrainableParams):
// spago's nn.ForEachParam and nn.Parameters use it, so they yield no frozen
// base parameter and no row of an inactive or merged adapter.
func (m *Model) TraverseParams(fn func(param *nn.Param)) {
	for _, p := range m.TrainableParams() {
		fn(p)
	}
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
