package newtokens

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/walk"
	"github.com/gopeft/gopeft/registry"
	"github.com/gopeft/gopeft/tying"
)

var (
	// ErrInvalidTokens wraps every error about the requested tokens.
	ErrInvalidTokens = errors.New("newtokens: invalid tokens")
	// ErrUnsupportedModel wraps errors about the model (its type or an
	// inconsistent state).
	ErrUnsupportedModel = errors.New("newtokens: unsupported model")
)

// SupportedModels returns the Go types of the models AddTokens accepts:
// the cybertron models package registry describes.
func SupportedModels() []string { return registry.SupportedModels() }

// Options configures AddTokens. The zero value (and nil) means InitMean.
type Options struct {
	// Init is how the new rows start (InitMean, InitTableNormal,
	// InitSubtokenMean).
	Init Init
	// Seed seeds InitTableNormal.
	Seed uint64
	// Slots places the tokens into existing ids instead of growing the
	// table: tokens[i] takes id Slots[i]. Each id must be a reserved slot
	// (Tokenizer.ReservedSlots: an [unusedN]-style term, or a row with no
	// term) unless Force is set. See "Reserved slots" in AddTokens.
	Slots []int
	// Reserved places the tokens into the first free reserved slots
	// (Tokenizer.ReservedSlots, lowest ids first). Not with Slots.
	Reserved bool
	// Force lets Slots name ids that hold an ordinary word (BERT only); the
	// word leaves the vocabulary. Special tokens and added tokens are never
	// replaced.
	Force bool
}

// TokenInit says how one new token's rows were initialised.
type TokenInit struct {
	AddedToken
	// Init is the strategy actually used: InitMean when InitSubtokenMean fell
	// back.
	Init Init
	// Subtokens are the ids whose rows were averaged (InitSubtokenMean), and
	// SubtokenStrings their tokens.
	Subtokens       []int
	SubtokenStrings []string
	// SkippedUntrained are subtoken ids left out because their rows look
	// untrained (package untrained), or are slots being filled.
	SkippedUntrained []int
	// Replaced is the term that held the token's slot ("" when the slot had
	// no term, or the table grew).
	Replaced string
}

// Result describes what AddTokens did.
type Result struct {
	// Model is the model's Go type, e.g. "*bert.ModelForMaskedLM".
	Model string
	// Tokens are the added strings and IDs their new ids, consecutive from
	// OldVocabSize, in the order given: ready for
	// trainabletokens.Config.TokenIndices.
	Tokens []string
	IDs    []int
	// OldVocabSize and NewVocabSize are the embedding table's row counts
	// before and after (equal when the tokens went into reserved slots).
	OldVocabSize, NewVocabSize int
	// InSlots reports that the tokens took reserved slots (Options.Slots or
	// Options.Reserved): IDs are those slots and nothing was resized.
	InSlots bool
	// Init is the requested strategy; PerToken has what each token got.
	Init     Init
	PerToken []TokenInit
	// Untrained are the ids of the input table's rows that look untrained
	// (package untrained's default rule) and were left out of the mean and
	// spread; OutputUntrained the same for an untied output projection.
	Untrained, OutputUntrained []int
	// Output names the grown output projection ("" if the model has none):
	// "Layers[3]" (BERT MLM decoder) or "Projection" (BART).
	Output string
	// OutputTied reports that the output projection was a copy of the input
	// table (every non-zero input row equal to its projection row), so its
	// new rows were set equal to the new input rows. Otherwise they were
	// initialised by the same strategy from the projection's own rows.
	// The projection bias of a new token is what transformers'
	// resize_token_embeddings gives it: 0 for a tied head and for BART's
	// final_logits_bias, the mean of the existing entries for an untied
	// BERT decoder.
	OutputTied bool
	// Tokenizer is the tokenizer that now knows the tokens (the one passed
	// to AddTokens, or the one created for a BERT model when nil was passed).
	Tokenizer *Tokenizer
}

// target is a resolved model: the pieces AddTokens touches.
type target struct {
	typeName string
	kind     string
	table    *embedding.Model
	out      *linear.Model
	outName  string
	buffers  []*registry.VocabBuffer
	// BERT
	bert  *bert.Model
	vocab *vocabulary.Vocabulary
	// BART
	bart     *bart.Model
	wrappers []*embedding.Shared
}

