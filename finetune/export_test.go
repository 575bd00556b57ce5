package finetune

// GenerateBARTWithLogits exposes generateBART's per-step logits hook to
// the external tests.
var GenerateBARTWithLogits = generateBART
