package trainabletokens

import (
	"regexp"
	"strings"

	"github.com/gopeft/gopeft/registry"
)

// The module names PEFT's state dict holds an adapter's rows under, so that
// Save writes exactly PEFT's key set (PEFT loads such a file with no
// warning). PEFT (src/peft/tuners/trainable_tokens/model.py, inject_adapter,
// and tuners_utils' target matching) wraps:
//
//   - every module target_modules selects: a string is matched with
//     re.fullmatch against full module names, a list entry matches a module
//     whose name is the entry or ends with "." + entry; no target_modules
//     means the input embedding's name;
//   - then, when the input embedding itself was wrapped and the model ties
//     its weights (tie_word_embeddings), every module tied to it (BERT's
//     cls.predictions.decoder; BART's model.encoder.embed_tokens,
//     model.decoder.embed_tokens and lm_head) as a tied layer sharing the
//     embedding's parameter dict.
//
// Every wrapped module gets its own key in get_peft_model_state_dict. gopeft
// decides tying from the model itself (package tying found the copies).

// hfNames lists the Hugging Face module names (snake_case paths) of a
// table or output.
func hfNames(names []string) []string {
	var out []string
	for _, n := range names {
		if n != "" && n == registry.SnakePath(n) {
			out = append(out, n)
		}
	}
	return out
}

// peftModules returns, for each target of a (in a.targets order), the
// module names PEFT keeps its rows under. A target no PEFT module maps to
// (which gopeft's own matching rules out) gets its table's own name.
func (m *Model) peftModules(a *adapter) [][]string {
	l := m.layout
	match := func(string) bool { return false }
	switch {
	case a.cfg.TargetRegex != "":
		re, err := regexp.Compile("^(?:" + a.cfg.TargetRegex + ")$")
		if err == nil { // validated by New
			match = re.MatchString
		}
	case len(a.cfg.TargetModules) > 0:
		match = func(n string) bool {
			for _, t := range a.cfg.TargetModules {
				if n == t || strings.HasSuffix(n, "."+t) {
					return true
				}
			}
			return false
		}
	default:
		in := a.targets[0].group.Table.HFPath
		match = func(n string) bool { return n == in }
	}
	var wrapped []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			wrapped = append(wrapped, n)
		}
	}
	for _, t := range l.Tables {
		for _, n := range hfNames(t.Names) {
			if match(n) {
				add(n)
			}
		}
	}
	for _, o := range l.Outputs {
		for _, n := range hfNames(o.Names) {
			if match(n) {
				add(n)
			}
		}
	}
	if in := l.Input(); in != nil && seen[in.HFPath] {
		for _, t := range a.targets {
			if t.group.Table == in {
				for _, n := range tiedModules(t) {
					add(n)
				}
			}
		}
	}
	out := make([][]string, len(a.targets))
	for _, n := range wrapped {
		tab, _ := resolveModule(l, n)
		for i, t := range a.targets {
			if t.group.Table == tab {
				out[i] = append(out[i], n)
			}
		}
	}
	for i, t := range a.targets {
		if len(out[i]) == 0 {
			out[i] = []string{t.group.Table.HFPath}
		}
	}
	return out
}

// compactModule picks the one module a compact save writes a target's rows
// under: the table's own name when PEFT wraps it, else the first.
func compactModule(t *target, modules []string) string {
	for _, n := range modules {
		if n == t.group.Table.HFPath {
			return n
		}
	}
	return modules[0]
}
