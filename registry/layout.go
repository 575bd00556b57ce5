package registry

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"unicode"

	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/internal/walk"
)

// ErrNoEmbeddings is returned when a model holds no embedding table at all.
var ErrNoEmbeddings = errors.New("registry: model has no embedding table")

// InputEmbedder is implemented by models that expose their input token
// table, like get_input_embeddings in Hugging Face models.
type InputEmbedder interface {
	InputEmbeddings() *embedding.Model
}

// Table is one embedding table of a model.
type Table struct {
	// Embedding is the table itself; its Weights are the token rows.
	Embedding *embedding.Model
	// Path is the Go field path from the model root, e.g. "Bert.Embeddings.Tokens".
	Path string
	// HFPath is the Hugging Face module path of the table, e.g.
	// "bert.embeddings.word_embeddings" or "model.shared"; adapter files key
	// their tensors by it. For tables found by walking it is the snake_case
	// form of Path.
	HFPath string
	// Names are every module name that resolves to this table: HFPath, Path,
	// aliases (BART's "model.encoder.embed_tokens" is the shared table).
	Names []string
	// Input reports whether this is the model's input token embedding.
	Input bool
}

// Output is an output projection (vocab × dim linear layer) whose rows may
// be a copy of a table's rows, as cybertron's converters write them.
type Output struct {
	Linear *linear.Model
	Path   string
	HFPath string
	Names  []string
	// Of is the table the architecture ties this projection to (Hugging
	// Face's tie_word_embeddings); whether the values really match is for
	// package tying to check.
	Of *Table
}

// BadOutput is an output head the architecture has but that is not a
// linear layer any more (for example wrapped by the user).
type BadOutput struct {
	Path, HFPath string
	// Reason says what the slot holds, e.g. "Layers[3] is foo.Wrapper,
	// expected *linear.Model".
	Reason string
}

// VocabBuffer is a buffer with one entry per vocabulary row, which must
// grow with the token table (BART's generation masks).
type VocabBuffer struct {
	// Path is the buffer's Go field path, e.g. "PadMask".
	Path string
	// Slot is the field itself, so that a grown buffer can replace it.
	Slot **nn.Buffer
	// Fill is the entry of a new token id (0 for PadMask; −Inf for EosMask,
	// which cybertron adds to the logits at the maximum length).
	Fill float64
}

// Layout is what Describe knows about a model.
type Layout struct {
	Model nn.Model
	// Architecture names the model type, e.g. "bert.ModelForMaskedLM".
	Architecture string
	Tables       []*Table
	Outputs      []*Output
	// Family is FamilyBERT or FamilyBART for cybertron's models, "" for
	// models found by walking or through InputEmbedder.
	Family string
	// Core is the family's base model inside Model (*bert.Model or
	// *bart.Model; Model itself for bert.Model and bart.Model), nil
	// outside the families.
	Core nn.Model
	// ModelType is the base model's config model_type ("bert", "electra",
	// "bart", "marian", "pegasus"; "" when unknown). HFClass, HFModule and
	// the HF paths follow it (ELECTRA: "electra." and "generator_lm_head").
	ModelType string
	// HFClass and HFModule name the transformers class of the model (e.g.
	// "BertForMaskedLM", "transformers.models.bert.modeling_bert"), as
	// PEFT's auto_mapping records it; "" when there is none.
	HFClass, HFModule string
	// BadOutputs are output heads of the architecture that are not linear
	// layers; they are left out of Outputs.
	BadOutputs []*BadOutput
	// VocabBuffers are buffers indexed by token id.
	VocabBuffers []*VocabBuffer
}

// Input returns the input token table, or nil.
func (l *Layout) Input() *Table {
	for _, t := range l.Tables {
		if t.Input {
			return t
		}
	}
	return nil
}

// TableOf returns the Table wrapping e, or nil.
func (l *Layout) TableOf(e *embedding.Model) *Table {
	for _, t := range l.Tables {
		if t.Embedding == e {
			return t
		}
	}
	return nil
}

