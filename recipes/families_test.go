package recipes_test

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/newtokens"
	"github.com/gopeft/gopeft/recipes"
	"github.com/gopeft/gopeft/registry"
	"github.com/gopeft/gopeft/trainabletokens"
	"github.com/gopeft/gopeft/tying"
)

// layoutAndGroups is what registry and tying find in m (an adapter's base
// model: its tables and tied copies).
func layoutAndGroups(t *testing.T, m nn.Model) (*registry.Layout, []*tying.Group) {
	t.Helper()
	l, err := registry.Describe(m)
	require.NoError(t, err)
	gs, err := tying.Detect(l)
	require.NoError(t, err)
	return l, gs
}

// The new-token pipeline on every family cybertron converts beyond BERT
// and BART: add the corpus' made-up words, train only their rows, save the
// adapter, load it on a fresh model, merge — with the family's tied tables.

// adapterConfig reads dir/adapter_config.json.
func adapterConfig(t *testing.T, dir string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, trainabletokens.ConfigFile))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(raw, &cfg))
	return cfg
}

// safetensorsKeys returns the tensor names of a safetensors file.
func safetensorsKeys(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Greater(t, len(data), 8)
	n := binary.LittleEndian.Uint64(data[:8])
	require.LessOrEqual(t, int(n), len(data)-8)
	var header map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data[8:8+n], &header))
	var keys []string
	for k := range header {
		if k != "__metadata__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// s2sFamily is a converted Marian or Pegasus with the new words added.
type s2sFamily struct {
	m   *bart.ModelForConditionalGeneration
	tok *newtokens.Tokenizer
	ids []int
	eos int
}

func newS2SFamily(t *testing.T, name string) s2sFamily {
	t.Helper()
	m := testmodels.Seq2Seq(t, name)
	tok, err := newtokens.LoadTokenizer(testmodels.Dir(name))
	require.NoError(t, err)
	words, err := testmodels.ReadLines("new_tokens.txt")
	require.NoError(t, err)
	res, err := newtokens.AddTokens(m, tok, words, nil)
	require.NoError(t, err)
	return s2sFamily{m: m, tok: tok, ids: res.IDs, eos: m.Bart.Config.EosTokenID}
}

// examples encodes pairs as Marian and Pegasus do (recipes.Seq2SeqExamples
// through EncodeSpecial): no <s>, a final </s>.
func (f s2sFamily) examples(t *testing.T, file string) []finetune.Seq2SeqExample {
	t.Helper()
	pairs, err := testmodels.ReadPairs(file)
	require.NoError(t, err)
	out, err := recipes.Seq2SeqExamples(f.tok, pairs)
	require.NoError(t, err)
	for _, ex := range out {
		require.Equal(t, f.eos, ex.Source[len(ex.Source)-1])
		require.Equal(t, f.eos, ex.Target[len(ex.Target)-1])
	}
	first, _, err := f.tok.Encode(pairs[0][0])
	require.NoError(t, err)
	require.Equal(t, append(first, f.eos), out[0].Source, "no <s> in front")
	return out
}

// teacherForced returns cybertron's inference logits (Encoder.Encode,
// Decoder.Decode, Projection) of every example, inside tm.Do when tm is not
// nil (the tied lm_head then holds the active rows).
func teacherForced(t *testing.T, m *bart.ModelForConditionalGeneration, tm *trainabletokens.Model, exs []finetune.Seq2SeqExample) []mat.Matrix {
	t.Helper()
	var out []mat.Matrix
	run := func() error {
		for _, ex := range exs {
			decIn := append([]int{m.Bart.Config.DecoderStartTokenID}, ex.Target[:len(ex.Target)-1]...)
			dec, _ := m.Bart.Decoder.Decode(m.Bart.Encoder.Encode(ex.Source), decIn, nil, 1)
			cols := m.Projection.Forward(dec...)
			v := len(cols[0].Value().Data().F64())
			data := make([]float64, 0, v*len(cols))
			for _, c := range cols {
				data = append(data, c.Value().Data().F64()...)
			}
			// column-major data: one row per position, transposed below
			out = append(out, mat.NewDense[float64](mat.WithShape(len(cols), v), mat.WithBacking(data)).T())
		}
		return nil
	}
	if tm == nil {
		require.NoError(t, run())
	} else {
		require.NoError(t, tm.Do(run))
	}
	return out
}

// newWordAccuracy is the teacher-forced top-1 accuracy at the target
// positions that hold a new word.
func newWordAccuracy(exs []finetune.Seq2SeqExample, logits []mat.Matrix, ids []int) float64 {
	isNew := map[int]bool{}
	for _, id := range ids {
		isNew[id] = true
	}
	ok, n := 0, 0
	for i, ex := range exs {
		for j, target := range ex.Target {
			if !isNew[target] {
				continue
			}
			col := logits[i].ExtractColumn(j).Data().F64()
			best := 0
			for k, v := range col {
				if v > col[best] {
					best = k
				}
			}
			if best == target {
				ok++
			}
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(ok) / float64(n)
}

func requireSameBits(t *testing.T, want, got []mat.Matrix) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i].Data().F64(), got[i].Data().F64()
		require.Len(t, g, len(w))
		differ, worst := 0, 0.0
		for j := range w {
			if w[j] != g[j] {
				differ++
				worst = max(worst, abs(w[j]-g[j]))
			}
		}
		require.Zero(t, differ, "example %d: %d of %d logits differ (max |diff| %.3g)", i, differ, len(w), worst)
	}
}

