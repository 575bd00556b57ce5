package newtokens

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/nlpodyssey/cybertron/pkg/tokenizers"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers/bpetokenizer"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers/wordpiecetokenizer"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"

	"github.com/gopeft/gopeft/internal/regular"
)

// Kinds of tokenizer.
const (
	// KindBERT is a WordPiece tokenizer (vocab.txt), as BERT uses.
	KindBERT = "bert"
	// KindBART is a byte-level BPE tokenizer (vocab.json + merges.txt), as
	// BART uses.
	KindBART = "bart"
)

// Special tokens that the tokenizers keep whole wherever they appear (when
// the vocabulary has them), matched case-sensitively.
var (
	bertSpecials = []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	bartSpecials = []string{"<s>", "<pad>", "</s>", "<unk>", "<mask>"}
)

// AddedToken is a token added to a vocabulary, with its id. It is the unit
// of added_tokens.json ({"content": id, ...}).
type AddedToken struct {
	Content string
	ID      int
}

// Tokenizer is a BERT WordPiece or BART byte-level BPE tokenizer that also
// knows the tokens added with AddTokens.
//
// Encoding first cuts the text on added tokens and special tokens (see
// Encode for the exact rules), then hands the text between them to
// cybertron's own tokenizer (wordpiecetokenizer for BERT, bpetokenizer for
// BART), which never sees the added tokens.
//
// A Tokenizer is safe for concurrent use; AddTokens updates it under a lock.
// For BERT it reads ids from a *vocabulary.Vocabulary that may be the
// model's own (NewBERTTokenizer); that vocabulary must not be changed by
// anything other than AddTokens while the tokenizer is in use.
type Tokenizer struct {
	mu        sync.RWMutex
	kind      string
	lowerCase bool

	// BERT: full vocabulary (ids, including added tokens) and a WordPiece
	// tokenizer over a copy that holds only the base terms.
	vocab *vocabulary.Vocabulary
	wp    *wordpiecetokenizer.WordPieceTokenizer

	// BART: base vocab.json, the BPE tokenizer over it, the directory it came
	// from (for merges.txt).
	bpe      *bpetokenizer.BPETokenizer
	baseIDs  map[string]int
	baseTerm map[int]string
	srcDir   string

	added     []AddedToken
	addedID   map[string]int
	addedTerm map[int]string
	// folded (lower-cased when lowerCase) form of each added token → token.
	addedKey map[string]string
	specials []string
	match    matcher
	unkID    int // -1 if none
}

// NewBERTTokenizer returns a WordPiece tokenizer over vocab, a cybertron
// vocabulary such as a BERT model's Bert.Embeddings.Vocab (ids are read from
// it, so the tokenizer follows tokens added to that vocabulary by
// AddTokens). added lists the tokens of vocab that are added tokens (nil for
// a plain vocabulary); each must be in vocab. lowerCase is the tokenizer's
// do_lower_case (true for uncased BERT models; cybertron reads it from
// tokenizer_config.json).
func NewBERTTokenizer(vocab *vocabulary.Vocabulary, added []string, lowerCase bool) (*Tokenizer, error) {
	if vocab == nil {
		return nil, fmt.Errorf("newtokens: NewBERTTokenizer: vocabulary is nil (a model built with bert.New has no Vocab; set Embeddings.Vocab first)")
	}
	items := vocab.Items()
	if _, ok := vocab.ID(wordpiecetokenizer.DefaultUnknownToken); !ok {
		return nil, fmt.Errorf("newtokens: NewBERTTokenizer: vocabulary has no %s token (cybertron's WordPiece tokenizer needs it)", wordpiecetokenizer.DefaultUnknownToken)
	}
	t := &Tokenizer{kind: KindBERT, lowerCase: lowerCase, vocab: vocab, unkID: -1}
	t.resetAdded()
	list := make([]AddedToken, 0, len(added))
	for _, a := range added {
		id, ok := vocab.ID(a)
		if !ok {
			return nil, fmt.Errorf("newtokens: NewBERTTokenizer: added token %q is not in the vocabulary", a)
		}
		list = append(list, AddedToken{Content: a, ID: id})
	}
	if err := t.checkAdded(list); err != nil {
		return nil, fmt.Errorf("newtokens: NewBERTTokenizer: %w", err)
	}
	base := make([]string, 0, len(items))
	isAdded := make(map[string]bool, len(added))
	for _, a := range added {
		isAdded[a] = true
	}
	for _, term := range items {
		if !isAdded[term] {
			base = append(base, term)
		}
	}
	t.wp = wordpiecetokenizer.New(vocabulary.New(base))
	for _, s := range bertSpecials {
		if _, ok := vocab.ID(s); ok && !isAdded[s] {
			t.specials = append(t.specials, s)
		}
	}
	t.unkID, _ = vocab.ID(wordpiecetokenizer.DefaultUnknownToken)
	t.rebuild(list)
	return t, nil
}

