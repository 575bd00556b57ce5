package trainabletokens

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/gopeft/gopeft/internal/strictjson"
)

// parseConfig reads adapter_config.json strictly where it matters: the
// peft_type, token_indices (integers), target_modules (null, a string or a
// list of strings) and init_weights (a bool). Other keys (PEFT's
// base_model_name_or_path, peft_version, ...) are ignored, as PEFT ignores
// unknown ones. The result is validated (Config.Validate).
func parseConfig(data []byte, path string) (Config, error) {
	fe := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidAdapterFile, path, fmt.Sprintf(format, args...))
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return Config{}, fe("malformed JSON: %v", err)
	}
	fields, err := strictjson.Fields(data)
	if err != nil {
		return Config{}, fe("%v", err)
	}
	var cfg Config
	raw, ok := fields["peft_type"]
	if !ok {
		return Config{}, fe("missing \"peft_type\"; expected %q", PeftType)
	}
	if pt, err := strictjson.Value(raw); err != nil || pt != PeftType {
		if _, lora := fields["trainable_token_indices"]; lora && pt == "LORA" {
			return Config{}, fe("peft_type is \"LORA\" with trainable_token_indices: a LoRA adapter that also trains token rows "+
				"(keys …token_adapter.trainable_tokens_delta next to lora_A/lora_B); gopeft supports the standalone %q method only, not LoRA", PeftType)
		}
		return Config{}, fe("peft_type is %s; expected %q", strictjson.Short(raw), PeftType)
	}

	raw, ok = fields["token_indices"]
	if !ok {
		return Config{}, fe("missing \"token_indices\"; expected a list of token ids")
	}
	v, err := strictjson.Value(raw)
	if err != nil {
		return Config{}, fe("token_indices: %v", err)
	}
	arr, ok := v.([]any)
	if !ok {
		return Config{}, fe("token_indices is %s; expected a list of token ids", strictjson.Short(raw))
	}
	if len(arr) == 0 {
		return Config{}, fe("token_indices is empty; expected at least one token id")
	}
	seen := map[int]int{}
	for i, e := range arr {
		num, ok := e.(json.Number)
		if !ok {
			return Config{}, fe("token_indices[%d] is %v; expected a non-negative integer", i, e)
		}
		u, err := strictjson.Natural(num.String())
		if err != nil || u > math.MaxInt32 {
			return Config{}, fe("token_indices[%d] = %s; expected a token id in [0, 2^31)", i, num)
		}
		id := int(u)
		if j, dup := seen[id]; dup {
			return Config{}, fe("token id %d appears twice in token_indices (positions %d and %d); each id may be listed once", id, j, i)
		}
		seen[id] = i
		cfg.TokenIndices = append(cfg.TokenIndices, id)
	}

	if raw, ok := fields["target_modules"]; ok {
		v, err := strictjson.Value(raw)
		if err != nil {
			return Config{}, fe("target_modules: %v", err)
		}
		switch tv := v.(type) {
		case nil:
		case string:
			if tv == "" {
				return Config{}, fe("target_modules is an empty string; expected a module name regex, a list of names or null")
			}
			cfg.TargetRegex = tv
		case []any:
			for i, e := range tv {
				s, ok := e.(string)
				if !ok || s == "" {
					return Config{}, fe("target_modules[%d] is %v; expected a non-empty module name", i, e)
				}
				cfg.TargetModules = append(cfg.TargetModules, s)
			}
			if len(cfg.TargetModules) == 0 {
				return Config{}, fe("target_modules is an empty list; expected module names, a regex string or null")
			}
		default:
			return Config{}, fe("target_modules is %s; expected null, a string or a list of strings", strictjson.Short(raw))
		}
	}
	if raw, ok := fields["init_weights"]; ok {
		v, err := strictjson.Value(raw)
		if err != nil {
			return Config{}, fe("init_weights: %v", err)
		}
		switch b := v.(type) {
		case bool:
			if !b {
				cfg.InitWeights = InitRandom
			}
		default:
			return Config{}, fe("init_weights is %s; expected true or false", strictjson.Short(raw))
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fe("%v", err)
	}
	return cfg, nil
}
