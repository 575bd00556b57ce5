package recipes

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/trainabletokens"
)

// Seq2SeqExamples tokenizes source/target text pairs with <s> … </s>, as
// Hugging Face's BART tokenizer does for inputs and labels.
func Seq2SeqExamples(tok *newtokens.Tokenizer, pairs [][2]string) ([]finetune.Seq2SeqExample, error) {
	out := make([]finetune.Seq2SeqExample, 0, len(pairs))
	for i, p := range pairs {
		src, _, err := tok.EncodeSpecial(p[0])
		if err != nil {
			return nil, fmt.Errorf("recipes: pair %d source %q: %w", i, p[0], err)
		}
		tgt, _, err := tok.EncodeSpecial(p[1])
		if err != nil {
			return nil, fmt.Errorf("recipes: pair %d target %q: %w", i, p[1], err)
		}
		out = append(out, finetune.Seq2SeqExample{Source: src, Target: tgt})
	}
	return out, nil
}

// Generate decodes greedily from text with the fast inference forward
// (finetune.GenerateBART: cybertron's Encoder.Encode, Decoder.Decode,
// Projection and pad mask, with a key/value cache), inside tm.Do when tm
// is not nil. Decoding starts from decoder_start_token_id, forces
// bos_token when the config asks for it (force_bos_token_to_be_generated),
// and stops at eos or max_length. It returns the generated text without
// special tokens.
func Generate(m *bart.ModelForConditionalGeneration, tm *trainabletokens.Model, tok *newtokens.Tokenizer, text string) (string, error) {
	if err := checkAdapter(m, tm, false); err != nil {
		return "", err
	}
	src, _, err := tok.EncodeSpecial(text)
	if err != nil {
		return "", err
	}
	if m == nil || m.Bart == nil || m.Bart.Embeddings == nil {
		return "", fmt.Errorf("recipes: BART model or its embeddings is nil")
	}
	cfg := m.Bart.Config
	vocab := len(m.Bart.Embeddings.Weights)
	for _, id := range src {
		if id < 0 || id >= vocab {
			return "", fmt.Errorf("recipes: token id %d out of the model's vocabulary [0, %d)", id, vocab)
		}
	}
	if len(src) > cfg.MaxPositionEmbeddings {
		return "", fmt.Errorf("recipes: %d source tokens, at most %d allowed", len(src), cfg.MaxPositionEmbeddings)
	}
	var out []int
	run := func() error {
		ids, err := finetune.GenerateBART(m, []finetune.Seq2SeqInput{{Source: src}}, finetune.GenerateOptions{})
		if err != nil {
			return fmt.Errorf("recipes: %w", err)
		}
		out = ids[0]
		return nil
	}
	if tm != nil {
		err = tm.Do(run)
	} else {
		err = run()
	}
	if err != nil {
		return "", err
	}
	return DecodeWords(tok, out)
}

// DecodeWords decodes ids as DecodeText(ids, true) does, except that every
// added token reads as a word of its own: a space is put between it and
// text it would otherwise be glued to (a model may generate an added token
// right after a word piece, "Ġall" + "quindle", which plain decoding writes
// "allquindle"). Text that already has the spaces ("a Ġ zorblax .") decodes
// unchanged.
func DecodeWords(tok *newtokens.Tokenizer, ids []int) (string, error) {
	if tok == nil {
		return "", fmt.Errorf("recipes: tokenizer is nil")
	}
	var parts []string // decoded runs; added tokens alone
	var added []bool
	var run []int
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		s, err := tok.DecodeText(run, true)
		if err != nil {
			return err
		}
		parts, added, run = append(parts, s), append(added, false), run[:0]
		return nil
	}
	for _, id := range ids {
		s, ok := tok.Token(id)
		if ok && tok.IsAdded(s) {
			if err := flush(); err != nil {
				return "", err
			}
			parts, added = append(parts, s), append(added, true)
			continue
		}
		run = append(run, id)
	}
	if err := flush(); err != nil {
		return "", err
	}
	var b strings.Builder
	for i, p := range parts {
		if i > 0 && p != "" && b.Len() > 0 && (added[i] || added[i-1]) {
			prev := b.String()
			last, _ := utf8.DecodeLastRuneInString(prev)
			first, _ := utf8.DecodeRuneInString(p)
			glued := !unicode.IsSpace(last) && !unicode.IsSpace(first)
			if added[i-1] && !added[i] && unicode.IsPunct(first) {
				glued = false // "zorblax ." and "zorblax." both stay as they are
			}
			if glued {
				b.WriteByte(' ')
			}
		}
		b.WriteString(p)
	}
	return b.String(), nil
}
