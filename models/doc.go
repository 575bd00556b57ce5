// Package models converts, loads and saves cybertron BERT and BART models
// through non-generic functions (float32), so that programs and notebooks
// (gophernotes cannot call generic functions such as nn.LoadFromFile[T] or
// converter.Convert[T]) can get a model in one call.
//
// A model directory is cybertron's layout: config.json, the tokenizer files
// (vocab.txt for BERT; vocab.json and merges.txt for BART) and
// spago_model.bin. A Hugging Face directory (pytorch_model.bin instead of
// spago_model.bin) is converted first with cybertron's own converter.
package models
