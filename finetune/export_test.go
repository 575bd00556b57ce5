package finetune

import "github.com/nlpodyssey/cybertron/pkg/models/bart"

// GenerateBARTWithLogits exposes generateBART's per-step logits hook to
// the external tests.
func GenerateBARTWithLogits(m *bart.ModelForConditionalGeneration, inputs []Seq2SeqInput, opts GenerateOptions, onLogits func(seq, step int, logits []float64)) ([][]int, error) {
	return generateBART(m, inputs, opts, onLogits, nil)
}
