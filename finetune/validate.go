package finetune

import (
	"errors"
	"fmt"

	"github.com/nlpodyssey/spago/nn/embedding"

	"github.com/gopeft/gopeft/internal/spagofix"
)

var (
	// ErrInvalidInput is wrapped by every error about an example or a
	// sequence: unknown token, id out of range, empty or too long sequence,
	// no position carrying a loss, label out of range.
	ErrInvalidInput = errors.New("finetune: invalid input")
	// ErrUnsupportedModel is wrapped by errors about the model itself: a
	// missing part, a block type this package does not know, or an embedding
	// table that cannot receive gradients.
	ErrUnsupportedModel = errors.New("finetune: unsupported model")
	// ErrNotFinite is wrapped by a training step that meets a NaN or ±Inf
	// loss, gradient or updated value; the error names the step and the
	// param (a row of a named table for embedding rows).
	ErrNotFinite = errors.New("finetune: not finite")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidInput}, args...)...)
}

func unsupportedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupportedModel}, args...)...)
}

// inExample prefixes an error with the index of the example it is about.
func inExample(i int, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("example %d: %w", i, err)
}

// checkIDs checks that every id indexes a table of size rows.
func checkIDs(what string, ids []int, rows int) error {
	for i, id := range ids {
		if id < 0 || id >= rows {
			return invalidf("%s token %d: id %d out of range [0, %d)", what, i, id, rows)
		}
	}
	return nil
}

// checkLength checks that a sequence is not empty and fits maxLen positions.
func checkLength(what string, n, maxLen int) error {
	if n == 0 {
		return invalidf("%s is empty", what)
	}
	if n > maxLen {
		return invalidf("%s has %d tokens; the model's position table allows at most %d", what, n, maxLen)
	}
	return nil
}

// checkTable refuses an embedding table that would crash the process in
// backward: one decoded by gob (nil gradient index) with a row that
// requires a gradient. The reflection check is cheap; rows are scanned only
// for such tables.
func checkTable(rd reading, name string, e *embedding.Model) error {
	if e == nil {
		return unsupportedf("%s is nil", name)
	}
	if len(e.Weights) == 0 {
		return unsupportedf("%s has no rows", name)
	}
	if rd == inference || !spagofix.NeedsRenew(e) { // inference computes no gradient
		return nil
	}
	for i, w := range e.Weights {
		if w != nil && w.RequiresGrad() {
			return unsupportedf("%s was decoded by gob and lost its gradient index, but row %d requires a gradient "+
				"(the first row gradient would crash the process): call PrepareLoaded on the model after loading it", name, i)
		}
	}
	return nil
}
