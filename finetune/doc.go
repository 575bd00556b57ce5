// Package finetune fine-tunes cybertron models in Go: training-time forward
// passes that backpropagate through spago, language-model and classification
// losses, and a synchronous training loop.
//
// Why a package of its own: cybertron v0.2.1 is written for inference, and
// three spago v1.1.0 defects stop training through it:
//
//   - spago's multi-head attention builds a self-referencing graph (it reuses
//     one buffer as the operand list of several ag.Concat nodes), so
//     ag.Backward deadlocks. This package runs its own attention over the
//     model's own parameters (each head's Query/Key/Value linears and the
//     OutputMerge linear) and its own BERT and BART layer loops. The model is
//     never modified, so nothing from this package ends up in a saved model.
//   - Embedding tables decoded by gob have a nil gradient index and crash the
//     process on their first row gradient. Losses refuse such tables when one
//     of their rows requires a gradient; PrepareLoaded repairs them.
//   - optimizers.Optimizer.Optimize returns before its updates finish. The
//     Trainer calls the optimizer strategy itself, one parameter at a time.
//
// Forward passes ([EncodeBERT], [EncodeBART], [DecodeBART]) reproduce
// cybertron's inference outputs (Bert.EncodeTokens, Encoder.Encode,
// Decoder.Decode with curLen 1) to float32 rounding; the tests check 1e-5.
//
// Fused forward: when every linear and layer-norm weight a loss uses is
// frozen (trainable tokens, or training embedding tables only), the
// masked-LM and conditional-generation losses (and MaskedLMLogits,
// ConditionalGenerationLogits) run the whole batch as one autograd op
// (fused.go): the batch is one matrix, linear layers are blocked matrix
// products (internal/gemm: AVX-512 or AVX2/FMA kernels on amd64, chosen at
// run time; frozen weights packed once per Task), attention runs per sequence
// and head with a direct softmax backward, frozen weights get no gradient,
// and only the embedding rows that require gradients receive one. It
// computes the same values as the graph path (tests: 1e-5 against
// cybertron, finite differences, determinism) about 20× faster at BERT
// hidden 256. Models with a trainable weight, or a module the fused path
// does not know, use the per-token graph; passing [ForwardGraph] to a loss,
// logits function or task forces the graph for that call.
//
// Fast inference (infer.go): [PredictMaskedLM], [ClassifySequences] and
// [GenerateBART] (greedy, with a key/value cache) run whole batches of any
// cybertron BERT/BART model (merged, plain, or with an active adapter)
// through the same fused forward without a graph, equal to cybertron's
// Predict, Classify and step-by-step decoding within 1e-5; each sequence
// may use its own token rows (SequenceInput.Rows/OutputRows).
//
// Task heads (heads.go): BERT sequence classification, token
// classification and extractive question answering, and BART sequence
// classification — the heads cybertron ships — run the encoder (and
// decoder) through the fused op when its weights are frozen and the head as
// ordinary ops on the hidden states the head reads, so the head may be
// frozen or trainable ([HeadParams]: PEFT's modules_to_save).
//
// Output logits are pluggable through [LogitsFunc], so an adapter can route
// the logits of some token ids through its own trainable rows (tied output
// projections); nil means the model's own projection. Logits are computed
// only at positions that carry a loss, all of a batch at once.
//
// Training is reproducible: with the same seed, model and data, two runs
// give bit-identical losses and parameters. spago's backward adds the
// gradients of a tensor's consumers in goroutine order, which is only
// order-independent for up to two consumers, so the graphs built here never
// give a tensor that requires gradients more than two (see graph.go; a
// custom LogitsFunc should also use h at most twice).
//
// Every input is validated before any graph node is built: an error inside a
// spago op kills the process (log.Fatal, or a panic in a backward goroutine),
// while these functions return errors wrapping [ErrInvalidInput] that name the
// bad value and the allowed range.
//
// The [Trainer] API is not generic (notebook kernels such as gophernotes
// cannot call generic functions); the dtype comes from the parameters.
package finetune
