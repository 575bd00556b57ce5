package newtokens

import (
	"errors"
	"fmt"
	"regexp"
	"sort"

	"github.com/nlpodyssey/cybertron/pkg/tokenizers/wordpiecetokenizer"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/gopeft/gopeft/internal/rows"
)

// ErrNoSlots is returned (wrapped) when Options.Reserved asks for more
// slots than are free; the message says how many were asked and free.
var ErrNoSlots = errors.New("newtokens: not enough reserved slots")

// reservedTerm matches the vocabulary entries checkpoints reserve for
// later use: BERT's [unused0]…[unused993], <unusedN> as some SentencePiece
// vocabularies write it, and fairseq's madeupwordNNNN padding entries.
var reservedTerm = regexp.MustCompile(`^(\[unused\d+\]|<unused\d+>|madeupword\d+)$`)

// IsReservedTerm reports whether a vocabulary term is a reserved
// placeholder ([unusedN], <unusedN>, madeupwordN).
func IsReservedTerm(term string) bool { return reservedTerm.MatchString(term) }

// Slot is an id that can take a new token without growing the table.
type Slot struct {
	ID int
	// Term is the placeholder the vocabulary holds there ("" when the
	// table row has no term: a table padded beyond its vocabulary).
	Term string
}

type slot = Slot

// ReservedSlots returns the free reserved slots of a model and its
// tokenizer, lowest id first: ids whose term is a reserved placeholder
// (IsReservedTerm), and ids of the embedding table that no term uses
// (BART tables are often padded past vocab.json). Added tokens and special
// tokens are never free. The model must be one AddTokens accepts.
func ReservedSlots(model nn.Model, tok *Tokenizer) ([]Slot, error) {
	t, tok, err := resolveWithTokenizer("ReservedSlots", model, tok)
	if err != nil {
		return nil, err
	}
	tok.mu.RLock()
	defer tok.mu.RUnlock()
	if err := t.checkTokenizer(tok); err != nil {
		return nil, err
	}
	return tok.freeSlotsLocked(len(t.table.Weights)), nil
}

// freeSlotsLocked lists the free slots below rows. Callers hold tok.mu.
func (t *Tokenizer) freeSlotsLocked(rows int) []Slot {
	var out []Slot
	for id := 0; id < rows; id++ {
		if _, added := t.addedTerm[id]; added {
			continue
		}
		term, ok := t.baseTermLocked(id)
		switch {
		case !ok:
			out = append(out, Slot{ID: id})
		case IsReservedTerm(term) && !t.isSpecial(term):
			out = append(out, Slot{ID: id, Term: term})
		}
	}
	return out
}

// baseTermLocked is the term of id in the base vocabulary (not an added
// token).
func (t *Tokenizer) baseTermLocked(id int) (string, bool) {
	if t.kind == KindBERT {
		items := t.vocab.Items()
		if id < 0 || id >= len(items) {
			return "", false
		}
		return items[id], true
	}
	s, ok := t.baseTerm[id]
	return s, ok
}

func (t *Tokenizer) isSpecial(term string) bool {
	for _, s := range t.specials {
		if s == term {
			return true
		}
	}
	return false
}

