package trainabletokens

import (
	"errors"
	"fmt"
	"sort"

	"github.com/gopeft/gopeft/registry"
)

// PeftType is the peft_type of this method in adapter_config.json.
const PeftType = "TRAINABLE_TOKENS"

// ErrInvalidConfig wraps every configuration error.
var ErrInvalidConfig = errors.New("trainabletokens: invalid config")

// Init says how an adapter's rows start.
type Init int

const (
	// InitFromBase starts each row as an exact copy of the row the model
	// uses now, so an untrained adapter changes nothing (PEFT's
	// init_weights=true, the default).
	InitFromBase Init = iota
	// InitRandom starts each row from a standard normal N(0, 1) per element,
	// seeded by Config.Seed — PEFT's init_weights=false (torch.randn). Note
	// that N(0, 1) is far larger than typical embedding rows (std ≈ 0.02–0.05).
	InitRandom
)

// Config is what the user asks for: which token rows to train, in which
// tables, and how they start. The zero value of InitWeights is InitFromBase,
// as PEFT's default init_weights=true.
type Config struct {
	// TokenIndices are the token ids whose rows train. Required; no
	// duplicates; each in [0, vocabulary size of every target).
	TokenIndices []int
	// TargetModules lists module names, each matching a table's module name
	// exactly or as a dotted suffix (PEFT's list form). Hugging Face names
	// work: "word_embeddings", "shared", "embed_tokens", "lm_head" (the table
	// it is tied to), "model.shared". nil (with TargetRegex empty) means the
	// model's input embedding.
	TargetModules []string
	// TargetRegex is one regular expression that must match a whole module
	// name (PEFT's single-string form). Exclusive with TargetModules.
	TargetRegex string
	// InitWeights: InitFromBase (default) or InitRandom.
	InitWeights Init
	// Seed seeds InitRandom.
	Seed uint64
}

// targets converts the config's target fields for registry.Match.
func (c Config) targets() registry.Targets {
	return registry.Targets{Names: c.TargetModules, Regex: c.TargetRegex}
}

// Validate checks the parts of the config that do not depend on a model:
// a non-empty index list without negatives or duplicates, a known init.
// Range checks against a vocabulary happen when the config meets a model.
func (c Config) Validate() error {
	if len(c.TokenIndices) == 0 {
		return fmt.Errorf("%w: TokenIndices is empty; list at least one token id to train", ErrInvalidConfig)
	}
	seen := make(map[int]int, len(c.TokenIndices))
	for i, id := range c.TokenIndices {
		if id < 0 {
			return fmt.Errorf("%w: TokenIndices[%d] = %d is negative; token ids are in [0, vocabulary size)", ErrInvalidConfig, i, id)
		}
		if j, dup := seen[id]; dup {
			return fmt.Errorf("%w: token id %d appears twice in TokenIndices (positions %d and %d); each id may be listed once", ErrInvalidConfig, id, j, i)
		}
		seen[id] = i
	}
	if c.InitWeights != InitFromBase && c.InitWeights != InitRandom {
		return fmt.Errorf("%w: InitWeights = %d; expected InitFromBase (0) or InitRandom (1)", ErrInvalidConfig, c.InitWeights)
	}
	if len(c.TargetModules) > 0 && c.TargetRegex != "" {
		return fmt.Errorf("%w: set TargetModules (%q) or TargetRegex (%q), not both", ErrInvalidConfig, c.TargetModules, c.TargetRegex)
	}
	return nil
}

// checkRange checks every index against a table's vocabulary size.
func (c Config) checkRange(table string, vocab int) error {
	for i, id := range c.TokenIndices {
		if id >= vocab {
			return fmt.Errorf("%w: TokenIndices[%d] = %d is out of range for %s: allowed [0, %d)", ErrInvalidConfig, i, id, table, vocab)
		}
	}
	return nil
}

// clone returns a deep copy so later edits to the caller's slices cannot
// change an injected adapter.
func (c Config) clone() Config {
	c.TokenIndices = append([]int(nil), c.TokenIndices...)
	if c.TargetModules != nil {
		c.TargetModules = append([]string(nil), c.TargetModules...)
	}
	return c
}

// sortedCopy returns a sorted copy of ids.
func sortedCopy(ids []int) []int {
	out := append([]int(nil), ids...)
	sort.Ints(out)
	return out
}
