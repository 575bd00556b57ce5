package registry

// The one list of cybertron's model types. Each entry says, for one Go
// type: its family, its Hugging Face class, where the family's base model
// sits inside it (Go field and Hugging Face module prefix), and its output
// heads (Go path, Hugging Face module path, which table the architecture
// ties them to). To support another type, add an entry here; Describe,
// newtokens, tying and trainabletokens pick it up.

import (
	"fmt"
	"math"
	"reflect"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"

	"github.com/gopeft/gopeft/internal/walk"
)

// Families of cybertron models (Layout.Family).
const (
	FamilyBERT = "bert"
	FamilyBART = "bart"
)

// archSpec describes one cybertron model type.
type archSpec struct {
	example nn.Model
	family  string
	// hfClass and hfModule name the transformers class ("" when PEFT's
	// auto_mapping has none to name).
	hfClass, hfModule string
	// core returns the family's base model (*bert.Model or *bart.Model);
	// goPrefix and hfPrefix locate it ("Bert."/"bert." in BertForMaskedLM).
	core               func(nn.Model) nn.Model
	goPrefix, hfPrefix string
	heads              []headSpec
	buffers            []bufferSpec
}

// headSpec is an output head: a vocab × dim linear layer.
type headSpec struct {
	goPath, hfPath string
	// slot returns the module in the head's place; it may not be a
	// *linear.Model (a user may have wrapped it).
	slot func(nn.Model) (any, bool)
	// tied: the architecture ties the head to the input table (Hugging
	// Face's tie_word_embeddings); whether the values are a copy is for
	// package tying to decide.
	tied bool
}

// bufferSpec is a buffer with one entry per vocabulary row.
type bufferSpec struct {
	path string
	slot func(nn.Model) **nn.Buffer
	fill float64
}

const (
	bertModule = "transformers.models.bert.modeling_bert"
	bartModule = "transformers.models.bart.modeling_bart"
)

var bertMLMHead = headSpec{
	goPath: "Layers.3", hfPath: "cls.predictions.decoder", tied: true,
	slot: func(m nn.Model) (any, bool) {
		x := m.(*bert.ModelForMaskedLM)
		if len(x.Layers) != 4 {
			return nil, false
		}
		return x.Layers[3], true
	},
}

var bartLMHead = headSpec{
	goPath: "Projection", hfPath: "lm_head", tied: true,
	slot: func(m nn.Model) (any, bool) {
		p := m.(*bart.ModelForConditionalGeneration).Projection
		return p, p != nil
	},
}

// bartMasks are added to the logits by cybertron's generation: PadMask
// (0 for a new id) and EosMask (−Inf for a new id).
var bartMasks = []bufferSpec{
	{"PadMask", func(m nn.Model) **nn.Buffer { return &m.(*bart.ModelForConditionalGeneration).PadMask }, 0},
	{"EosMask", func(m nn.Model) **nn.Buffer { return &m.(*bart.ModelForConditionalGeneration).EosMask }, math.Inf(-1)},
}

// archs is the list, in the order SupportedModels reports it.
var archs = []*archSpec{
	{example: &bert.ModelForMaskedLM{}, family: FamilyBERT, hfClass: "BertForMaskedLM", hfModule: bertModule,
		core: func(m nn.Model) nn.Model { return m.(*bert.ModelForMaskedLM).Bert }, goPrefix: "Bert.", hfPrefix: "bert.",
		heads: []headSpec{bertMLMHead}},
	{example: &bert.Model{}, family: FamilyBERT, hfClass: "BertModel", hfModule: bertModule,
		core: func(m nn.Model) nn.Model { return m.(*bert.Model) }},
	{example: &bert.ModelForSequenceClassification{}, family: FamilyBERT, hfClass: "BertForSequenceClassification", hfModule: bertModule,
		core: func(m nn.Model) nn.Model { return m.(*bert.ModelForSequenceClassification).Bert }, goPrefix: "Bert.", hfPrefix: "bert."},
	{example: &bert.ModelForTokenClassification{}, family: FamilyBERT, hfClass: "BertForTokenClassification", hfModule: bertModule,
		core: func(m nn.Model) nn.Model { return m.(*bert.ModelForTokenClassification).Bert }, goPrefix: "Bert.", hfPrefix: "bert."},
	{example: &bert.ModelForQuestionAnswering{}, family: FamilyBERT, hfClass: "BertForQuestionAnswering", hfModule: bertModule,
		core: func(m nn.Model) nn.Model { return m.(*bert.ModelForQuestionAnswering).Bert }, goPrefix: "Bert.", hfPrefix: "bert."},
	// cybertron converts BertModel checkpoints into ModelForSequenceEncoding;
	// its base model has no "bert." prefix, as in BertModel.
	{example: &bert.ModelForSequenceEncoding{}, family: FamilyBERT,
		core: func(m nn.Model) nn.Model { return m.(*bert.ModelForSequenceEncoding).Bert }, goPrefix: "Bert."},
	{example: &bart.ModelForConditionalGeneration{}, family: FamilyBART, hfClass: "BartForConditionalGeneration", hfModule: bartModule,
		core: func(m nn.Model) nn.Model { return m.(*bart.ModelForConditionalGeneration).Bart }, goPrefix: "Bart.", hfPrefix: "model.",
		heads: []headSpec{bartLMHead}, buffers: bartMasks},
	{example: &bart.Model{}, family: FamilyBART, hfClass: "BartModel", hfModule: bartModule,
		core: func(m nn.Model) nn.Model { return m.(*bart.Model) }},
	{example: &bart.ModelForSequenceClassification{}, family: FamilyBART, hfClass: "BartForSequenceClassification", hfModule: bartModule,
		core: func(m nn.Model) nn.Model { return m.(*bart.ModelForSequenceClassification).Bart }, goPrefix: "Bart.", hfPrefix: "model."},
}