// NewBARTTokenizer returns a byte-level BPE tokenizer built by cybertron's
// bpetokenizer from dir/vocab.json and dir/merges.txt, plus the added
// tokens. An added token may also be listed in vocab.json (as WriteVocabFiles
// does), but then with the same id.
func NewBARTTokenizer(dir string, added []AddedToken) (*Tokenizer, error) {
	vocabFile := filepath.Join(dir, "vocab.json")
	data, err := regular.ReadFile(vocabFile, maxVocabFile)
	if err != nil {
		return nil, fmt.Errorf("newtokens: NewBARTTokenizer: %w", err)
	}
	if err := regular.Check(filepath.Join(dir, "merges.txt")); err != nil {
		return nil, fmt.Errorf("newtokens: NewBARTTokenizer: %w", err)
	}
	var ids map[string]int
	if err := json.Unmarshal(data, &ids); err != nil {
		return nil, fmt.Errorf("newtokens: NewBARTTokenizer: %s: %w", vocabFile, err)
	}
	bpe, err := bpetokenizer.NewFromModelFolder(dir)
	if err != nil {
		return nil, fmt.Errorf("newtokens: NewBARTTokenizer: %w", err)
	}
	t := &Tokenizer{kind: KindBART, bpe: bpe, srcDir: dir, baseIDs: map[string]int{}, baseTerm: map[int]string{}, unkID: -1}
	t.resetAdded()
	isAdded := map[string]bool{}
	for _, a := range added {
		if id, ok := ids[a.Content]; ok && id != a.ID {
			return nil, fmt.Errorf("newtokens: NewBARTTokenizer: added token %q has id %d, but vocab.json gives it id %d", a.Content, a.ID, id)
		}
		isAdded[a.Content] = true
	}
	for term, id := range ids {
		if isAdded[term] {
			continue
		}
		if other, dup := t.baseTerm[id]; dup {
			return nil, fmt.Errorf("newtokens: NewBARTTokenizer: %s gives id %d to both %q and %q", vocabFile, id, other, term)
		}
		t.baseIDs[term], t.baseTerm[id] = id, term
	}
	for _, a := range added {
		if term, taken := t.baseTerm[a.ID]; taken {
			return nil, fmt.Errorf("newtokens: NewBARTTokenizer: added token %q has id %d, which vocab.json gives to %q", a.Content, a.ID, term)
		}
	}
	if err := t.checkAdded(added); err != nil {
		return nil, fmt.Errorf("newtokens: NewBARTTokenizer: %w", err)
	}
	for _, s := range bartSpecials {
		if _, ok := t.baseIDs[s]; ok {
			t.specials = append(t.specials, s)
		}
	}
	if id, ok := t.baseIDs["<unk>"]; ok {
		t.unkID = id
	}
	t.rebuild(added)
	return t, nil
}

