// Package registry tells the plugin where a model keeps its token tables and
// how adapters are loaded by name, the way database/sql and image do it: a
// name-keyed registry filled from init functions, used through one small
// function.
//
// Finding tables. Describe returns a model's Layout: every embedding table
// with the module names that resolve to it (its Go field path, its Hugging
// Face module path and aliases, so PEFT configs port unchanged), which one is
// the input embedding, and the output projections that may hold a copy of a
// table. It looks in three places, in order:
//
//  1. a model implementing InputEmbedder (the Go twin of PEFT's
//     get_input_embeddings) names its input table itself;
//  2. an Accessor registered with RegisterModel for the model's type — this
//     package registers cybertron's BERT and BART models;
//  3. otherwise every *embedding.Model in the tree is found by walking the
//     exported fields, and a field named like "embed_tokens" is the input.
//
// Matching. Match resolves PEFT-style target_modules against a Layout:
// exact names, dotted suffixes ("word_embeddings", "shared", "embed_tokens")
// or one regular expression that must match a whole name.
//
// Methods. RegisterMethod maps a PEFT peft_type (for example
// "TRAINABLE_TOKENS") to a Loader, and LoadAdapter dispatches an adapter
// directory to it; an unknown type is an error that lists the known ones.
//
// What the package owns, and only it: the list of cybertron's model types
// (cybertron.go: one table entry per type, with its family, Hugging Face
// class, base-model prefixes, output heads and vocabulary-sized buffers;
// families add entries, not code), and the record of which tables carry an
// injected adapter (MarkInjected), so that a second injection and
// newtokens can refuse such a model. It must not know what a method does
// with the tables (trainabletokens), whether a head is a copy (tying), or
// how files are read.
package registry