// resolve asks registry where model keeps its table, its output head and
// its vocabulary-sized buffers.
func resolve(model nn.Model) (*target, error) {
	if model == nil || reflect.ValueOf(model).Kind() == reflect.Pointer && reflect.ValueOf(model).IsNil() {
		return nil, fmt.Errorf("%w: model is nil", ErrUnsupportedModel)
	}
	t := &target{typeName: fmt.Sprintf("%T", model)}
	l, err := registry.Describe(model)
	if err != nil || l.Family == "" {
		return nil, fmt.Errorf("%w: %T; supported: %s", ErrUnsupportedModel, model, strings.Join(SupportedModels(), ", "))
	}
	if method, tab := l.InjectedBy(); tab != nil {
		return nil, fmt.Errorf("%w: %s's %s carries an injected %s adapter, whose rows training would update instead of the new ones; add tokens before injecting the adapter (Unload or MergeAndUnload it first)",
			ErrUnsupportedModel, t.typeName, tab.HFPath, method)
	}
	for _, b := range l.BadOutputs {
		return nil, fmt.Errorf("%w: %s.%s (add tokens before wrapping or replacing the output layer)", ErrUnsupportedModel, t.typeName, b.Reason)
	}
	for _, o := range l.Outputs {
		if o.Of != nil && o.Of.Input {
			t.out, t.outName = o.Linear, walk.GoPath(o.Path)
		}
	}
	t.buffers = l.VocabBuffers
	switch c := l.Core.(type) {
	case *bert.Model:
		t.bert = c
	case *bart.Model:
		t.bart = c
	}
	if t.bert != nil {
		t.kind = KindBERT
		if t.bert.Embeddings == nil || t.bert.Embeddings.Tokens == nil {
			return nil, fmt.Errorf("%w: %s has no Bert.Embeddings.Tokens table", ErrUnsupportedModel, t.typeName)
		}
		t.table = t.bert.Embeddings.Tokens
		t.vocab = t.bert.Embeddings.Vocab
		if t.vocab == nil {
			return nil, fmt.Errorf("%w: %s has no vocabulary (Bert.Embeddings.Vocab is nil, as bert.New leaves it; set it before adding tokens)", ErrUnsupportedModel, t.typeName)
		}
		return t, nil
	}
	if t.bart == nil {
		return nil, fmt.Errorf("%w: %s has no Bart model", ErrUnsupportedModel, t.typeName)
	}
	t.kind = KindBART
	t.table = t.bart.Embeddings
	if t.table == nil {
		return nil, fmt.Errorf("%w: %s has no shared embedding table (Bart.Embeddings is nil)", ErrUnsupportedModel, t.typeName)
	}
	if t.bart.Encoder == nil || t.bart.Encoder.Embeddings == nil || t.bart.Decoder == nil || t.bart.Decoder.Embeddings == nil {
		return nil, fmt.Errorf("%w: %s lacks its encoder or decoder embeddings", ErrUnsupportedModel, t.typeName)
	}
	t.wrappers = []*embedding.Shared{&t.bart.Encoder.Embeddings.SharedEmbeddings, &t.bart.Decoder.Embeddings.SharedEmbeddings}
	return t, nil
}

// check validates the model's current state.
// resolveWithTokenizer resolves and checks model (as resolve and check do)
// and returns the tokenizer to use: tok, or for a BERT model and a nil tok
// one built from the model's own vocabulary (fn names the call in errors).
func resolveWithTokenizer(fn string, model nn.Model, tok *Tokenizer) (*target, *Tokenizer, error) {
	t, err := resolve(model)
	if err != nil {
		return nil, nil, err
	}
	if err := t.check(); err != nil {
		return nil, nil, err
	}
	if tok == nil {
		if t.kind != KindBERT {
			return nil, nil, fmt.Errorf("newtokens: %s: a BART model holds no vocabulary; pass its tokenizer (LoadTokenizer(dir) or NewBARTTokenizer)", fn)
		}
		if tok, err = NewBERTTokenizer(t.vocab, nil, true); err != nil {
			return nil, nil, err
		}
	}
	return t, tok, nil
}