// LoadTokenizer loads the tokenizer of a model directory: vocab.txt (BERT,
// lower-casing per tokenizer_config.json "do_lower_case", true when absent as
// in Hugging Face's BertTokenizer) or vocab.json + merges.txt (BART), plus
// the added tokens of added_tokens.json when present (as WriteVocabFiles
// writes them). For BERT, an added token missing from vocab.txt is appended
// when its id is the next one, as in directories saved by Hugging Face.
func LoadTokenizer(dir string) (*Tokenizer, error) {
	added, err := readAddedTokens(filepath.Join(dir, addedTokensFile))
	if err != nil {
		return nil, err
	}
	for _, f := range []string{"vocab.txt", "vocab.json", "merges.txt", "tokenizer_config.json"} {
		// A FIFO or other special file under one of these names is an
		// error at once, never a hang in a reader that opens it.
		if err := regular.Check(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("newtokens: LoadTokenizer: %w", err)
		}
	}
	if fileExists(filepath.Join(dir, "vocab.txt")) {
		vocab, err := readVocabTxt(filepath.Join(dir, "vocab.txt"))
		if err != nil {
			return nil, fmt.Errorf("newtokens: LoadTokenizer: %w", err)
		}
		lower, err := readDoLowerCase(filepath.Join(dir, "tokenizer_config.json"))
		if err != nil {
			return nil, err
		}
		names := make([]string, len(added))
		for i, a := range added { // in id order
			names[i] = a.Content
			id, ok := vocab.ID(a.Content)
			switch {
			case ok && id != a.ID:
				return nil, fmt.Errorf("newtokens: LoadTokenizer: %s gives %q id %d, but vocab.txt has it at id %d", addedTokensFile, a.Content, a.ID, id)
			case !ok && a.ID == len(vocab.Items()):
				// Hugging Face keeps added tokens out of vocab.txt, at the
				// ids that follow it.
				vocab.Add(a.Content)
			case !ok:
				return nil, fmt.Errorf("newtokens: LoadTokenizer: %s gives %q id %d, but vocab.txt has %d terms and lacks it", addedTokensFile, a.Content, a.ID, len(vocab.Items()))
			}
		}
		return NewBERTTokenizer(vocab, names, lower)
	}
	if fileExists(filepath.Join(dir, "vocab.json")) && fileExists(filepath.Join(dir, "merges.txt")) {
		return NewBARTTokenizer(dir, added)
	}
	return nil, fmt.Errorf("newtokens: LoadTokenizer: %s has neither vocab.txt (BERT) nor vocab.json + merges.txt (BART)", dir)
}

// maxVocabFile bounds the vocabulary files read whole (vocab.txt,
// vocab.json).
const maxVocabFile = 256 << 20

