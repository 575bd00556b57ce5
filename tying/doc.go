// Package tying finds every table in a model that holds the same token rows
// as an embedding table, and keeps those copies in step with trained rows.
//
// Two kinds of tie exist in cybertron models:
//
//   - Shared pointers. BART's encoder and decoder reach one *embedding.Model
//     through embedding.Shared wrappers: training that table once trains it
//     for both. Detect lists every path that holds the pointer (Group.Aliases).
//   - Value copies. cybertron's converters copy the embedding table into
//     BART's Projection (lm_head) and BERT's MLM decoder: separate memory
//     that happens to hold equal values. Detect compares them row by row
//     (tolerance: |w−e| ≤ Tolerance·max(1,|e|) per element) and reports
//     each projection as a Copy, or as Untied with the reason. A projection
//     that differs is left alone.
//
// Copies follow trained rows in two ways: Logits is the differentiable
// training-time op that computes a copy's output logits with the trainable
// rows in place of the copied ones (so gradients reach the rows without a
// vocab × dim weight gradient), and Group.WriteRow writes a row into every
// copy (for merges, and for inference through cybertron's own code paths).
// Projection biases are kept: a tied logit is row·h + b[id].
package tying