func (t *target) check() error {
	e := t.table
	v := len(e.Weights)
	if v == 0 {
		return fmt.Errorf("%w: the embedding table of %s has no rows", ErrUnsupportedModel, t.typeName)
	}
	if e.Size != v {
		return fmt.Errorf("%w: the embedding table of %s has Size %d but %d rows", ErrUnsupportedModel, t.typeName, e.Size, v)
	}
	dtype := ""
	for i, p := range e.Weights {
		if p == nil {
			return fmt.Errorf("%w: embedding row %d of %s is nil", ErrUnsupportedModel, i, t.typeName)
		}
		m, ok := p.Value().(mat.Matrix)
		if !ok || rows.DType(m) == "" {
			return fmt.Errorf("%w: embedding row %d of %s is %T, expected a float32/float64 dense matrix", ErrUnsupportedModel, i, t.typeName, p.Value())
		}
		if m.Size() != e.Dim {
			return fmt.Errorf("%w: embedding row %d of %s has %d values, expected Dim %d", ErrUnsupportedModel, i, t.typeName, m.Size(), e.Dim)
		}
		if dtype == "" {
			dtype = rows.DType(m)
		} else if rows.DType(m) != dtype {
			return fmt.Errorf("%w: embedding rows of %s mix %s and %s", ErrUnsupportedModel, t.typeName, dtype, rows.DType(m))
		}
	}
	if t.out != nil {
		if err := checkMatrix(t.out.W, dtype, v, e.Dim, t.typeName+"."+t.outName+".W"); err != nil {
			return err
		}
		if err := checkMatrix(t.out.B, dtype, v, 1, t.typeName+"."+t.outName+".B"); err != nil {
			return err
		}
	}
	if t.vocab != nil {
		if n := len(t.vocab.Items()); n != v {
			return fmt.Errorf("%w: %s's vocabulary has %d terms but its embedding table has %d rows; new ids would not line up", ErrUnsupportedModel, t.typeName, n, v)
		}
	}
	for _, b := range t.buffers {
		buf := *b.Slot
		if buf == nil || buf.Tensor == nil {
			return fmt.Errorf("%w: %s.%s is nil", ErrUnsupportedModel, t.typeName, b.Path)
		}
		m, ok := buf.Value().(mat.Matrix)
		if !ok || rows.DType(m) != dtype || m.Size() != v {
			return fmt.Errorf("%w: %s.%s is %T of size %d, expected a %s vector of size %d", ErrUnsupportedModel, t.typeName, b.Path, buf.Value(), sizeOf(buf.Value()), dtype, v)
		}
	}
	for i, w := range t.wrappers {
		if w.Model != nil && w.Model != e {
			part := [...]string{"Encoder", "Decoder"}[i]
			return fmt.Errorf("%w: %s.Bart.%s.Embeddings.SharedEmbeddings points to a different table than Bart.Embeddings; re-wire it first (SharedEmbeddings = embedding.Shared{Model: m.Bart.Embeddings}, as cybertron's loaders do)", ErrUnsupportedModel, t.typeName, part)
		}
	}
	return nil
}

func sizeOf(v any) int {
	if m, ok := v.(mat.Matrix); ok {
		return m.Size()
	}
	return -1
}

func checkMatrix(p *nn.Param, dtype string, r, c int, name string) error {
	if p == nil || p.Matrix == nil {
		return fmt.Errorf("%w: %s is nil", ErrUnsupportedModel, name)
	}
	m := p.Value().(mat.Matrix)
	if rows.DType(m) != dtype {
		return fmt.Errorf("%w: %s is %s, the embedding table %s", ErrUnsupportedModel, name, rows.DType(m), dtype)
	}
	s := m.Shape()
	rr, cc := s[0], 1
	if len(s) > 1 {
		cc = s[1]
	}
	if rr != r || cc != c {
		return fmt.Errorf("%w: %s is %d×%d, expected %d×%d", ErrUnsupportedModel, name, rr, cc, r, c)
	}
	return nil
}