// readVocabTxt reads a BERT vocab.txt, one term per line, as cybertron's
// vocabulary.NewFromFile does, but through regular.ReadFile.
func readVocabTxt(file string) (*vocabulary.Vocabulary, error) {
	data, err := regular.ReadFile(file, maxVocabFile)
	if err != nil {
		return nil, err
	}
	voc := vocabulary.New(nil)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		voc.Add(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return voc, nil
}

func fileExists(name string) bool {
	st, err := os.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

func readDoLowerCase(file string) (bool, error) {
	data, err := regular.ReadFile(file, maxConfigJSON)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("newtokens: %w", err)
	}
	var cfg struct {
		DoLowerCase *bool `json:"do_lower_case"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return false, fmt.Errorf("newtokens: %s: %w", file, err)
	}
	if cfg.DoLowerCase == nil {
		return true, nil
	}
	return *cfg.DoLowerCase, nil
}

func (t *Tokenizer) resetAdded() {
	t.added = nil
	t.addedID = map[string]int{}
	t.addedTerm = map[int]string{}
	t.addedKey = map[string]string{}
}

// fold returns the form under which s is matched: lower-cased per rune when
// the tokenizer lower-cases, s otherwise.
func (t *Tokenizer) fold(s string) string {
	if !t.lowerCase {
		return s
	}
	return string(foldRunes([]rune(s), true))
}

func foldRunes(rs []rune, lower bool) []rune {
	if !lower {
		return rs
	}
	out := make([]rune, len(rs))
	for i, r := range rs {
		out[i] = unicode.ToLower(r)
	}
	return out
}

// checkAdded validates a list of added tokens given to a constructor.
func (t *Tokenizer) checkAdded(list []AddedToken) error {
	seen := map[string]string{}
	ids := map[int]string{}
	for _, a := range list {
		if err := checkTokenText(a.Content); err != nil {
			return err
		}
		if a.ID < 0 {
			return fmt.Errorf("added token %q has negative id %d", a.Content, a.ID)
		}
		if other, dup := ids[a.ID]; dup {
			return fmt.Errorf("added tokens %q and %q have the same id %d", other, a.Content, a.ID)
		}
		ids[a.ID] = a.Content
		key := t.fold(a.Content)
		if other, dup := seen[key]; dup {
			if other == a.Content {
				return fmt.Errorf("added token %q is listed twice", a.Content)
			}
			return fmt.Errorf("added tokens %q and %q are the same after lower-casing", other, a.Content)
		}
		seen[key] = a.Content
	}
	return nil
}

// rebuild installs list as the added tokens and rebuilds the matcher.
// Callers hold t.mu for writing (or own t exclusively).
func (t *Tokenizer) rebuild(list []AddedToken) {
	t.resetAdded()
	t.added = append([]AddedToken(nil), list...)
	t.match = matcher{special: &trieNode{}, added: &trieNode{}, lstrip: map[string]bool{}}
	if t.kind == KindBART {
		t.match.lstrip["<mask>"] = true
	}
	for _, s := range t.specials {
		t.match.special.insert([]rune(s), s)
	}
	for _, a := range t.added {
		t.addedID[a.Content] = a.ID
		t.addedTerm[a.ID] = a.Content
		key := t.fold(a.Content)
		t.addedKey[key] = a.Content
		t.match.added.insert([]rune(key), a.Content)
	}
}

// Kind returns KindBERT or KindBART.
func (t *Tokenizer) Kind() string { return t.kind }

// LowerCase reports whether ordinary text (and the matching of added tokens)
// is lower-cased.
func (t *Tokenizer) LowerCase() bool { return t.lowerCase }

// Added returns the added tokens, in id order.
func (t *Tokenizer) Added() []AddedToken {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := append([]AddedToken(nil), t.added...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// VocabSize is the number of ids the tokenizer can produce: one more than
// its largest id (base vocabulary and added tokens).
func (t *Tokenizer) VocabSize() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.vocabSizeLocked()
}

func (t *Tokenizer) vocabSizeLocked() int {
	n := 0
	if t.kind == KindBERT {
		n = len(t.vocab.Items())
	} else {
		for id := range t.baseTerm {
			n = max(n, id+1)
		}
	}
	for _, a := range t.added {
		n = max(n, a.ID+1)
	}
	return n
}

// ID returns the id of a token (base, special or added).
func (t *Tokenizer) ID(token string) (int, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.idLocked(token)
}

func (t *Tokenizer) idLocked(token string) (int, bool) {
	if id, ok := t.addedID[token]; ok {
		return id, true
	}
	if t.kind == KindBERT {
		return t.vocab.ID(token)
	}
	id, ok := t.baseIDs[token]
	return id, ok
}

// Token returns the token of an id. Unlike cybertron's
// vocabulary.Term, it also reaches the last id.
func (t *Tokenizer) Token(id int) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.tokenLocked(id)
}

func (t *Tokenizer) tokenLocked(id int) (string, bool) {
	if s, ok := t.addedTerm[id]; ok {
		return s, true
	}
	return t.baseTermLocked(id)
}

// IsAdded reports whether token is one of the added tokens.
func (t *Tokenizer) IsAdded(token string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.addedID[token]
	return ok
}

// Tokenize is Encode without the ids.
func (t *Tokenizer) Tokenize(text string) ([]string, error) {
	_, toks, err := t.Encode(text)
	return toks, err
}

// Encode tokenizes text into ids and token strings, without sequence
// markers (see EncodeSpecial).
//
// Matching rules:
//   - Added tokens and the vocabulary's special tokens ([CLS], [SEP], [MASK],
//     [UNK], [PAD] for BERT; <s>, </s>, <pad>, <unk>, <mask> for BART) are
//     found anywhere in the text, also glued to punctuation or to other
//     words ("thezorblax." gives "the", "zorblax", "."): scanning left to
//     right, the longest token starting at each position wins, as Hugging
//     Face's added-token trie does. Added tokens take precedence over the
//     model's own sub-word tokenization. BART's <mask> also swallows the
//     whitespace before it (Hugging Face's lstrip=True for that token).
//   - Special tokens match case-sensitively. Added tokens match
//     case-sensitively, except when the tokenizer lower-cases (BERT
//     do_lower_case): then text and added tokens are both lower-cased before
//     matching, so "Zorblax" gives the added token "zorblax", as with Hugging
//     Face's BertTokenizerFast (normalized added tokens).
//   - The text between matches goes to cybertron's tokenizer: for BERT the
//     lower-cased text (if lowerCase) through wordpiecetokenizer (whitespace
//     and punctuation split, greedy longest-match WordPiece, [UNK] for
//     unknown words); for BART bpetokenizer (byte-level BPE). Whitespace is
//     not stripped around added tokens (Hugging Face's default lstrip/rstrip
//     false): in BART, "a zorblax" gives "a", "Ġ", "zorblax", exactly as
//     Hugging Face does, and decodes back to the same text.
//   - Lower-casing is unicode.ToLower per rune, as cybertron's BERT
//     LanguageModel does (strings.ToLower); accents are not stripped.
func (t *Tokenizer) Encode(text string) ([]int, []string, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.encodeLocked(text)
}

func (t *Tokenizer) encodeLocked(text string) ([]int, []string, error) {
	if !utf8.ValidString(text) {
		return nil, nil, fmt.Errorf("newtokens: text is not valid UTF-8")
	}
	orig := []rune(text)
	pieces := t.match.split(orig, foldRunes(orig, t.lowerCase))
	var ids []int
	var toks []string
	for _, p := range pieces {
		if p.isToken {
			id, ok := t.idLocked(p.text)
			if !ok {
				return nil, nil, fmt.Errorf("newtokens: token %q has no id", p.text)
			}
			ids, toks = append(ids, id), append(toks, p.text)
			continue
		}
		pids, ptoks, err := t.encodePlain(p.text)
		if err != nil {
			return nil, nil, err
		}
		ids, toks = append(ids, pids...), append(toks, ptoks...)
	}
	return ids, toks, nil
}

// encodePlain runs cybertron's tokenizer on text without added tokens.
func (t *Tokenizer) encodePlain(text string) ([]int, []string, error) {
	if t.kind == KindBERT {
		toks := tokenizers.GetStrings(t.wp.Tokenize(text))
		ids := make([]int, len(toks))
		for i, s := range toks {
			id, ok := t.vocab.ID(s)
			if !ok {
				return nil, nil, fmt.Errorf("newtokens: WordPiece produced %q, which is not in the vocabulary", s)
			}
			ids[i] = id
		}
		return ids, toks, nil
	}
	enc, err := t.bpe.Encode(text)
	if err != nil {
		return nil, nil, fmt.Errorf("newtokens: %w", err)
	}
	return append([]int(nil), enc.IDs...), append([]string(nil), enc.Tokens...), nil
}

// EncodeSpecial is Encode plus the model's sequence markers: [CLS] … [SEP]
// for BERT, <s> … </s> for BART (as cybertron's task tokenizers add them),
// … </s> for a byte-level vocabulary without <s> (Marian, Pegasus).
func (t *Tokenizer) EncodeSpecial(text string) ([]int, []string, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ids, toks, err := t.encodeLocked(text)
	if err != nil {
		return nil, nil, err
	}
	first, last := "[CLS]", "[SEP]"
	if t.kind == KindBART {
		first, last = "<s>", "</s>"
	}
	fid, ok1 := t.idLocked(first)
	lid, ok2 := t.idLocked(last)
	if !ok1 && t.kind == KindBART && ok2 {
		// Marian and Pegasus have no <s>: their sequences end with </s> only.
		return append(ids, lid), append(toks, last), nil
	}
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("newtokens: vocabulary lacks %s or %s", first, last)
	}
	ids = append(append([]int{fid}, ids...), lid)
	toks = append(append([]string{first}, toks...), last)
	return ids, toks, nil
}

// Decode maps ids back to token strings; added tokens come back as added.
func (t *Tokenizer) Decode(ids []int) ([]string, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]string, len(ids))
	for i, id := range ids {
		s, ok := t.tokenLocked(id)
		if !ok {
			return nil, fmt.Errorf("newtokens: id %d (position %d) is not in the vocabulary (size %d)", id, i, t.vocabSizeLocked())
		}
		out[i] = s
	}
	return out, nil
}

// DecodeText maps ids back to text. Added tokens are written as they are.
// BERT: tokens are joined with spaces and "##" continuations are glued to
// the previous token (Hugging Face's convert_tokens_to_string, without its
// clean-up of spaces before punctuation). BART: byte-level tokens are turned
// back into bytes, so the text round-trips. skipSpecial drops the special
// tokens listed in Encode.
func (t *Tokenizer) DecodeText(ids []int, skipSpecial bool) (string, error) {
	toks, err := t.Decode(ids)
	if err != nil {
		return "", err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	isSpecial := map[string]bool{}
	for _, s := range t.specials {
		isSpecial[s] = true
	}
	var sb strings.Builder
	var bytes []byte
	flush := func() {
		sb.WriteString(decodeByteLevel(bytes))
		bytes = bytes[:0]
	}
	for i, s := range toks {
		if skipSpecial && isSpecial[s] {
			continue
		}
		_, added := t.addedTerm[ids[i]]
		if t.kind == KindBERT {
			switch {
			case sb.Len() == 0:
				sb.WriteString(strings.TrimPrefix(s, "##"))
			case !added && strings.HasPrefix(s, "##"):
				sb.WriteString(s[2:])
			default:
				sb.WriteString(" " + s)
			}
			continue
		}
		if added || isSpecial[s] {
			flush()
			sb.WriteString(s)
			continue
		}
		bytes = appendByteLevel(bytes, s)
	}
	flush()
	return sb.String(), nil
}
