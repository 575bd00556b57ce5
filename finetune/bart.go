package finetune

import (
	"fmt"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/embedding"
)

// EncodeBART is the training-safe equivalent of m.Encoder.Encode(ids): the
// encoder's hidden states, one dim×1 column per token.
func EncodeBART(m *bart.Model, ids []int) ([]mat.Tensor, error) {
	enc, err := bartEncoderOf(training, m)
	if err != nil {
		return nil, err
	}
	if err := enc.checkIDs("source", ids); err != nil {
		return nil, err
	}
	return enc.forward(newGraph(), ids), nil
}

// DecodeBART is the training-safe equivalent of
// m.Decoder.Decode(encoded, ids, nil, 1): the decoder's hidden states for
// the decoder input ids (teacher forcing; causal self-attention, positions
// from 0), attending to the encoder states.
func DecodeBART(m *bart.Model, encoded []mat.Tensor, ids []int) ([]mat.Tensor, error) {
	dec, err := bartDecoderOf(training, m)
	if err != nil {
		return nil, err
	}
	if len(encoded) == 0 {
		return nil, invalidf("no encoder states")
	}
	if err := dec.checkIDs("decoder input", ids); err != nil {
		return nil, err
	}
	g := newGraph()
	g.trainable = true // the encoder states come from outside and may require gradients
	return dec.forward(g, encoded, ids), nil
}

// ConditionalGenerationLogits returns the logits (vocab×len(decoderInput))
// of the decoder at every position of decoderInput, given the source ids.
// A nil logits uses the model's own Projection. An optional Forward picks
// the forward pass (default ForwardAuto).
func ConditionalGenerationLogits(m *bart.ModelForConditionalGeneration, source, decoderInput []int, logits LogitsFunc, fwd ...Forward) (mat.Tensor, error) {
	f, err := oneForward(fwd)
	if err != nil {
		return nil, err
	}
	s, err := seq2SeqOf(training, m)
	if err != nil {
		return nil, err
	}
	if err := s.enc.checkIDs("source", source); err != nil {
		return nil, err
	}
	if err := s.dec.checkIDs("decoder input", decoderInput); err != nil {
		return nil, err
	}
	if logits == nil {
		logits = LinearLogits(m.Projection)
	}
	if h := fusedSeq2Seq(f, s, [][]int{source}, [][]int{decoderInput}, nil); h != nil {
		return logits(h), nil
	}
	g := newGraph()
	return logits(columns(s.dec.forward(g, s.enc.forward(g, source), decoderInput))), nil
}

// bartEmbedder is one side's embedding layer: the shared token table plus
// the side's positions, scale and norm.
type bartEmbedder struct {
	e     *bart.Embeddings
	table *embedding.Model
}

// maxLen is the longest sequence the positional table can serve.
func (b bartEmbedder) maxLen() int {
	return tableRows(b.e.PositionalEncoder.Embeddings) - b.e.PositionalEncoder.Config.Offset
}

// forward embeds ids at positions 0..len-1, as Embeddings.Encode(ids, 0):
// token row (times ScaleFactor if ScaleEmbedding) plus the positional row at
// position+Offset, then the layer norm if NormalizeEmbedding.
func (b bartEmbedder) forward(g *graph, ids []int) []mat.Tensor {
	pos := b.e.PositionalEncoder
	xs := make([]mat.Tensor, len(ids))
	for i, id := range ids {
		x := g.row(b.table, id)
		if b.e.Config.ScaleEmbedding {
			x = ag.ProdScalar(x, b.e.ScaleFactor)
		}
		xs[i] = ag.Add(x, g.row(pos.Embeddings, i+pos.Config.Offset))
	}
	if b.e.Config.NormalizeEmbedding {
		xs = g.layerNorms(b.e.Norm, xs, xs)
	}
	return xs
}

func (b bartEmbedder) checkIDs(what string, ids []int) error {
	if err := checkLength(what, len(ids), b.maxLen()); err != nil {
		return err
	}
	return checkIDs(what, ids, tableRows(b.table))
}

// bartEncoder is a validated view of a BART encoder.
type bartEncoder struct {
	bartEmbedder
	layers []bartEncoderLayer
	final  *bart.Encoder // LayerNorm applied at the end when Config.FinalLayerNorm
}

type bartEncoderLayer struct {
	self residualAttention
	ff   residualFeedForward
}

func (enc bartEncoder) forward(g *graph, ids []int) []mat.Tensor {
	xs := enc.bartEmbedder.forward(g, ids)
	for _, l := range enc.layers {
		xs = l.ff.forward(g, l.self.self(g, xs))
	}
	if enc.final.Config.FinalLayerNorm {
		xs = g.layerNorms(enc.final.LayerNorm, xs, xs)
	}
	return xs
}