// checkTokenText rejects strings that cannot be tokens.
func checkTokenText(s string) error {
	if s == "" {
		return fmt.Errorf("empty string")
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if unicode.IsSpace(r) {
			return fmt.Errorf("%q contains whitespace (%U); tokens with whitespace are not supported (vocab.txt is one token per line and cybertron's tokenizers split on whitespace)", s, r)
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("%q contains the control character %U", s, r)
		}
	}
	return nil
}

// AddTokens adds tokens to model's vocabulary and to tok, grows the model's
// embedding table and every copy of it (see below), and returns the new ids,
// consecutive from the old table size in the order given.
//
// Supported models (SupportedModels): BERT (*bert.ModelForMaskedLM and the
// other bert heads, *bert.Model) and BART (*bart.ModelForConditionalGeneration,
// *bart.Model, *bart.ModelForSequenceClassification). What changes:
//   - BERT: the tokens are added to Bert.Embeddings.Vocab; rows are appended
//     to Bert.Embeddings.Tokens; for ModelForMaskedLM the decoder Layers[3]
//     grows (W to (V+n)×H, B to (V+n)×1, keeping their requiresGrad flags);
//     Config.VocabSize is updated in every copy (Model, Embeddings, Encoder
//     and its layers).
//   - BART: rows are appended to the one shared Bart.Embeddings table, which
//     the encoder's and decoder's embedding.Shared wrappers point to (nil
//     wrappers, as gob leaves them, are re-wired to it; wrappers pointing to
//     another table are an error). ModelForConditionalGeneration's
//     Projection grows like BERT's decoder, PadMask grows with 0 and EosMask
//     with −Inf for the new ids (cybertron's generation adds both to the
//     logits). Config.VocabSize is updated in every copy.
//   - New embedding rows get requiresGrad like row 0 of the table.
//
// tok is the model's tokenizer; it learns the new tokens (see Tokenizer.Encode
// for how they are matched). For BERT it may be nil: a lower-casing tokenizer
// over Bert.Embeddings.Vocab is created (Result.Tokenizer); a non-nil one must
// have the same vocabulary as the model. BART models hold no vocabulary, so tok
// is required (LoadTokenizer or NewBARTTokenizer on the model's directory) and
// must not know ids beyond the table.
//
// Everything is validated before anything changes; on error the model and
// tok are unchanged. Errors about the tokens wrap ErrInvalidTokens: an empty
// list, an empty string, whitespace or control characters in a token, a token
// already in the vocabulary (named with its id), duplicates, and — when the
// tokenizer lower-cases — a token whose lower-cased form is already a token
// (it would capture that token's text). Errors about the model wrap
// ErrUnsupportedModel.
//
// Reserved slots: with Options.Reserved or Options.Slots the tokens take
// existing ids instead (see the package doc): their rows (and tied output
// rows) are overwritten with the Init values, the slots' own rows left out
// of the statistics; the vocabulary term at each id becomes the token;
// nothing is resized and no bias or mask changes. Slot errors wrap
// ErrInvalidTokens (a named id out of range, listed twice, holding a
// special or added token, or an ordinary word without Options.Force) or
// ErrNoSlots (fewer free slots than tokens).
//
// Call AddTokens before attaching an adapter (e.g. trainabletokens.New) and
// not while the model runs a forward pass. Save the vocabulary files with
// WriteVocabFiles and the model with models.Save (atomic, unlike
// nn.DumpToFile).
func AddTokens(model nn.Model, tok *Tokenizer, tokens []string, opts *Options) (*Result, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if !o.Init.valid() {
		return nil, fmt.Errorf("%w: Options.Init = %d; expected InitMean (0), InitTableNormal (1) or InitSubtokenMean (2)", ErrInvalidTokens, int(o.Init))
	}
	t, tok, err := resolveWithTokenizer("AddTokens", model, tok)
	if err != nil {
		return nil, err
	}
	if tok.kind == "" {
		return nil, fmt.Errorf("newtokens: AddTokens: the tokenizer was not built by NewBERTTokenizer, NewBARTTokenizer or LoadTokenizer")
	}
	tok.mu.Lock()
	defer tok.mu.Unlock()
	if err := t.checkTokenizer(tok); err != nil {
		return nil, err
	}
	if err := checkRequest(tok, tokens); err != nil {
		return nil, err
	}
	slots, err := t.chooseSlots(tok, tokens, o)
	if err != nil {
		return nil, err
	}
	p, err := t.plan(tok, tokens, o, slots)
	if err != nil {
		return nil, err
	}
	if slots != nil {
		t.applySlots(tok, p)
		p.res.Tokenizer = tok
		return p.res, nil
	}
	t.apply(tok, p)
	p.res.Tokenizer = tok
	return p.res, nil
}