func init() {
	for _, a := range archs {
		a := a
		RegisterModel(a.example, func(m nn.Model) (*Layout, error) { return a.describe(m) })
	}
}

// SupportedModels returns the Go types of the cybertron models this
// package describes, e.g. "*bert.ModelForMaskedLM".
func SupportedModels() []string {
	out := make([]string, len(archs))
	for i, a := range archs {
		out[i] = reflect.TypeOf(a.example).String()
	}
	return out
}

func (a *archSpec) describe(root nn.Model) (*Layout, error) {
	core := a.core(root)
	var l *Layout
	var err error
	switch c := core.(type) {
	case *bert.Model:
		l, err = bertLayout(root, c, a.goPrefix, a.hfPrefix)
	case *bart.Model:
		l, err = bartLayout(root, c, a.goPrefix, a.hfPrefix)
	default:
		err = fmt.Errorf("registry: internal error: %T's base model is %T", root, core)
	}
	if err != nil {
		return nil, err
	}
	l.Family, l.Core, l.HFClass, l.HFModule = a.family, core, a.hfClass, a.hfModule
	for _, h := range a.heads {
		v, ok := h.slot(root)
		if !ok {
			continue
		}
		lin, isLinear := v.(*linear.Model)
		if !isLinear || lin == nil {
			l.BadOutputs = append(l.BadOutputs, &BadOutput{Path: h.goPath, HFPath: h.hfPath,
				Reason: fmt.Sprintf("%s is %T, expected *linear.Model", walk.GoPath(h.goPath), v)})
			continue
		}
		o := &Output{Linear: lin, Path: h.goPath, HFPath: h.hfPath, Names: []string{h.hfPath, h.goPath}}
		if h.tied {
			o.Of = l.Input()
		}
		l.Outputs = append(l.Outputs, o)
	}
	for _, b := range a.buffers {
		l.VocabBuffers = append(l.VocabBuffers, &VocabBuffer{Path: b.path, Slot: b.slot(root), Fill: b.fill})
	}
	applyFamily(l) // ELECTRA, Marian, Pegasus: the family's HF names (families.go)
	return l, nil
}

// bertLayout names BERT's three tables; goPrefix/hfPrefix locate the base
// model inside a task model ("Bert."/"bert." in Hugging Face's
// BertFor* classes, nothing in BertModel).
func bertLayout(root nn.Model, m *bert.Model, goPrefix, hfPrefix string) (*Layout, error) {
	if m == nil || m.Embeddings == nil || m.Embeddings.Tokens == nil {
		return nil, fmt.Errorf("registry: %T has no BERT token embeddings", root)
	}
	e := m.Embeddings
	l := &Layout{Model: root, Architecture: archName(root)}
	add := func(tab *embedding.Model, goName, hfName string, input bool) {
		if tab == nil {
			return
		}
		gp, hp := goPrefix+"Embeddings."+goName, hfPrefix+"embeddings."+hfName
		l.Tables = append(l.Tables, &Table{
			Embedding: tab, Path: gp, HFPath: hp, Names: appendNew(nil, hp, gp), Input: input,
		})
	}
	add(e.Tokens, "Tokens", "word_embeddings", true)
	add(e.Positions, "Positions", "position_embeddings", false)
	add(e.TokenTypes, "TokenTypes", "token_type_embeddings", false)
	return l, nil
}

// bartLayout names BART's shared table (reachable as shared, encoder and
// decoder embed_tokens, one table in cybertron as in Hugging Face) and the
// two positional tables.
func bartLayout(root nn.Model, m *bart.Model, goPrefix, hfPrefix string) (*Layout, error) {
	if m == nil || m.Embeddings == nil {
		return nil, fmt.Errorf("registry: %T has no BART shared embeddings", root)
	}
	l := &Layout{Model: root, Architecture: archName(root)}
	shared := &Table{
		Embedding: m.Embeddings, Path: goPrefix + "Embeddings", HFPath: hfPrefix + "shared", Input: true,
	}
	shared.Names = appendNew(nil, shared.HFPath,
		hfPrefix+"encoder.embed_tokens", hfPrefix+"decoder.embed_tokens",
		shared.Path, goPrefix+"Encoder.Embeddings.SharedEmbeddings", goPrefix+"Decoder.Embeddings.SharedEmbeddings")
	l.Tables = append(l.Tables, shared)
	for _, side := range []struct {
		goName, hfName string
		emb            *bart.Embeddings
	}{
		{"Encoder", "encoder", embeddingsOf(m.Encoder)},
		{"Decoder", "decoder", embeddingsOfDecoder(m.Decoder)},
	} {
		if side.emb == nil || side.emb.PositionalEncoder == nil || side.emb.PositionalEncoder.Embeddings == nil {
			continue
		}
		gp := goPrefix + side.goName + ".Embeddings.PositionalEncoder.Embeddings"
		hp := hfPrefix + side.hfName + ".embed_positions"
		l.Tables = append(l.Tables, &Table{
			Embedding: side.emb.PositionalEncoder.Embeddings, Path: gp, HFPath: hp, Names: appendNew(nil, hp, gp),
		})
	}
	return l, nil
}

func archName(m nn.Model) string { return reflect.TypeOf(m).Elem().String() }

func embeddingsOf(e *bart.Encoder) *bart.Embeddings {
	if e == nil {
		return nil
	}
	return e.Embeddings
}

func embeddingsOfDecoder(d *bart.Decoder) *bart.Embeddings {
	if d == nil {
		return nil
	}
	return d.Embeddings
}
