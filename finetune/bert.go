package finetune

import (
	"fmt"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/tokenizers/wordpiecetokenizer"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
)

// EncodeBERT is the training-safe equivalent of m.EncodeTokens(tokens): the
// same hidden states (one dim×1 column per token), built so that
// ag.Backward completes. Tokens are vocabulary terms; the token type
// switches after every "[SEP]", as in cybertron.
func EncodeBERT(m *bert.Model, tokens []string) ([]mat.Tensor, error) {
	if err := checkBERT(training, m); err != nil {
		return nil, err
	}
	in, err := bertTokens(m, tokens)
	if err != nil {
		return nil, err
	}
	return bertForward(newGraph(), m, in), nil
}

// MaskedLMLogits returns the masked-LM logits (vocab×len(positions)) of
// tokens at the given positions: cybertron's Predict for those positions,
// training-safe. A nil logits uses the model's own output layer. An
// optional Forward picks the forward pass (default ForwardAuto).
func MaskedLMLogits(m *bert.ModelForMaskedLM, tokens []string, positions []int, logits LogitsFunc, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	if err := checkMaskedLM(training, m); err != nil {
		return nil, err
	}
	in, err := bertTokens(m.Bert, tokens)
	if err != nil {
		return nil, err
	}
	if len(positions) == 0 {
		return nil, invalidf("no positions")
	}
	seen := map[int]bool{}
	for _, p := range positions {
		if p < 0 || p >= len(tokens) {
			return nil, invalidf("position %d out of range [0, %d)", p, len(tokens))
		}
		if seen[p] {
			return nil, invalidf("position %d listed twice", p)
		}
		seen[p] = true
	}
	if logits == nil {
		logits = moduleLogits(m.Layers[len(m.Layers)-1])
	}
	if h := fusedMaskedLM(f, m, []bertInput{in}, [][]int{positions}, nil); h != nil {
		return logits(h), nil
	}
	g := newGraph()
	return logits(columns(maskedLMHidden(g, m, bertForward(g, m.Bert, in), positions))), nil
}

// SequenceClassificationLogits returns the classifier logits (labels×1) of
// one sequence: cybertron's Classify, training-safe.
func SequenceClassificationLogits(m *bert.ModelForSequenceClassification, tokens []string, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	if err := checkSequenceClassification(training, m); err != nil {
		return nil, err
	}
	in, err := bertTokens(m.Bert, tokens)
	if err != nil {
		return nil, err
	}
	return seqClassHead(m)(bertHidden(f, m.Bert, []bertInput{in}, firstPositions(1))), nil
}

// bertInput is a validated BERT sequence: token ids and token types.
type bertInput struct {
	ids, types []int
}

// tableRows is the number of rows an embedding table can serve without
// spago failing (it checks Size, then indexes Weights).
func tableRows(e *embedding.Model) int {
	return min(e.Size, len(e.Weights))
}

// bertTokens converts and validates one sequence of terms.
func bertTokens(m *bert.Model, tokens []string) (bertInput, error) {
	e := m.Embeddings
	if err := checkLength("sequence", len(tokens), tableRows(e.Positions)); err != nil {
		return bertInput{}, err
	}
	in := bertInput{ids: make([]int, len(tokens)), types: make([]int, len(tokens))}
	vocabRows, typeRows := tableRows(e.Tokens), tableRows(e.TokenTypes)
	segment := 0
	for i, tok := range tokens {
		id, ok := e.Vocab.ID(tok)
		if !ok {
			return bertInput{}, invalidf("token %d %q is not in the vocabulary", i, tok)
		}
		if id >= vocabRows {
			return bertInput{}, invalidf("token %d %q has id %d, outside the embedding table [0, %d)", i, tok, id, vocabRows)
		}
		if segment >= typeRows {
			return bertInput{}, invalidf("token %d %q is in segment %d (after %d %q); the token-type table allows segments [0, %d)",
				i, tok, segment, segment, wordpiecetokenizer.DefaultSequenceSeparator, typeRows)
		}
		in.ids[i], in.types[i] = id, segment
		if tok == wordpiecetokenizer.DefaultSequenceSeparator {
			segment++
		}
	}
	return in, nil
}