func (t *target) checkTokenizer(tok *Tokenizer) error {
	if tok.kind != t.kind {
		return fmt.Errorf("newtokens: AddTokens: a %s tokenizer cannot serve %s", tok.kind, t.typeName)
	}
	v := len(t.table.Weights)
	if t.kind == KindBERT {
		if tok.vocab == t.vocab {
			return nil
		}
		a, b := tok.vocab.Items(), t.vocab.Items()
		if len(a) != len(b) {
			return fmt.Errorf("newtokens: AddTokens: the tokenizer's vocabulary has %d terms, the model's %d", len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				return fmt.Errorf("newtokens: AddTokens: the tokenizer's vocabulary differs from the model's at id %d (%q vs %q)", i, a[i], b[i])
			}
		}
		return nil
	}
	if n := tok.vocabSizeLocked(); n > v {
		return fmt.Errorf("newtokens: AddTokens: the tokenizer has ids up to %d but %s's embedding table has only %d rows", n-1, t.typeName, v)
	}
	return nil
}

// checkRequest validates the requested tokens against each other and tok.
func checkRequest(tok *Tokenizer, tokens []string) error {
	if len(tokens) == 0 {
		return fmt.Errorf("%w: no tokens given", ErrInvalidTokens)
	}
	pos := map[string]int{}
	keys := map[string]string{}
	for i, s := range tokens {
		if err := checkTokenText(s); err != nil {
			return fmt.Errorf("%w: token %d: %v", ErrInvalidTokens, i, err)
		}
		if j, dup := pos[s]; dup {
			return fmt.Errorf("%w: %q is listed twice (positions %d and %d)", ErrInvalidTokens, s, j, i)
		}
		pos[s] = i
		if id, ok := tok.idLocked(s); ok {
			return fmt.Errorf("%w: %q is already in the vocabulary with id %d", ErrInvalidTokens, s, id)
		}
		key := tok.fold(s)
		if other, ok := tok.addedKey[key]; ok {
			return fmt.Errorf("%w: %q is the same as the added token %q (id %d) after lower-casing", ErrInvalidTokens, s, other, tok.addedID[other])
		}
		if other, dup := keys[key]; dup {
			return fmt.Errorf("%w: %q and %q are the same after lower-casing", ErrInvalidTokens, other, s)
		}
		keys[key] = s
		if key != s {
			if id, ok := tok.idLocked(key); ok {
				return fmt.Errorf("%w: %q would be matched on lower-cased text as %q, which is already token id %d; add %q in lower case or use a tokenizer that does not lower-case", ErrInvalidTokens, s, key, id, s)
			}
		}
	}
	return nil
}

// plan holds everything apply writes, computed before any change.
type plan struct {
	res     *Result
	inRows  [][]float64
	outRows [][]float64
	bias    float64
	wrap    bool
}

