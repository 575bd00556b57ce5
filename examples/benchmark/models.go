package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/walk"
)

// Sizes of the synthetic models (the configuration).
const (
	hidden       = 256
	layers       = 4
	heads        = 4
	intermediate = 1024
	seqLen       = 64
	batchSize    = 8
	masksPerSeq  = 10
)

// vocabTerms is [PAD] [UNK] [CLS] [SEP] [MASK], regular words, and the
// last trainable ids named <tt0>…
func vocabTerms(v, k int) []string {
	terms := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	for i := len(terms); i < v-k; i++ {
		terms = append(terms, fmt.Sprintf("w%d", i))
	}
	for i := 0; i < k; i++ {
		terms = append(terms, fmt.Sprintf("<tt%d>", i))
	}
	return terms
}

// initialize fills the model as the baseline did: embedding rows N(0, 0.1),
// linear layers Xavier-uniform with zero bias, layer norms weight 1 bias 0.
func initialize(model any, rng *rand.Rand) {
	walk.Walk(model, func(n walk.Node) bool {
		switch v := n.Value.(type) {
		case *bart.PositionalEncoder:
			return false
		case *linear.Model:
			w := mat.Data[float32](v.W.Value())
			s := v.W.Value().Shape()
			a := math.Sqrt(6 / float64(s[0]+s[1]))
			for i := range w {
				w[i] = float32(a * (2*rng.Float64() - 1))
			}
			clear(mat.Data[float32](v.B.Value()))
		case *layernorm.Model:
			for i, w := 0, mat.Data[float32](v.W.Value()); i < len(w); i++ {
				w[i] = 1
			}
			clear(mat.Data[float32](v.B.Value()))
		case *embedding.Model:
			for _, w := range v.Weights {
				for i, d := 0, mat.Data[float32](w.Value()); i < len(d); i++ {
					d[i] = float32(0.1 * rng.NormFloat64())
				}
			}
			return false
		}
		return true
	})
}

// copyTable makes out's weight a copy of the table (a converted checkpoint
// with tied weights) and zeroes its bias.
func copyTable(out *linear.Model, e *embedding.Model) {
	w := mat.Data[float32](out.W.Value())
	for id, r := range e.Weights {
		copy(w[id*e.Dim:(id+1)*e.Dim], mat.Data[float32](r.Value()))
	}
	clear(mat.Data[float32](out.B.Value()))
}

// bertSize is the shape of a synthetic BERT.
type bertSize struct{ hidden, layers, heads, intermediate int }

// bertS is the small BERT; bertBase is BERT-base's shape.
var (
	bertS    = bertSize{hidden, layers, heads, intermediate}
	bertBase = bertSize{768, 12, 12, 3072}
)

// newBERT builds the synthetic masked-LM BERT: vocabulary v, the last k
// ids trainable tokens.
func newBERT(v, k int, seed uint64) *bert.ModelForMaskedLM {
	return newBERTSized(bertS, v, k, seed)
}

// newBERTSized is newBERT at another size.
func newBERTSized(sz bertSize, v, k int, seed uint64) *bert.ModelForMaskedLM {
	cfg := bert.Config{
		HiddenSize: sz.hidden, EmbeddingsSize: sz.hidden, IntermediateSize: sz.intermediate,
		NumAttentionHeads: sz.heads, NumHiddenLayers: sz.layers, MaxPositionEmbeddings: 512,
		TypeVocabSize: 2, VocabSize: v, HiddenAct: "gelu",
	}
	m := bert.New[float32](cfg)
	m.Embeddings.Vocab = vocabulary.New(vocabTerms(v, k))
	mlm := bert.NewModelForMaskedLM[float32](m)
	initialize(mlm, rand.New(rand.NewPCG(seed, 1)))
	copyTable(mlm.Layers[3].(*linear.Model), m.Embeddings.Tokens)
	return mlm
}

// bertBatch is 8 sequences of [CLS] + 62 content tokens + [SEP]; content
// is 90% regular words and 10% trainable ids; 10 content positions per
// sequence are masked (80 masked positions).
func bertBatch(v int, ttIDs []int, term func(int) string, seed uint64) []finetune.MaskedExample {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []finetune.MaskedExample
	for range batchSize {
		ids := make([]int, seqLen)
		ids[0], ids[seqLen-1] = 2, 3
		for i := 1; i < seqLen-1; i++ {
			if rng.Float64() < 0.1 {
				ids[i] = ttIDs[rng.IntN(len(ttIDs))]
			} else {
				ids[i] = 5 + rng.IntN(v-len(ttIDs)-6)
			}
		}
		tokens := make([]string, seqLen)
		for i, id := range ids {
			tokens[i] = term(id)
		}
		ex := finetune.MaskedExample{Tokens: tokens, Targets: map[int]int{}}
		for _, p := range rng.Perm(seqLen - 2)[:masksPerSeq] {
			ex.Targets[p+1] = ids[p+1]
			ex.Tokens[p+1] = "[MASK]"
		}
		out = append(out, ex)
	}
	return out
}

// newBART builds a BART of similar size: vocabulary v, d_model 256, 2
// encoder and 2 decoder layers (4 heads, FFN 1024), shared table copied
// into lm_head.
func newBART(v int, seed uint64) *bart.ModelForConditionalGeneration {
	cfg := bart.Config{
		VocabSize: v, DModel: hidden, EncoderLayers: 2, DecoderLayers: 2,
		EncoderAttentionHeads: heads, DecoderAttentionHeads: heads,
		EncoderFFNDim: intermediate, DecoderFFNDim: intermediate,
		MaxPositionEmbeddings: 512, ActivationFunction: "gelu",
		BosTokenID: 0, PadTokenID: 1, EosTokenID: 2, DecoderStartTokenID: 2,
		NormalizeEmbedding: true, MaxLength: 64, NumBeams: 1,
	}
	cfg.Cybertron.PositionalEncoderOffset = 2
	m := bart.NewModelForConditionalGeneration[float32](bart.New[float32](cfg))
	initialize(m, rand.New(rand.NewPCG(seed, 2)))
	copyTable(m.Projection, m.Bart.Embeddings)
	return m
}

// bartTarget is the target length of the synthetic seq2seq batch (source
// 64 tokens, so 8 × (64 + 16) tokens and 128 predicted positions).
const bartTarget = 16

func bartBatch(v int, ttIDs []int, seed uint64) []finetune.Seq2SeqExample {
	rng := rand.New(rand.NewPCG(seed, 9))
	draw := func() int {
		if rng.Float64() < 0.1 {
			return ttIDs[rng.IntN(len(ttIDs))]
		}
		return 3 + rng.IntN(v-len(ttIDs)-4)
	}
	var out []finetune.Seq2SeqExample
	for range batchSize {
		src := []int{0}
		for len(src) < seqLen-1 {
			src = append(src, draw())
		}
		src = append(src, 2)
		tgt := []int{0}
		for len(tgt) < bartTarget-1 {
			tgt = append(tgt, draw())
		}
		tgt = append(tgt, 2)
		out = append(out, finetune.Seq2SeqExample{Source: src, Target: tgt})
	}
	return out
}

// lastIDs returns the last k ids of a vocabulary of v.
func lastIDs(v, k int) []int {
	ids := make([]int, k)
	for i := range ids {
		ids[i] = v - k + i
	}
	return ids
}

// tokenRows returns every row of a table (full fine-tuning).
func tokenRows(e *embedding.Model) []*nn.Param { return append([]*nn.Param(nil), e.Weights...) }
