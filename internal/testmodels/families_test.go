package testmodels

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/converter"
	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	bartgen "github.com/nlpodyssey/cybertron/pkg/tasks/textgeneration/bart"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/activation"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/nlpodyssey/spago/nn/normalization/layernorm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/models"
)

// hfConfig reads testdata/<name>/config.json.
func hfConfig(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Dir(name), "config.json"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(data, &cfg))
	return cfg
}

func ffnActivation(t *testing.T, ff bart.ResidualNormFeedForward) activation.Activation {
	t.Helper()
	var b *bart.FeedForwardBlock
	switch v := ff.(type) {
	case *bart.PostNormFeedForwardBlock:
		b = v.FeedForwardBlock
	case *bart.PreNormFeedForwardBlock:
		b = v.FeedForwardBlock
	default:
		t.Fatalf("feed-forward block %T", ff)
	}
	return b.FFN[1].(*activation.Model).Activation
}

// The tiny Marian and Pegasus carry their families' real names and flags,
// and cybertron's own converter turns them into its BART with those flags.
func TestSeq2SeqFamiliesConvert(t *testing.T) {
	for _, tt := range []struct {
		name                      string
		arch                      string
		preNorm, finalNorm        bool
		act                       activation.Activation
		pad, eos, start, vocabLen int
	}{
		{MarianName, "MarianMTModel", false, false, activation.Swish, 1097, 0, 1097, 1098},
		{PegasusName, "PegasusForConditionalGeneration", true, true, activation.ReLU, 0, 1, 0, 1100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := hfConfig(t, tt.name)
			assert.Equal(t, []any{tt.arch}, raw["architectures"])
			m := Seq2Seq(t, tt.name)
			cfg := m.Bart.Config
			assert.Equal(t, tt.name[:len(tt.name)-len("-tiny")], cfg.ModelType)
			assert.Equal(t, tt.vocabLen, cfg.VocabSize)
			assert.Equal(t, tt.pad, cfg.PadTokenID)
			assert.Equal(t, tt.eos, cfg.EosTokenID)
			assert.Equal(t, tt.start, cfg.DecoderStartTokenID)
			assert.True(t, cfg.ScaleEmbedding, "scale_embedding")
			assert.True(t, cfg.StaticPositionEmbeddings, "static_position_embeddings")
			assert.False(t, cfg.NormalizeEmbedding, "normalize_embedding (no layernorm_embedding)")
			assert.Equal(t, tt.preNorm, cfg.NormalizeBefore, "normalize_before")
			assert.Equal(t, tt.finalNorm, cfg.FinalLayerNorm, "add_final_layer_norm")
			assert.Zero(t, cfg.Cybertron.PositionalEncoderOffset, "no BART position offset")
			assert.Equal(t, tt.act, ffnActivation(t, m.Bart.Encoder.Layers[0].FF))
			if tt.preNorm {
				assert.IsType(t, &bart.PreNormSelfAttentionBlock{}, m.Bart.Encoder.Layers[0].SelfAttention)
			} else {
				assert.IsType(t, &bart.PostNormSelfAttentionBlock{}, m.Bart.Encoder.Layers[0].SelfAttention)
			}

			hf := hfParams(t, tt.name)
			shared := hf.Get("model.shared.weight")
			for _, k := range []string{"model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"} {
				require.Equal(t, shared, hf.Get(k), "%s tied to model.shared.weight in the HF file", k)
			}
			assert.Nil(t, hf.Get("model.encoder.layernorm_embedding.weight"), "no layernorm_embedding in the family")
			require.Equal(t, shared, rows(t, m.Bart.Embeddings))
			require.Equal(t, shared, mat.Data[float32](m.Projection.W.Value()), "lm_head: a value copy of the table")
			bias := hf.Get("final_logits_bias")
			require.Len(t, bias, cfg.VocabSize)
			require.Equal(t, bias, mat.Data[float32](m.Projection.B.Value()), "final_logits_bias")

			// cybertron computes the static positions itself; they equal the
			// sinusoidal table of the HF file (which it does not read).
			hfPos := hf.Get("model.encoder.embed_positions.weight")
			got := rows(t, m.Bart.Encoder.Embeddings.PositionalEncoder.Embeddings)
			require.Len(t, got, len(hfPos))
			worst := 0.0
			for i := range hfPos {
				worst = math.Max(worst, math.Abs(float64(hfPos[i]-got[i])))
			}
			assert.Less(t, worst, 1e-4, "sinusoidal positions")

			if tt.finalNorm {
				require.Equal(t, hf.Get("model.encoder.layer_norm.weight"), mat.Data[float32](m.Bart.Encoder.LayerNorm.W.Value()))
				require.Equal(t, hf.Get("model.decoder.layer_norm.bias"), mat.Data[float32](m.Bart.Decoder.LayerNorm.B.Value()))
			}
			// Every used param comes from the checkpoint: only the unused
			// (flag off) norms stay zero.
			unused := map[*nn.Param]bool{}
			if !tt.finalNorm {
				for _, ln := range []*layernorm.Model{m.Bart.Encoder.LayerNorm, m.Bart.Decoder.LayerNorm} {
					unused[ln.W], unused[ln.B] = true, true
				}
			}
			for _, ln := range []*layernorm.Model{m.Bart.Encoder.Embeddings.Norm, m.Bart.Decoder.Embeddings.Norm} {
				unused[ln.W], unused[ln.B] = true, true
			}
			assert.Equal(t, unused, zeroParams(m))
		})
	}
}