func (t *target) plan(tok *Tokenizer, tokens []string, o Options, slots []slot) (*plan, error) {
	e := t.table
	v, dim := len(e.Weights), e.Dim
	res := &Result{
		Model:        t.typeName,
		Tokens:       append([]string(nil), tokens...),
		OldVocabSize: v,
		NewVocabSize: v + len(tokens),
		Init:         o.Init,
		Output:       t.outName,
	}
	in := embRows{e}
	var out rowSet
	if t.out != nil {
		out = matRows{t.out.W.Value().(mat.Matrix), dim}
		tied, err := tying.IsCopy(e, t.out)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedModel, err)
		}
		res.OutputTied = tied
	}
	exclude := map[int]bool{}
	for _, sl := range slots {
		exclude[sl.ID] = true
	}
	if slots != nil {
		res.NewVocabSize = v
		res.InSlots = true
	}
	inStats, err := tableStats(in, dim, exclude)
	if err != nil {
		return nil, fmt.Errorf("%w: the embedding table of %s: %w", ErrUnsupportedModel, t.typeName, err)
	}
	res.Untrained = inStats.ids
	var outStats stats
	if out != nil && !res.OutputTied {
		if outStats, err = tableStats(out, dim, exclude); err != nil {
			return nil, fmt.Errorf("%w: %s.%s: %w", ErrUnsupportedModel, t.typeName, t.outName, err)
		}
		res.OutputUntrained = outStats.ids
	}
	rng := newRNG(o.Seed)
	p := &plan{res: res}
	for i, s := range tokens {
		id := v + i
		if slots != nil {
			id = slots[i].ID
		}
		ti := TokenInit{AddedToken: AddedToken{Content: s, ID: id}, Init: o.Init}
		if slots != nil {
			ti.Replaced = slots[i].Term
		}
		var inRow, outRow []float64
		switch o.Init {
		case InitMean:
			inRow = inStats.mean
			outRow = outStats.mean
		case InitTableNormal:
			inRow = normalRow(rng, dim, inStats.std)
			if out != nil && !res.OutputTied {
				outRow = normalRow(rng, dim, outStats.std)
			}
		case InitSubtokenMean:
			ids, strs, err := tok.encodeLocked(s)
			if err != nil {
				return nil, fmt.Errorf("%w: tokenizing %q for InitSubtokenMean: %v", ErrInvalidTokens, s, err)
			}
			for k, id := range ids {
				if id == tok.unkID {
					continue
				}
				if id < 0 || id >= v {
					return nil, fmt.Errorf("%w: %q tokenizes to id %d, outside the embedding table (%d rows)", ErrUnsupportedModel, s, id, v)
				}
				if inStats.untrained[id] || exclude[id] {
					ti.SkippedUntrained = append(ti.SkippedUntrained, id)
					continue
				}
				ti.Subtokens = append(ti.Subtokens, id)
				ti.SubtokenStrings = append(ti.SubtokenStrings, strs[k])
			}
			if len(ti.Subtokens) == 0 {
				ti.Init = InitMean
				inRow, outRow = inStats.mean, outStats.mean
				break
			}
			inRow = averageRows(in, ti.Subtokens, dim)
			if out != nil && !res.OutputTied {
				outRow = averageRows(out, ti.Subtokens, dim)
			}
		}
		if res.OutputTied {
			outRow = inRow
		}
		p.inRows = append(p.inRows, inRow)
		p.outRows = append(p.outRows, outRow)
		res.IDs = append(res.IDs, id)
		res.PerToken = append(res.PerToken, ti)
	}
	// The bias of the new tokens, as transformers' resize_token_embeddings
	// sets it (src/transformers/modeling_utils.py): a tied head's bias is
	// padded with 0 by PreTrainedModel._tie_or_clone_weights, and BART's
	// final_logits_bias (the Projection's bias here) is extended with zeros
	// by BartForConditionalGeneration._resize_final_logits_bias; only an
	// untied head with a bias is resized by _get_resized_lm_head, whose
	// default mean_resizing draws the new entries around the mean of the
	// old ones (standard deviation 1e-9 of theirs), i.e. the mean.
	if t.out != nil && t.kind == KindBERT && !res.OutputTied {
		b := rows.Get(t.out.B.Value().(mat.Matrix), 0, v)
		var sum float64
		for _, x := range b {
			sum += x
		}
		p.bias = sum / float64(v)
	}
	for _, w := range t.wrappers {
		if w.Model == nil {
			p.wrap = true
		}
	}
	return p, nil
}