func TestSeq2SeqFamiliesNewTokens(t *testing.T) {
	for _, name := range []string{testmodels.MarianName, testmodels.PegasusName} {
		t.Run(name, func(t *testing.T) {
			f := newS2SFamily(t, name)
			train := f.examples(t, "seq2seq_train.tsv")
			eval := f.examples(t, "seq2seq_eval.tsv")
			base := teacherForced(t, f.m, nil, eval)
			accBefore := newWordAccuracy(eval, base, f.ids)

			tm, err := trainabletokens.New(f.m, trainabletokens.Config{TokenIndices: f.ids}, "")
			require.NoError(t, err)

			// registry and tying: model.shared is the input table of the
			// encoder and the decoder; lm_head is its value copy.
			l, gs := layoutAndGroups(t, f.m)
			require.NotNil(t, l.Input())
			assert.Equal(t, "model.shared", l.Input().HFPath)
			assert.Contains(t, l.Input().Names, "model.encoder.embed_tokens")
			assert.Contains(t, l.Input().Names, "model.decoder.embed_tokens")
			g := gs[0]
			assert.Len(t, g.Aliases, 3, "the table and the encoder's and decoder's Shared wrappers")
			require.Len(t, g.Copies, 1)
			assert.Equal(t, "lm_head", g.Copies[0].Output.HFPath)
			assert.Zero(t, g.Copies[0].MaxAbsDiff)
			assert.Empty(t, g.Untied)

			// An untrained adapter is a bit-exact no-op.
			requireSameBits(t, base, teacherForced(t, f.m, tm, eval))

			losses, err := recipes.TrainSeq2Seq(f.m, tm, train, recipes.TrainOptions{Epochs: 6, LR: 0.05, Seed: 1, Quiet: true})
			require.NoError(t, err)
			want := teacherForced(t, f.m, tm, eval)
			accAfter := newWordAccuracy(eval, want, f.ids)
			t.Logf("steps %d, loss %.3f -> %.3f; held-out new-word accuracy %.2f -> %.2f",
				len(losses), losses[0], losses[len(losses)-1], accBefore, accAfter)
			assert.Less(t, losses[len(losses)-1], 0.7*losses[0], "loss falls")
			assert.Greater(t, accAfter, accBefore+0.3, "held-out accuracy at the new words rises")

			// Greedy generation runs through the family's conventions
			// (EncodeSpecial without <s>, decoding from <pad>); after this
			// short training only a few copy pairs come back exactly
			// (logged), so only non-empty output is asserted.
			pairs, err := testmodels.ReadPairs("seq2seq_eval.tsv")
			require.NoError(t, err)
			copies, exact := 0, 0
			for _, p := range pairs {
				if !strings.HasPrefix(p[0], "copy :") && !strings.HasPrefix(p[0], "repeat :") {
					continue
				}
				got, err := recipes.Generate(f.m, tm, f.tok, p[0])
				require.NoError(t, err)
				require.NotEmpty(t, strings.TrimSpace(got), p[0])
				copies++
				if strings.TrimSpace(got) == p[1] {
					exact++
				}
			}
			t.Logf("held-out copy/repeat pairs generated exactly: %d of %d", exact, copies)
			require.NotZero(t, copies)

			// PEFT files: PEFT's key set for the family's tied modules.
			dir := filepath.Join(t.TempDir(), "adapter")
			require.NoError(t, tm.Save(dir, "", trainabletokens.SaveOptions{}))
			assert.Equal(t, []string{
				"base_model.model.lm_head.trainable_tokens_delta",
				"base_model.model.model.decoder.embed_tokens.trainable_tokens_delta",
				"base_model.model.model.encoder.embed_tokens.trainable_tokens_delta",
				"base_model.model.model.shared.trainable_tokens_delta",
			}, safetensorsKeys(t, filepath.Join(dir, trainabletokens.WeightsFile)))
			cfg := adapterConfig(t, dir)
			assert.Equal(t, "TRAINABLE_TOKENS", cfg["peft_type"])
			class := map[string]string{testmodels.MarianName: "MarianMTModel", testmodels.PegasusName: "PegasusForConditionalGeneration"}[name]
			module := map[string]string{testmodels.MarianName: "marian.modeling_marian", testmodels.PegasusName: "pegasus.modeling_pegasus"}[name]
			assert.Equal(t, map[string]any{"base_model_class": class, "parent_library": "transformers.models." + module}, cfg["auto_mapping"])

			// Load on a fresh model (the same words added) gives the same
			// logits bit for bit; merging into a plain model too.
			fresh := newS2SFamily(t, name)
			require.Equal(t, f.ids, fresh.ids)
			tm2, err := trainabletokens.Load(fresh.m, dir, "")
			require.NoError(t, err)
			requireSameBits(t, want, teacherForced(t, fresh.m, tm2, eval))
			plain, err := tm2.MergeAndUnload(true)
			require.NoError(t, err)
			requireSameBits(t, want, teacherForced(t, plain.(*bart.ModelForConditionalGeneration), nil, eval))
		})
	}
}