// bartDecoder is a validated view of a BART decoder.
type bartDecoder struct {
	bartEmbedder
	layers []bartDecoderLayer
	final  *bart.Decoder
}

type bartDecoderLayer struct {
	self, cross residualAttention
	ff          residualFeedForward
}

func (dec bartDecoder) forward(g *graph, encoded []mat.Tensor, ids []int) []mat.Tensor {
	// Every decoder layer's cross-attention heads read the encoder states,
	// once for keys and once for values.
	uses := 0
	for _, l := range dec.layers {
		uses += 2 * len(l.cross.attention.Heads)
	}
	memory, next := g.spread(encoded, uses), 0
	take := func() []mat.Tensor {
		next++
		return memory[next-1]
	}
	ys := dec.bartEmbedder.forward(g, ids)
	for _, l := range dec.layers {
		ys = l.ff.forward(g, l.cross.cross(g, l.self.self(g, ys), take))
	}
	if dec.final.Config.FinalLayerNorm {
		ys = g.layerNorms(dec.final.LayerNorm, ys, ys)
	}
	return ys
}

// seq2Seq is a validated view of a BART model for conditional generation.
type seq2Seq struct {
	enc bartEncoder
	dec bartDecoder
}

func seq2SeqOf(rd reading, m *bart.ModelForConditionalGeneration) (seq2Seq, error) {
	if m == nil || m.Projection == nil {
		return seq2Seq{}, unsupportedf("BART conditional-generation model or its Projection is nil")
	}
	enc, err := bartEncoderOf(rd, m.Bart)
	if err != nil {
		return seq2Seq{}, err
	}
	dec, err := bartDecoderOf(rd, m.Bart)
	if err != nil {
		return seq2Seq{}, err
	}
	return seq2Seq{enc: enc, dec: dec}, nil
}

func bartEncoderOf(rd reading, m *bart.Model) (bartEncoder, error) {
	if m == nil || m.Encoder == nil {
		return bartEncoder{}, unsupportedf("BART model or its Encoder is nil")
	}
	emb, err := bartEmbedderOf(rd, m, m.Encoder.Embeddings, "encoder")
	if err != nil {
		return bartEncoder{}, err
	}
	enc := bartEncoder{bartEmbedder: emb, final: m.Encoder}
	if m.Encoder.Config.FinalLayerNorm && m.Encoder.LayerNorm == nil {
		return bartEncoder{}, unsupportedf("BART encoder has FinalLayerNorm set but no LayerNorm")
	}
	for i, l := range m.Encoder.Layers {
		if l == nil {
			return bartEncoder{}, unsupportedf("BART encoder layer %d is nil", i)
		}
		self, err := bartSelfAttention(l.SelfAttention)
		if err != nil {
			return bartEncoder{}, fmt.Errorf("BART encoder layer %d: %w", i, err)
		}
		ff, err := bartFeedForward(l.FF)
		if err != nil {
			return bartEncoder{}, fmt.Errorf("BART encoder layer %d: %w", i, err)
		}
		enc.layers = append(enc.layers, bartEncoderLayer{self: self, ff: ff})
	}
	return enc, nil
}

func bartDecoderOf(rd reading, m *bart.Model) (bartDecoder, error) {
	if m == nil || m.Decoder == nil {
		return bartDecoder{}, unsupportedf("BART model or its Decoder is nil")
	}
	emb, err := bartEmbedderOf(rd, m, m.Decoder.Embeddings, "decoder")
	if err != nil {
		return bartDecoder{}, err
	}
	dec := bartDecoder{bartEmbedder: emb, final: m.Decoder}
	if m.Decoder.Config.FinalLayerNorm && m.Decoder.LayerNorm == nil {
		return bartDecoder{}, unsupportedf("BART decoder has FinalLayerNorm set but no LayerNorm")
	}
	for i, l := range m.Decoder.Layers {
		if l == nil {
			return bartDecoder{}, unsupportedf("BART decoder layer %d is nil", i)
		}
		self, err := bartSelfAttention(l.SelfAttention)
		if err != nil {
			return bartDecoder{}, fmt.Errorf("BART decoder layer %d: %w", i, err)
		}
		cross, err := bartCrossAttention(l.CrossAttention)
		if err != nil {
			return bartDecoder{}, fmt.Errorf("BART decoder layer %d: %w", i, err)
		}
		ff, err := bartFeedForward(l.FF)
		if err != nil {
			return bartDecoder{}, fmt.Errorf("BART decoder layer %d: %w", i, err)
		}
		dec.layers = append(dec.layers, bartDecoderLayer{self: self, cross: cross, ff: ff})
	}
	return dec, nil
}

