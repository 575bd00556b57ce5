package models

// Marian and Pegasus reach cybertron's BART through BART-era config keys
// that their own transformers classes do not have: cybertron builds the
// model from normalize_before, normalize_embedding,
// static_position_embeddings and add_final_layer_norm, with BART's
// defaults when a key is absent. The published Helsinki-NLP and google
// checkpoints carry the keys; a config.json written without them (or with
// other values) would convert into a model that computes a different
// function — a layer norm of zeros on the embeddings, learned positions
// where the family has sinusoidal ones — silently. checkFamilyFlags refuses
// such a config, naming the family and the key.

import (
	"fmt"
	"path/filepath"
)

// familyFlags are the values the family's architecture fixes.
var familyFlags = map[string][]struct {
	key  string
	want bool
	// absentOK: cybertron's default (absent key) is already the family's value.
	absentOK bool
	why      string
}{
	"marian": {
		{"normalize_before", false, true, "Marian layers are post-norm"},
		{"normalize_embedding", false, false, "Marian has no layernorm_embedding"},
		{"static_position_embeddings", true, false, "Marian's positions are sinusoidal"},
		{"add_final_layer_norm", false, true, "Marian has no final layer norms"},
	},
	"pegasus": {
		{"normalize_before", true, false, "Pegasus layers are pre-norm"},
		{"normalize_embedding", false, false, "Pegasus has no layernorm_embedding"},
		{"static_position_embeddings", true, false, "Pegasus' positions are sinusoidal"},
		{"add_final_layer_norm", true, false, "Pegasus ends encoder and decoder with a layer norm"},
	},
}

// checkFamilyFlags checks the BART-era keys of a Marian or Pegasus
// config.json (cfg) against the family's architecture.
func checkFamilyFlags(dir, modelType string, cfg map[string]any) error {
	path := filepath.Join(dir, "config.json")
	for _, f := range familyFlags[modelType] {
		v, present := cfg[f.key]
		if !present || v == nil {
			if f.absentOK {
				continue
			}
			return fmt.Errorf("%w: %s: %s checkpoint without %q: %s, and cybertron v0.2.1 reads this key (absent, it builds BART's default); add \"%s\": %v as the published checkpoints have it",
				ErrBadConfig, path, modelType, f.key, f.why, f.key, f.want)
		}
		b, isBool := v.(bool)
		if !isBool {
			return fmt.Errorf("%w: %s: %q is %v; expected true or false", ErrBadConfig, path, f.key, v)
		}
		if b != f.want {
			return fmt.Errorf("%w: %s: %s checkpoint with %q %v: %s (want %v); cybertron would compute another function",
				ErrBadConfig, path, modelType, f.key, b, f.why, f.want)
		}
	}
	return nil
}
