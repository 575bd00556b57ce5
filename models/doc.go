// Package models converts, loads and saves cybertron BERT and BART models
// through non-generic functions (float32), so that programs and notebooks
// (gophernotes cannot call generic functions such as nn.LoadFromFile[T] or
// converter.Convert[T]) can get a model in one call.
//
// A model directory is cybertron's layout: config.json, the tokenizer files
// (vocab.txt for BERT; vocab.json and merges.txt for BART) and
// spago_model.bin. A Hugging Face directory (pytorch_model.bin instead of
// spago_model.bin) is converted first with cybertron's own converter.
//
// Families: LoadBERT serves model_type "bert" and "electra", LoadBART
// "bart", "marian" and "pegasus", as cybertron's converter maps them. An
// ELECTRA generator (ElectraForMaskedLM), on which cybertron's converter
// panics, is converted by ConvertELECTRA (electra.go): the encoder by
// cybertron's converter, the generator head from the checkpoint; other
// ELECTRA checkpoints get an error naming ELECTRA. A Marian or Pegasus
// config.json must state the BART-era keys cybertron builds them from with
// the family's values (familyflags.go), else ErrBadConfig names the family
// and the key.
//
// What the package owns: reading config.json before anything is built
// (ErrBadConfig names the missing field or the other family), running
// cybertron's converter without its noise and without touching process
// state (a child process, convert.go), recording which pytorch_model.bin a
// spago_model.bin came from (SourceFile) so that a stale one is rebuilt,
// and the embedded tiny models. It must not know adapters, tables or
// training: those are trainabletokens', registry's and finetune's.
package models