// bartEmbedderOf checks one side's embeddings. The token table is the one
// cybertron uses (SharedEmbeddings); a gob-decoded model has it nil until it
// is re-wired, in which case the model's own Embeddings table is used.
func bartEmbedderOf(rd reading, m *bart.Model, e *bart.Embeddings, side string) (bartEmbedder, error) {
	if e == nil || e.PositionalEncoder == nil || e.PositionalEncoder.Embeddings == nil {
		return bartEmbedder{}, unsupportedf("BART %s embeddings or positional encoder is nil", side)
	}
	if e.Config.NormalizeEmbedding && e.Norm == nil {
		return bartEmbedder{}, unsupportedf("BART %s embeddings have NormalizeEmbedding set but no Norm", side)
	}
	if e.Config.ScaleEmbedding && e.ScaleFactor == nil {
		return bartEmbedder{}, unsupportedf("BART %s embeddings have ScaleEmbedding set but no ScaleFactor", side)
	}
	table := e.SharedEmbeddings.Model
	if table == nil {
		table = m.Embeddings
	}
	if err := checkTable(rd, "BART "+side+" token embeddings", table); err != nil {
		return bartEmbedder{}, err
	}
	if err := checkTable(rd, "BART "+side+" positional embeddings", e.PositionalEncoder.Embeddings); err != nil {
		return bartEmbedder{}, err
	}
	return bartEmbedder{e: e, table: table}, nil
}

// The block fields of BART layers are interfaces holding a Pre/PostNorm
// wrapper: a value in a freshly built model, a pointer in a gob-decoded one
// (cybertron registers the pointer types). Both are accepted.

func bartSelfAttention(b bart.ResidualNormSelfAttention) (residualAttention, error) {
	var blk *bart.SelfAttentionBlock
	pre := false
	switch v := b.(type) {
	case bart.PreNormSelfAttentionBlock:
		blk, pre = v.SelfAttentionBlock, true
	case *bart.PreNormSelfAttentionBlock:
		if v != nil {
			blk, pre = v.SelfAttentionBlock, true
		}
	case bart.PostNormSelfAttentionBlock:
		blk = v.SelfAttentionBlock
	case *bart.PostNormSelfAttentionBlock:
		if v != nil {
			blk = v.SelfAttentionBlock
		}
	default:
		return residualAttention{}, unsupportedf("self-attention block of type %T", b)
	}
	if blk == nil || blk.Norm == nil {
		return residualAttention{}, unsupportedf("self-attention block is incomplete")
	}
	if err := checkAttention(blk.Attention); err != nil {
		return residualAttention{}, err
	}
	return residualAttention{attention: blk.Attention, norm: blk.Norm, preNorm: pre}, nil
}

func bartCrossAttention(b bart.ResidualNormCrossAttention) (residualAttention, error) {
	var blk *bart.CrossAttentionBlock
	pre := false
	switch v := b.(type) {
	case bart.PreNormCrossAttentionBlock:
		blk, pre = v.CrossAttentionBlock, true
	case *bart.PreNormCrossAttentionBlock:
		if v != nil {
			blk, pre = v.CrossAttentionBlock, true
		}
	case bart.PostNormCrossAttentionBlock:
		blk = v.CrossAttentionBlock
	case *bart.PostNormCrossAttentionBlock:
		if v != nil {
			blk = v.CrossAttentionBlock
		}
	default:
		return residualAttention{}, unsupportedf("cross-attention block of type %T", b)
	}
	if blk == nil || blk.Norm == nil {
		return residualAttention{}, unsupportedf("cross-attention block is incomplete")
	}
	if err := checkAttention(blk.Attention); err != nil {
		return residualAttention{}, err
	}
	return residualAttention{attention: blk.Attention, norm: blk.Norm, preNorm: pre}, nil
}

func bartFeedForward(b bart.ResidualNormFeedForward) (residualFeedForward, error) {
	var blk *bart.FeedForwardBlock
	pre := false
	switch v := b.(type) {
	case bart.PreNormFeedForwardBlock:
		blk, pre = v.FeedForwardBlock, true
	case *bart.PreNormFeedForwardBlock:
		if v != nil {
			blk, pre = v.FeedForwardBlock, true
		}
	case bart.PostNormFeedForwardBlock:
		blk = v.FeedForwardBlock
	case *bart.PostNormFeedForwardBlock:
		if v != nil {
			blk = v.FeedForwardBlock
		}
	default:
		return residualFeedForward{}, unsupportedf("feed-forward block of type %T", b)
	}
	if blk == nil || blk.Norm == nil {
		return residualFeedForward{}, unsupportedf("feed-forward block is incomplete")
	}
	return residualFeedForward{ffn: blk.FFN, norm: blk.Norm, preNorm: pre}, nil
}