func TestELECTRANewTokens(t *testing.T) {
	m := testmodels.ELECTRA(t)
	require.Equal(t, "electra", m.Bert.Config.ModelType)
	words, err := testmodels.ReadLines("new_tokens.txt")
	require.NoError(t, err)
	res, err := newtokens.AddTokens(m, nil, words, nil)
	require.NoError(t, err)
	trainLines, err := testmodels.ReadLines("mlm_train.txt")
	require.NoError(t, err)
	evalLines, err := testmodels.ReadLines("mlm_eval.txt")
	require.NoError(t, err)
	trainEx, err := recipes.MaskOccurrences(res.Tokenizer, trainLines, res.IDs)
	require.NoError(t, err)
	evalEx, err := recipes.MaskOccurrences(res.Tokenizer, evalLines, res.IDs)
	require.NoError(t, err)

	base, err := recipes.EvaluateMLM(m, nil, evalEx)
	require.NoError(t, err)
	predictBits := func() [][]float64 { // cybertron's inference at every [MASK] of the held-out set
		var out [][]float64
		for _, ex := range evalEx[:8] {
			p := m.Predict(ex.Tokens)
			for _, pos := range sortedPositions(ex.Targets) {
				out = append(out, p[pos].Value().Data().F64())
			}
		}
		return out
	}
	before := predictBits()
	tm, err := trainabletokens.New(m, trainabletokens.Config{TokenIndices: res.IDs}, "")
	require.NoError(t, err)
	var during [][]float64
	require.NoError(t, tm.Do(func() error { during = predictBits(); return nil }))
	require.Equal(t, before, during, "an untrained adapter leaves cybertron's logits bit-identical")
	// tying: the generator head is a value copy of the word embeddings.
	_, gs := layoutAndGroups(t, m)
	g := gs[0]
	require.Len(t, g.Copies, 1)
	assert.Equal(t, "Layers.3", g.Copies[0].Output.Path)
	assert.Empty(t, g.Untied)
	untrained, err := recipes.EvaluateMLM(m, tm, evalEx)
	require.NoError(t, err)
	assert.Equal(t, base, untrained, "an untrained adapter is a no-op")

	losses, err := recipes.TrainMLM(m, tm, trainEx, recipes.TrainOptions{Epochs: 3, LR: 0.05, Seed: 1, Quiet: true})
	require.NoError(t, err)
	after, err := recipes.EvaluateMLM(m, tm, evalEx)
	require.NoError(t, err)
	t.Logf("steps %d, loss %.3f -> %.3f; eval before: %v; after: %v", len(losses), losses[0], losses[len(losses)-1], base, after)
	assert.Less(t, after.Loss, base.Loss-1.0, "held-out loss falls by more than 1 nat")
	assert.Greater(t, after.Accuracy, base.Accuracy+0.3, "held-out accuracy at the new words rises")

	// save → load on a fresh model → merge: the same held-out evaluation.
	dir := filepath.Join(t.TempDir(), "adapter")
	require.NoError(t, tm.Save(dir, "", trainabletokens.SaveOptions{}))
	// PEFT's keys for ElectraForMaskedLM: the table and its tied generator
	// head, under ELECTRA's module paths; auto_mapping names the class.
	assert.Equal(t, []string{
		"base_model.model.electra.embeddings.word_embeddings.trainable_tokens_delta",
		"base_model.model.generator_lm_head.trainable_tokens_delta",
	}, safetensorsKeys(t, filepath.Join(dir, trainabletokens.WeightsFile)))
	assert.Equal(t, map[string]any{"base_model_class": "ElectraForMaskedLM", "parent_library": "transformers.models.electra.modeling_electra"},
		adapterConfig(t, dir)["auto_mapping"])
	fresh := testmodels.ELECTRA(t)
	res2, err := newtokens.AddTokens(fresh, nil, words, nil)
	require.NoError(t, err)
	require.Equal(t, res.IDs, res2.IDs)
	tm2, err := trainabletokens.Load(fresh, dir, "")
	require.NoError(t, err)
	loaded, err := recipes.EvaluateMLM(fresh, tm2, evalEx)
	require.NoError(t, err)
	assert.Equal(t, after, loaded)
	plain, err := tm2.MergeAndUnload(true)
	require.NoError(t, err)
	merged, err := recipes.EvaluateMLM(plain.(*bert.ModelForMaskedLM), nil, evalEx)
	require.NoError(t, err)
	assert.Equal(t, after, merged)
}