// cybertron's text-generation loader serves the converted families.
func TestSeq2SeqFamiliesTextGeneration(t *testing.T) {
	for _, name := range []string{MarianName, PegasusName} {
		t.Run(name, func(t *testing.T) {
			tg, err := bartgen.LoadTextGeneration(ConvertedDir(t, name))
			require.NoError(t, err)
			require.NotNil(t, tg.Model)
		})
	}
}

// The tiny ELECTRA generator: cybertron's converter alone panics on it;
// models.ConvertELECTRA converts the encoder with it and fills the head.
func TestELECTRAConvert(t *testing.T) {
	raw := hfConfig(t, ELECTRAName)
	assert.Equal(t, []any{"ElectraForMaskedLM"}, raw["architectures"])
	assert.Equal(t, "electra", raw["model_type"])

	dir := filepath.Join(t.TempDir(), ELECTRAName)
	require.NoError(t, copyHFFiles(ELECTRAName, dir))
	func() {
		defer func() {
			assert.NotNil(t, recover(), "cybertron's converter was expected to panic on ElectraForMaskedLM")
		}()
		quietZerolog()
		_ = converter.Convert[float32](dir, true)
	}()

	m := ELECTRA(t)
	assert.Equal(t, "electra", m.Bert.Config.ModelType)
	hf := hfParams(t, ELECTRAName)
	H, V := m.Bert.Config.HiddenSize, m.Bert.Config.VocabSize
	word := hf.Get("electra.embeddings.word_embeddings.weight")
	require.Len(t, word, V*H)
	require.Equal(t, word, hf.Get("generator_lm_head.weight"), "generator_lm_head tied to the word embeddings in the HF file")
	assert.Nil(t, hf.Get("bert.embeddings.word_embeddings.weight"))
	require.Equal(t, word[:(V-1)*H], rows(t, m.Bert.Embeddings.Tokens)[:(V-1)*H], "BERT's last-row quirk applies")
	require.Equal(t, hf.Get("electra.embeddings.position_embeddings.weight"), rows(t, m.Bert.Embeddings.Positions))
	head := m.Layers
	require.Equal(t, hf.Get("generator_predictions.dense.weight"), mat.Data[float32](head[0].(*linear.Model).W.Value()))
	require.Equal(t, hf.Get("generator_predictions.LayerNorm.bias"), mat.Data[float32](head[2].(*layernorm.Model).B.Value()))
	require.Equal(t, word, mat.Data[float32](head[3].(*linear.Model).W.Value()))
	require.Equal(t, hf.Get("generator_lm_head.bias"), mat.Data[float32](head[3].(*linear.Model).B.Value()))
	// The pooler is not in ELECTRA; everything else comes from the file.
	pooler := map[*nn.Param]bool{}
	nn.ForEachParam(m.Bert.Pooler, func(p *nn.Param) { pooler[p] = true })
	assert.Equal(t, pooler, zeroParams(m))
}

// ELECTRA checkpoints that cybertron cannot serve fail with an error that
// names ELECTRA, never a panic.
func TestELECTRAUnsupportedCheckpoints(t *testing.T) {
	for _, tt := range []struct {
		name  string
		patch func(cfg map[string]any)
		want  string
	}{
		{"discriminator", func(cfg map[string]any) { cfg["architectures"] = []string{"ElectraForPreTraining"} }, `ELECTRA architecture "ElectraForPreTraining"`},
		{"no architectures", func(cfg map[string]any) { delete(cfg, "architectures") }, `ELECTRA architecture ""`},
		{"embeddings_project", func(cfg map[string]any) { cfg["embedding_size"] = 16 }, "ELECTRA with embedding_size 16"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), ELECTRAName)
			require.NoError(t, copyHFFiles(ELECTRAName, dir))
			cfg := hfConfig(t, ELECTRAName)
			tt.patch(cfg)
			data, err := json.Marshal(cfg)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644))
			err = models.Convert(dir, true)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NoFileExists(t, filepath.Join(dir, SpagoModelFile))
		})
	}
}
