package models

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gopeft/gopeft/internal/regular"
)

// ErrBadConfig wraps every error about a model directory's config.json:
// a missing or non-positive size, a missing activation, a directory of the
// other family.
var ErrBadConfig = errors.New("models: unusable config.json")

// familyOf maps config.json's model_type to the family that loads it.
var familyOf = map[string]string{
	"bert": "BERT", "electra": "BERT",
	"bart": "BART", "marian": "BART", "pegasus": "BART",
}

// required lists, per family, the config.json fields a model cannot be
// built without: positive integers, then non-empty strings.
var required = map[string]struct{ ints, strs []string }{
	"BERT": {
		ints: []string{"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings", "type_vocab_size"},
		strs: []string{"hidden_act"},
	},
	"BART": {
		ints: []string{"vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "max_position_embeddings"},
		strs: []string{"activation_function"},
	},
}

// loaders names the function that loads each family.
var loaders = map[string]string{"BERT": "LoadBERT", "BART": "LoadBART"}

// checkConfig reads dir/config.json and checks, before anything is
// converted, loaded or built, that it describes a model of family ("BERT"
// or "BART") with every size it needs: errors name the field or the
// family, never a panic inside the converter and never a model with zero
// layers.
func checkConfig(dir, family string) error {
	if err := regular.Check(filepath.Join(dir, "config.json")); err != nil {
		return fmt.Errorf("models: %s is not a model directory: %w", dir, err)
	}
	cfg, err := modelConfig(dir)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "config.json")
	mt, ok := cfg["model_type"].(string)
	if !ok || mt == "" {
		return fmt.Errorf("%w: %s has no \"model_type\"; expected one of %s", ErrBadConfig, path, knownTypes())
	}
	got := familyOf[mt]
	if got == "" {
		return fmt.Errorf("%w: %s: model_type %q is not supported; expected one of %s", ErrBadConfig, path, mt, knownTypes())
	}
	if got != family {
		return fmt.Errorf("%w: %s is a %s model (model_type %q), not %s; load it with %s", ErrBadConfig, dir, got, mt, family, loaders[got])
	}
	if err := checkFamilyFlags(dir, mt, cfg); err != nil { // Marian, Pegasus (familyflags.go)
		return err
	}
	req := required[family]
	vals := map[string]int{}
	for _, k := range req.ints {
		v, present := cfg[k]
		if !present || v == nil {
			return fmt.Errorf("%w: %s: %q is missing; a %s model needs it", ErrBadConfig, path, k, family)
		}
		f, isNum := v.(float64)
		if !isNum || f != math.Trunc(f) || f < 1 || f > math.MaxInt32 {
			return fmt.Errorf("%w: %s: %q is %v; expected a positive integer", ErrBadConfig, path, k, v)
		}
		vals[k] = int(f)
	}
	for _, k := range req.strs {
		s, isStr := cfg[k].(string)
		if !isStr || strings.TrimSpace(s) == "" {
			return fmt.Errorf("%w: %s: %q is %v; expected an activation name such as \"gelu\"", ErrBadConfig, path, k, cfg[k])
		}
	}
	for _, pair := range [][2]string{{"hidden_size", "num_attention_heads"}, {"d_model", "encoder_attention_heads"}, {"d_model", "decoder_attention_heads"}} {
		d, h := vals[pair[0]], vals[pair[1]]
		if d > 0 && h > 0 && d%h != 0 {
			return fmt.Errorf("%w: %s: %s = %d is not a multiple of %s = %d", ErrBadConfig, path, pair[0], d, pair[1], h)
		}
	}
	return nil
}

func knownTypes() string {
	var ts []string
	for t := range familyOf {
		ts = append(ts, fmt.Sprintf("%q", t))
	}
	sort.Strings(ts)
	return strings.Join(ts, ", ")
}