// TestFamilyAdaptersPassPEFTChecks runs the PEFT-rules check of
// testdata/peft/make_fixtures.py (which modules PEFT wraps and ties for the
// family's transformers class, missing and unexpected keys, ids within the
// vocabulary) on adapters saved from each family. Skipped without
// /usr/bin/python3 and torch.
func TestFamilyAdaptersPassPEFTChecks(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("no %s with torch: %v", py, err)
	}
	script := filepath.Join(testmodels.Dir("peft"), "make_fixtures.py")
	args := []string{script}
	for _, c := range []struct {
		name  string
		model nn.Model
	}{
		{testmodels.ELECTRAName, testmodels.ELECTRA(t)},
		{testmodels.MarianName, testmodels.Marian(t)},
		{testmodels.PegasusName, testmodels.Pegasus(t)},
	} {
		tm, err := trainabletokens.New(c.model, trainabletokens.Config{TokenIndices: []int{5, 100, 1000}}, "")
		require.NoError(t, err)
		dir := filepath.Join(t.TempDir(), c.name)
		require.NoError(t, tm.Save(dir, "", trainabletokens.SaveOptions{BaseModelNameOrPath: "x"}))
		args = append(args, "--check", dir, "--model", testmodels.Dir(c.name))
	}
	out, err := exec.Command(py, args...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, 3, strings.Count(string(out), "ok PEFT rules"), "%s", out)
	assert.Contains(t, string(out), "wraps ['electra.embeddings.word_embeddings'], tied ['generator_lm_head'], 2 keys")
	assert.Equal(t, 2, strings.Count(string(out), "wraps ['model.shared'], tied ['lm_head', 'model.decoder.embed_tokens', 'model.encoder.embed_tokens'], 4 keys"), "%s", out)
}

func sortedPositions(targets map[int]int) []int {
	var ps []int
	for p := range targets {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	return ps
}
