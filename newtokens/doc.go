// Package newtokens adds new tokens to a cybertron model and its tokenizer:
// the first step of "train the tokens I just added" with trainable tokens.
//
// # Adding tokens
//
// AddTokens takes a BERT or BART model (see SupportedModels), its Tokenizer
// and the new strings. It adds the strings to the vocabulary, appends one
// row per token to the input embedding table, grows every copy of that
// table (BERT's MLM decoder Layers[3], BART's Projection, PadMask and
// EosMask), and updates each Config.VocabSize. It returns the new ids,
// consecutive from the old table size, ready for
// trainabletokens.Config.TokenIndices:
//
//	tok, _ := newtokens.LoadTokenizer(dir)
//	res, err := newtokens.AddTokens(model, tok, []string{"zorblax"}, nil)
//	// res.IDs == []int{1038}
//	err = newtokens.WriteVocabFiles(dir, tok)              // vocab + added_tokens.json
//	err = models.Save(model, dir)                          // the grown model, atomically
//
// The function checks everything first (model type and shapes, tokenizer,
// every requested token) and changes nothing when it returns an error.
// cybertron has no resize function of its own.
//
// # Reserved slots: new words without resizing
//
// BERT checkpoints reserve vocabulary entries ([unused0]…[unused993]) so
// that words can be added without growing the table, and some tables have
// rows past their vocabulary. With Options.Reserved, AddTokens puts the new
// words into the first free slots (ReservedSlots lists them); with
// Options.Slots, into the ids named (an id holding an ordinary word only
// with Options.Force, BERT only; special and added tokens never):
//
//	res, err := newtokens.AddTokens(model, tok, []string{"zorblax"}, &newtokens.Options{Reserved: true})
//	// res.IDs == []int{5} (was "[unused0]"); nothing resized
//
// The rows at those ids (and their tied output rows) get the Init values;
// the output bias, BART's masks and every vocab_size stay as they are, and
// the vocabulary holds the word at its id (vocab.txt's line is replaced,
// vocab.json maps the word to it, added_tokens.json lists it). A Trainable
// Tokens adapter on the ids then carries the whole change: it loads into
// the unchanged base checkpoint, in gopeft or PEFT. When the slots run out,
// the error (ErrNoSlots) says how many were asked for and how many are
// free.
//
// # Initial rows
//
// Options.Init picks how the new rows start:
//   - InitMean (default): the mean of the existing rows of the table,
//     leaving out rows that look untrained (package untrained: zero rows,
//     and rows whose norm is a far and small outlier; Result.Untrained
//     lists them). No noise, so the result is deterministic.
//   - InitTableNormal: N(0, σ²) per element, σ = standard deviation of the
//     elements of the same rows, seeded by Options.Seed.
//   - InitSubtokenMean: the average of the rows of the tokens the string
//     tokenized into before it was added (unknown tokens and untrained rows
//     left out). If nothing is left, that token falls back to InitMean.
//
// When the output projection is a copy of the input table, as the cybertron
// converters make it for tied Hugging Face models, its new rows get the same
// values as the input rows (Result.OutputTied). Otherwise the same strategy
// is applied to the projection's own rows. The projection bias of a new
// token is what transformers' resize_token_embeddings gives it, so a model
// grown here and one resized in PyTorch compute the same logits: 0 for a
// tied head (PreTrainedModel._tie_or_clone_weights pads the bias with 0)
// and for BART's final_logits_bias (_resize_final_logits_bias extends it
// with zeros); the mean of the existing entries for an untied BERT decoder
// (_get_resized_lm_head with mean_resizing).
//
// # Tokenizers
//
// cybertron's tokenizers cannot produce added tokens. Its WordPiece
// tokenizer splits "<obj>" into "<", "obj", ">". Its BPE tokenizer uses
// extra tokens only when decoding. A Tokenizer therefore first cuts the text
// on the added and special tokens, leftmost-longest and anywhere in the
// text, as Hugging Face's added-token trie does: "thezorblax." gives
// "the", "zorblax", ".". The rest of the text goes to cybertron's
// wordpiecetokenizer or bpetokenizer. Tokenizer.Encode has the full rules,
// including case handling: with BERT lower-casing, "Zorblax" matches the
// added token "zorblax"; BART matches case-sensitively.
//
// # Files
//
// WriteVocabFiles writes vocab.txt (BERT) or vocab.json (BART) with the
// added tokens, added_tokens.json, and a raised config.json vocab_size,
// each file atomically. cybertron's task loaders (bert.LoadMaskedLanguageModel,
// bart.LoadTextGeneration), which read these files again, then know the
// new ids. LoadTokenizer reads the files back.
//
// # cybertron quirks met here
//
//   - vocabulary.Vocabulary.Term cannot return the last id (an off-by-one
//     error), so after AddTokens the last new token has no term there.
//     Tokenizer.Token and Tokenizer.Decode do not have this problem.
//   - cybertron's BERT LanguageModel lower-cases the whole text when
//     do_lower_case is set, including "[MASK]". Its Predict then finds no
//     mask. Tokenizer keeps special tokens case-sensitive.
//   - embedding.Model.MustEncode calls log.Fatal on an id at or past Size.
//     AddTokens keeps Size equal to the number of rows.
package newtokens
