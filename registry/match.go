package registry

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrTargetNotFound is returned when a target matches no table.
var ErrTargetNotFound = errors.New("target module not found")

// Targets says which modules an adapter wraps, as PEFT's target_modules
// does: either a list of names, each matching a module name exactly or as a
// dotted suffix ("word_embeddings" matches "bert.embeddings.word_embeddings"),
// or one regular expression that must match a whole module name. Both empty
// means the input embedding.
type Targets struct {
	Names []string
	Regex string
}

// Match returns the tables the targets select, in layout order. A name
// that selects an output projection (for example "lm_head") selects the
// table that projection belongs to, so PEFT configs listing both the
// embedding and the tied head port unchanged. Every name must match
// something; an unmatched name is an error listing the names that exist.
func (l *Layout) Match(t Targets) ([]*Table, error) {
	if len(t.Names) > 0 && t.Regex != "" {
		return nil, fmt.Errorf("target modules: give a list of names or one regular expression, not both (names %q, regex %q)", t.Names, t.Regex)
	}
	if len(t.Names) == 0 && t.Regex == "" {
		in := l.Input()
		if in == nil {
			return nil, fmt.Errorf("%w: %s has no input embedding and no target modules were given; embedding modules: %s",
				ErrTargetNotFound, l.Architecture, strings.Join(l.Names(), ", "))
		}
		return []*Table{in}, nil
	}
	selected := map[*Table]bool{}
	if t.Regex != "" {
		re, err := regexp.Compile("^(?:" + t.Regex + ")$")
		if err != nil {
			return nil, fmt.Errorf("target modules: invalid regular expression %q: %v", t.Regex, err)
		}
		found := false
		for _, tab := range l.Tables {
			for _, n := range tab.Names {
				if re.MatchString(n) {
					selected[tab], found = true, true
				}
			}
		}
		for _, o := range l.Outputs {
			for _, n := range o.Names {
				if re.MatchString(n) && o.Of != nil {
					selected[o.Of], found = true, true
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: regular expression %q matches no embedding module of %s; embedding modules: %s",
				ErrTargetNotFound, t.Regex, l.Architecture, strings.Join(l.Names(), ", "))
		}
	}
	for _, name := range t.Names {
		found := false
		for _, tab := range l.Tables {
			if matchesAny(tab.Names, name) {
				selected[tab], found = true, true
			}
		}
		for _, o := range l.Outputs {
			if matchesAny(o.Names, name) {
				if o.Of == nil {
					return nil, fmt.Errorf("target module %q is the output projection %s, which belongs to no embedding table; only embedding tables can be targeted", name, o.HFPath)
				}
				selected[o.Of], found = true, true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %q matches no embedding module of %s; embedding modules: %s",
				ErrTargetNotFound, name, l.Architecture, strings.Join(l.Names(), ", "))
		}
	}
	var out []*Table
	for _, tab := range l.Tables {
		if selected[tab] {
			out = append(out, tab)
		}
	}
	return out, nil
}

func matchesAny(names []string, target string) bool {
	for _, n := range names {
		if n == target || strings.HasSuffix(n, "."+target) {
			return true
		}
	}
	return false
}

// MatchedOutputs returns the output heads the targets name (by a name of
// the head, or the regular expression matching one), and for each whether
// that is the only way its table is selected (no target names the table
// itself). Match maps such a head to its table; the caller decides whether
// the head really is a copy of it (package tying) and which file keys to
// write.
func (l *Layout) MatchedOutputs(t Targets) (outs []*Output, only []bool) {
	var re *regexp.Regexp
	if t.Regex != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + t.Regex + ")$"); err != nil {
			return nil, nil
		}
	}
	matches := func(names []string) bool {
		for _, n := range names {
			if re != nil && re.MatchString(n) {
				return true
			}
		}
		for _, name := range t.Names {
			if matchesAny(names, name) {
				return true
			}
		}
		return false
	}
	for _, o := range l.Outputs {
		if !matches(o.Names) {
			continue
		}
		outs = append(outs, o)
		only = append(only, o.Of == nil || !matches(o.Of.Names))
	}
	return outs, only
}