// apply writes a plan into the model and the tokenizer. It cannot fail:
// every check happened before.
func (t *target) apply(tok *Tokenizer, p *plan) {
	e := t.table
	like := e.Weights[0].Value().(mat.Matrix)
	grad := e.Weights[0].RequiresGrad()
	for _, r := range p.inRows {
		param := nn.NewParam(newMatrix(like, r, len(r), 1))
		param.SetRequiresGrad(grad)
		e.Weights = append(e.Weights, param)
	}
	e.Size = len(e.Weights)
	newV := e.Size

	if t.out != nil {
		growRows(t.out.W, p.outRows, e.Dim)
		bias := make([][]float64, len(p.outRows))
		for i := range bias {
			bias[i] = []float64{p.bias}
		}
		growRows(t.out.B, bias, 1)
	}
	for _, b := range t.buffers {
		*b.Slot = growBuffer(*b.Slot, len(p.inRows), b.Fill)
	}
	if p.wrap {
		for _, w := range t.wrappers {
			if w.Model == nil {
				w.Model = e
			}
		}
	}

	added := append([]AddedToken(nil), tok.added...)
	for i, s := range p.res.Tokens {
		if t.vocab != nil {
			t.vocab.Add(s)
		}
		if tok.kind == KindBERT && tok.vocab != t.vocab {
			tok.vocab.Add(s)
		}
		added = append(added, AddedToken{Content: s, ID: p.res.IDs[i]})
	}
	tok.rebuild(added)

	if t.bert != nil {
		b := t.bert
		b.Config.VocabSize = newV
		b.Embeddings.Config.VocabSize = newV
		if b.Encoder != nil {
			b.Encoder.Config.VocabSize = newV
			for _, l := range b.Encoder.Layers {
				if l != nil {
					l.Config.VocabSize = newV
				}
			}
		}
	}
	if t.bart != nil {
		b := t.bart
		b.Config.VocabSize = newV
		b.Encoder.Config.VocabSize = newV
		b.Encoder.Embeddings.Config.VocabSize = newV
		for _, l := range b.Encoder.Layers {
			if l != nil {
				l.Config.VocabSize = newV
			}
		}
		b.Decoder.Config.VocabSize = newV
		b.Decoder.Embeddings.Config.VocabSize = newV
		for _, l := range b.Decoder.Layers {
			if l != nil {
				l.Config.VocabSize = newV
			}
		}
	}
}

// newMatrix returns an r×c dense matrix of like's dtype holding vals.
func newMatrix(like mat.Matrix, vals []float64, r, c int) mat.Matrix {
	switch like.(type) {
	case *mat.Dense[float32]:
		d := make([]float32, len(vals))
		for i, x := range vals {
			d[i] = float32(x)
		}
		return mat.NewDense[float32](mat.WithShape(r, c), mat.WithBacking(d))
	default:
		return mat.NewDense[float64](mat.WithShape(r, c), mat.WithBacking(append([]float64(nil), vals...)))
	}
}

// growRows replaces p's value (V×cols) with a (V+len(extra))×cols matrix:
// the old rows, then extra. The requiresGrad flag is kept (ReplaceValue
// would take the new matrix's).
func growRows(p *nn.Param, extra [][]float64, cols int) {
	old := p.Value().(mat.Matrix)
	grad := p.RequiresGrad()
	v := old.Shape()[0]
	n := v + len(extra)
	var m mat.Matrix
	switch d := old.(type) {
	case *mat.Dense[float32]:
		data := make([]float32, 0, n*cols)
		data = append(data, mat.Data[float32](d)...)
		for _, r := range extra {
			for _, x := range r {
				data = append(data, float32(x))
			}
		}
		m = mat.NewDense[float32](mat.WithShape(n, cols), mat.WithBacking(data))
	case *mat.Dense[float64]:
		data := make([]float64, 0, n*cols)
		data = append(data, mat.Data[float64](d)...)
		for _, r := range extra {
			data = append(data, r...)
		}
		m = mat.NewDense[float64](mat.WithShape(n, cols), mat.WithBacking(data))
	}
	p.ReplaceValue(m)
	p.SetRequiresGrad(grad)
}

// growBuffer returns a new buffer: b's values followed by n copies of fill.
func growBuffer(b *nn.Buffer, n int, fill float64) *nn.Buffer {
	old := b.Value().(mat.Matrix)
	vals := rows.Get(old, 0, old.Size())
	for i := 0; i < n; i++ {
		vals = append(vals, fill)
	}
	return nn.Buf(newMatrix(old, vals, len(vals), 1))
}