// Names lists every module name of every table, sorted, for error messages.
func (l *Layout) Names() []string {
	var out []string
	for _, t := range l.Tables {
		out = append(out, t.Names...)
	}
	sort.Strings(out)
	return out
}

// Accessor describes a model of a registered type.
type Accessor func(model nn.Model) (*Layout, error)

var (
	modelsMu sync.RWMutex
	models   = map[reflect.Type]Accessor{}
)

// RegisterModel registers the Accessor for models of example's dynamic type
// (for example &bert.ModelForMaskedLM{}). Registering a type twice panics, as
// sql.Register does.
func RegisterModel(example nn.Model, accessor Accessor) {
	modelsMu.Lock()
	defer modelsMu.Unlock()
	t := reflect.TypeOf(example)
	if accessor == nil {
		panic("registry: RegisterModel accessor is nil")
	}
	if _, dup := models[t]; dup {
		panic("registry: RegisterModel called twice for " + t.String())
	}
	models[t] = accessor
}

// Describe returns the Layout of model (see the package documentation for
// the order in which it looks).
func Describe(model nn.Model) (*Layout, error) {
	if model == nil || (reflect.ValueOf(model).Kind() == reflect.Ptr && reflect.ValueOf(model).IsNil()) {
		return nil, errors.New("registry: nil model")
	}
	if ie, ok := model.(InputEmbedder); ok {
		l, err := walkLayout(model)
		if err != nil {
			return nil, err
		}
		in := ie.InputEmbeddings()
		t := l.TableOf(in)
		if t == nil {
			return nil, fmt.Errorf("registry: %T.InputEmbeddings returned a table that is not a field of the model", model)
		}
		for _, o := range l.Tables {
			o.Input = o == t
		}
		return l, nil
	}
	modelsMu.RLock()
	acc := models[reflect.TypeOf(model)]
	modelsMu.RUnlock()
	if acc != nil {
		return acc(model)
	}
	return walkLayout(model)
}

// walkLayout finds every *embedding.Model by walking exported fields.
func walkLayout(model nn.Model) (*Layout, error) {
	l := &Layout{Model: model, Architecture: reflect.TypeOf(model).String()}
	byTable := map[*embedding.Model]*Table{}
	walk.WalkAll(model, func(n walk.Node) {
		e, ok := n.Value.(*embedding.Model)
		if !ok {
			return
		}
		p := strings.TrimSuffix(n.Path, ".Model") // embedding.Shared embeds *Model
		if t := byTable[e]; t != nil {
			t.Names = appendNew(t.Names, p, SnakePath(p))
			return
		}
		t := &Table{Embedding: e, Path: p, HFPath: SnakePath(p)}
		t.Names = appendNew(nil, t.HFPath, p)
		byTable[e] = t
		l.Tables = append(l.Tables, t)
	})
	if len(l.Tables) == 0 {
		return nil, fmt.Errorf("%w (%T)", ErrNoEmbeddings, model)
	}
	for _, t := range l.Tables {
		for _, n := range t.Names {
			if n == "embed_tokens" || strings.HasSuffix(n, ".embed_tokens") {
				t.Input = true
			}
		}
		if t.Input {
			break
		}
	}
	return l, nil
}

// SnakePath turns a Go field path into Hugging Face style:
// "Bart.Encoder.EmbedTokens" → "bart.encoder.embed_tokens".
func SnakePath(p string) string {
	parts := strings.Split(p, ".")
	for i, s := range parts {
		var b strings.Builder
		rs := []rune(s)
		for j, r := range rs {
			if unicode.IsUpper(r) {
				if j > 0 && (unicode.IsLower(rs[j-1]) || (j+1 < len(rs) && unicode.IsLower(rs[j+1]))) {
					b.WriteByte('_')
				}
				r = unicode.ToLower(r)
			}
			b.WriteRune(r)
		}
		parts[i] = b.String()
	}
	return strings.Join(parts, ".")
}

func appendNew(list []string, names ...string) []string {
	for _, n := range names {
		found := false
		for _, m := range list {
			found = found || m == n
		}
		if !found && n != "" {
			list = append(list, n)
		}
	}
	return list
}