// checkBERT checks the parts of m the forward pass uses, so that building
// the graph cannot fail.
func checkBERT(rd reading, m *bert.Model) error {
	if m == nil || m.Embeddings == nil || m.Encoder == nil {
		return unsupportedf("BERT model, its Embeddings or its Encoder is nil")
	}
	e := m.Embeddings
	if e.Vocab == nil {
		return unsupportedf("BERT Embeddings.Vocab is nil (bert.New leaves it unset)")
	}
	if e.Norm == nil {
		return unsupportedf("BERT Embeddings.Norm is nil")
	}
	tables := []struct {
		name  string
		table *embedding.Model
	}{{"BERT Embeddings.Tokens", e.Tokens}, {"BERT Embeddings.Positions", e.Positions}, {"BERT Embeddings.TokenTypes", e.TokenTypes}}
	for _, t := range tables {
		if err := checkTable(rd, t.name, t.table); err != nil {
			return err
		}
	}
	for i, l := range m.Encoder.Layers {
		if l == nil || l.SelfAttention == nil || l.SelfAttention.Norm == nil || l.FF == nil || l.FF.Norm == nil {
			return unsupportedf("BERT encoder layer %d is incomplete", i)
		}
		if err := checkAttention(l.SelfAttention.Attention); err != nil {
			return fmt.Errorf("BERT encoder layer %d: %w", i, err)
		}
	}
	return nil
}

func checkMaskedLM(rd reading, m *bert.ModelForMaskedLM) error {
	if m == nil {
		return unsupportedf("masked-LM model is nil")
	}
	if err := checkBERT(rd, m.Bert); err != nil {
		return err
	}
	if len(m.Layers) == 0 {
		return unsupportedf("masked-LM head has no layers")
	}
	for i, l := range m.Layers {
		if l == nil {
			return unsupportedf("masked-LM head layer %d is nil", i)
		}
	}
	return nil
}

func checkSequenceClassification(rd reading, m *bert.ModelForSequenceClassification) error {
	if m == nil {
		return unsupportedf("sequence-classification model is nil")
	}
	if err := checkBERT(rd, m.Bert); err != nil {
		return err
	}
	if m.Bert.Pooler == nil || m.Classifier == nil {
		return unsupportedf("BERT Pooler or Classifier is nil")
	}
	return nil
}

// maskedLMOutputRows is the number of classes the model's own output layer
// predicts.
func maskedLMOutputRows(m *bert.ModelForMaskedLM) int {
	if l, ok := m.Layers[len(m.Layers)-1].(*linear.Model); ok {
		return l.W.Value().Shape()[0]
	}
	return tableRows(m.Bert.Embeddings.Tokens)
}

// bertForward builds the encoder graph of one validated sequence.
func bertForward(g *graph, m *bert.Model, in bertInput) []mat.Tensor {
	return bertEncoder(g, m.Encoder, bertEmbeddings(g, m.Embeddings, in))
}

// bertEmbeddings sums token, position and token-type rows, then applies the
// layer norm and the optional projector, as Embeddings.EncodeTokens does.
func bertEmbeddings(g *graph, e *bert.Embeddings, in bertInput) []mat.Tensor {
	xs := make([]mat.Tensor, len(in.ids))
	for i, id := range in.ids {
		xs[i] = ag.Sum(g.row(e.Tokens, id), g.row(e.Positions, i), g.row(e.TokenTypes, in.types[i]))
	}
	xs = g.layerNorms(e.Norm, xs, xs)
	if e.Projector != nil {
		xs = g.linears(e.Projector, xs)
	}
	return xs
}

// bertEncoder runs the post-norm encoder layers.
func bertEncoder(g *graph, enc *bert.Encoder, xs []mat.Tensor) []mat.Tensor {
	for _, l := range enc.Layers {
		xs = residualAttention{attention: l.SelfAttention.Attention, norm: l.SelfAttention.Norm}.self(g, xs)
		xs = residualFeedForward{ffn: l.FF.MLP, norm: l.FF.Norm}.forward(g, xs)
	}
	return xs
}

// maskedLMHidden applies the masked-LM transform layers (all but the output
// layer) to the hidden states at the given positions.
func maskedLMHidden(g *graph, m *bert.ModelForMaskedLM, hs []mat.Tensor, positions []int) []mat.Tensor {
	at := make([]mat.Tensor, len(positions))
	for k, p := range positions {
		at[k] = hs[p]
	}
	return g.modules(m.Layers[:len(m.Layers)-1], at)
}