// chooseSlots resolves Options.Slots / Options.Reserved into slots, one
// per token, validated; nil when the table grows. Callers hold tok.mu.
func (t *target) chooseSlots(tok *Tokenizer, tokens []string, o Options) ([]slot, error) {
	if o.Reserved && o.Slots != nil {
		return nil, fmt.Errorf("%w: Options.Slots and Options.Reserved are both set; use one", ErrInvalidTokens)
	}
	if o.Force && o.Slots == nil {
		return nil, fmt.Errorf("%w: Options.Force needs Options.Slots (it allows named ids that hold a word)", ErrInvalidTokens)
	}
	rowsN := len(t.table.Weights)
	if o.Reserved {
		free := tok.freeSlotsLocked(rowsN)
		if len(tokens) > len(free) {
			return nil, fmt.Errorf("%w: %d tokens asked for a slot, %d reserved slots free (placeholders such as [unused0], or table rows without a term)", ErrNoSlots, len(tokens), len(free))
		}
		return free[:len(tokens)], nil
	}
	if o.Slots == nil {
		return nil, nil
	}
	if len(o.Slots) != len(tokens) {
		return nil, fmt.Errorf("%w: %d tokens but %d Options.Slots; give one id per token", ErrInvalidTokens, len(tokens), len(o.Slots))
	}
	seen := map[int]int{}
	out := make([]slot, len(tokens))
	for i, id := range o.Slots {
		if id < 0 || id >= rowsN {
			return nil, fmt.Errorf("%w: Options.Slots[%d] = %d is out of range for the embedding table of %s: allowed [0, %d)", ErrInvalidTokens, i, id, t.typeName, rowsN)
		}
		if j, dup := seen[id]; dup {
			return nil, fmt.Errorf("%w: id %d is listed twice in Options.Slots (positions %d and %d)", ErrInvalidTokens, id, j, i)
		}
		seen[id] = i
		if s, added := tok.addedTerm[id]; added {
			return nil, fmt.Errorf("%w: Options.Slots[%d] = %d holds the added token %q; added tokens are never replaced", ErrInvalidTokens, i, id, s)
		}
		term, ok := tok.baseTermLocked(id)
		switch {
		case !ok:
		case tok.isSpecial(term):
			return nil, fmt.Errorf("%w: Options.Slots[%d] = %d holds the special token %q, which is never replaced", ErrInvalidTokens, i, id, term)
		case IsReservedTerm(term):
		case tok.kind == KindBART:
			return nil, fmt.Errorf("%w: Options.Slots[%d] = %d holds the BPE token %q; BART's merges would still produce that id for other text, so it cannot be replaced (choose a row without a term)", ErrInvalidTokens, i, id, term)
		case !o.Force:
			return nil, fmt.Errorf("%w: Options.Slots[%d] = %d holds the word %q, not a reserved slot; set Options.Force to replace it (the word leaves the vocabulary)", ErrInvalidTokens, i, id, term)
		}
		out[i] = slot{ID: id, Term: term}
	}
	return out, nil
}

// applySlots writes a slot plan: the new rows over the slots' rows (and
// over their tied output rows), the tokens into the vocabulary at those
// ids, and the tokenizer. Nothing is resized; the output bias, an untied
// projection's rows, BART's masks and every Config.VocabSize stay as they
// are, so the change is exactly what a Trainable Tokens adapter on the
// ids can carry. It cannot fail: every check happened before.
func (t *target) applySlots(tok *Tokenizer, p *plan) {
	e := t.table
	for i, id := range p.res.IDs {
		_ = rows.Set(e.Weights[id].Value().(mat.Matrix), 0, p.inRows[i])
		if t.out != nil && p.res.OutputTied {
			_ = rows.Set(t.out.W.Value().(mat.Matrix), id, p.outRows[i])
		}
	}
	if p.wrap {
		for _, w := range t.wrappers {
			if w.Model == nil {
				w.Model = e
			}
		}
	}
	replace := func(v *vocabulary.Vocabulary, id int, s string) {
		items := v.Items()
		if old := items[id]; v.Map()[old] == id {
			delete(v.Map(), old)
		}
		items[id] = s
		v.Map()[s] = id
	}
	added := append([]AddedToken(nil), tok.added...)
	for i, s := range p.res.Tokens {
		id := p.res.IDs[i]
		if t.vocab != nil {
			replace(t.vocab, id, s)
		}
		if tok.kind == KindBERT && tok.vocab != t.vocab {
			replace(tok.vocab, id, s)
		}
		if tok.kind == KindBART {
			if old, ok := tok.baseTerm[id]; ok {
				delete(tok.baseIDs, old)
				delete(tok.baseTerm, id)
			}
		}
		added = append(added, AddedToken{Content: s, ID: id})
	}
	sort.SliceStable(added, func(i, j int) bool { return added[i].ID < added[j].ID })
	if tok.kind == KindBERT {
		// WordPiece sees the base terms only: neither the added tokens nor
		// the placeholders they replaced.
		isAdded := map[string]bool{}
		for _, a := range added {
			isAdded[a.Content] = true
		}
		var base []string
		for _, term := range tok.vocab.Items() {
			if !isAdded[term] {
				base = append(base, term)
			}
		}
		tok.wp = wordpiecetokenizer.New(vocabulary.New(base))
	}
	tok.rebuild(added)
}
