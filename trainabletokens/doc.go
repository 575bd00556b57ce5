// Package trainabletokens is Hugging Face PEFT's Trainable Tokens method
// for spago and cybertron: fine-tune only a few rows of a model's token
// embedding table and keep everything else frozen.
//
// New injects an adapter: the rows of Config.TokenIndices in each target
// table become trainable *nn.Param rows (TrainableParams) and every other
// parameter is frozen. Tied copies of a table follow its rows: BART's
// encoder and decoder share one table, and BART's lm_head and BERT's MLM
// decoder (value copies in cybertron) carry the active rows — through the
// differentiable Logits op while training, and written into their weights
// for inference and on Merge.
//
// Adapters are named: AddAdapter, SetActive (several at once when their ids
// are disjoint), Delete, Disable/Enable, Merge (optionally safe), Unmerge
// (exact original bits), MergeAndUnload (a plain cybertron model) and
// Unload (the original model, untouched). Report prints what PEFT's
// print_trainable_parameters prints, plus the tying found.
//
// Semantics follow PEFT: adapter rows are absolute replacement rows (not
// deltas), InitFromBase copies the current rows so an untrained adapter is a
// no-op, adapters added later start inactive. Where PEFT is silent this
// package validates: empty, negative, duplicate and out-of-range ids are
// errors before anything changes, overlapping active or merged adapters are
// refused with both names and the shared ids, and adapter changes never
// race with inference run through Do.
//
// The model is never wrapped: injection swaps row pointers inside the
// model's own embedding tables, so cybertron's inference code, nn.Dump and
// the task loaders work on it unchanged, and an active adapter costs
// nothing at inference time.
//
// Model is a spago module: nn.ForEachParam and nn.Parameters over it yield
// exactly the live rows, and Step is the synchronous optimizer step for a
// training loop of your own. Locking: lock.go states the rule in one place
// (adapter changes wait for Do calls; read-only methods never do; changes
// inside Do are ErrInsideDo). Model types, tables and heads come from
// registry, ties from tying; this package must not list model types.
//
// The method: model.go (injection and its checks), rowstate.go (freezing,
// building adapters, apply), adapters.go (names and activation),
// accessors.go (read-only views), merge.go, logits.go, step.go, report.go,
// mixed.go (one adapter per sample in a batch).
//
// Files: Save and Load speak PEFT's adapter-directory format (format.go,
// configjson.go, save.go, load.go, plan.go, baselayers.go). The package
// owns what the files mean;
// it does not know how safetensors is laid out (internal/safetensors), how
// JSON is read strictly (internal/strictjson), or how files are written
// and opened safely (internal/atomicfile, internal/regular).
package trainabletokens
