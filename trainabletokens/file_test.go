package trainabletokens

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bart"
	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/registry"
)

// fixture returns testdata/peft/<name>, written by make_fixtures.py.
func fixture(name string) string { return filepath.Join(testmodels.Dir("peft"), name) }

// fixtureRow recomputes make_fixtures.py's row formula.
func fixtureRow(id, dim int) []float64 {
	out := make([]float64, dim)
	for j := range out {
		out[j] = float64(float32(float64((id*7+j*13)%41-20) / 3.0 * 0.01))
	}
	return out
}

func paramValues(p *nn.Param) []float64 {
	v := p.Value().(mat.Matrix)
	return rows.Get(v, 0, v.Size())
}

// bertTokens is an input that uses the given ids and masks two positions.
func bertTokens(m *bert.ModelForMaskedLM, ids ...int) []string {
	items := m.Bert.Embeddings.Vocab.Items()
	out := []string{"[CLS]"}
	for i, id := range ids {
		out = append(out, items[id])
		if i == 1 {
			out = append(out, "[MASK]")
		}
	}
	return append(out, "[MASK]", "[SEP]")
}

func bertOut(t *testing.T, tm *Model, m *bert.ModelForMaskedLM, tokens []string) map[int][]float64 {
	t.Helper()
	var out map[int][]float64
	require.NoError(t, tm.Do(func() error { out = predict(m, tokens); return nil }))
	return out
}

func bartOut(t *testing.T, tm *Model, m *bart.ModelForConditionalGeneration, src []int) map[int][]float64 {
	t.Helper()
	var out map[int][]float64
	require.NoError(t, tm.Do(func() error { out = bartLogits(m, src); return nil }))
	return out
}

// perturb moves every trainable row of the named adapter by a
// deterministic amount and syncs tied copies.
func perturb(t *testing.T, tm *Model, name string, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, tg := range tm.adapters[name].targets {
		for _, p := range tg.rows {
			vals := paramValues(p)
			for i := range vals {
				vals[i] += rng.NormFloat64() * 0.05
			}
			require.NoError(t, rows.Set(p.Value().(mat.Matrix), 0, vals))
		}
	}
	require.NoError(t, tm.Sync())
}

func TestLoadPEFTFixtures(t *testing.T) {
	t.Run("bert tied duplicate", func(t *testing.T) {
		m := testmodels.BERT(t)
		tm, err := Load(m, fixture("bert-tiny"), "")
		require.NoError(t, err)
		assert.Equal(t, []string{"default"}, tm.Adapters())
		assert.Equal(t, []string{"default"}, tm.Active())
		cfg, err := tm.Config("default")
		require.NoError(t, err)
		assert.Equal(t, Config{TokenIndices: []int{200, 5, 100, 7}, TargetRegex: "bert.embeddings.word_embeddings"}, cfg)
		rs, err := tm.Rows("default", "")
		require.NoError(t, err)
		dec := m.Layers[3].(*linear.Model).W.Value().(mat.Matrix)
		for k, id := range cfg.TokenIndices {
			assert.Equal(t, fixtureRow(id, 32), paramValues(rs[k]), "row of token %d", id)
			assert.Same(t, rs[k], m.Bert.Embeddings.Tokens.Weights[id])
			assert.Equal(t, fixtureRow(id, 32), rows.Get(dec, id, 32), "tied MLM decoder row %d", id)
		}
		// The same rows set by hand give bit-identical predictions.
		ref := testmodels.BERT(t)
		rtm, err := New(ref, Config{TokenIndices: cfg.TokenIndices}, "")
		require.NoError(t, err)
		for k, p := range rtm.TrainableParams() {
			require.NoError(t, rows.Set(p.Value().(mat.Matrix), 0, fixtureRow(cfg.TokenIndices[k], 32)))
		}
		require.NoError(t, rtm.Sync())
		tokens := bertTokens(m, 200, 5, 100, 7)
		assertBits(t, bertOut(t, rtm, ref, tokens), bertOut(t, tm, m, tokens))
	})
	t.Run("bert list form, init_weights false", func(t *testing.T) {
		m := testmodels.BERT(t)
		tm, err := Load(m, fixture("bert-tiny-list"), "mine")
		require.NoError(t, err)
		cfg, err := tm.Config("mine")
		require.NoError(t, err)
		assert.Equal(t, Config{TokenIndices: []int{3, 4}, TargetModules: []string{"word_embeddings"}, InitWeights: InitRandom}, cfg)
		rs, _ := tm.Rows("mine", "")
		assert.Equal(t, fixtureRow(3, 32), paramValues(rs[0]))
		assert.Equal(t, fixtureRow(4, 32), paramValues(rs[1]))
	})
	t.Run("bart four tied copies", func(t *testing.T) {
		m := testmodels.BART(t)
		tm, err := Load(m, fixture("bart-tiny"), "")
		require.NoError(t, err)
		rs := tm.TrainableParams()
		require.Len(t, rs, 3)
		for k, id := range []int{50, 60, 400} {
			assert.Equal(t, fixtureRow(id, 32), paramValues(rs[k]))
			assert.Same(t, rs[k], m.Bart.Encoder.Embeddings.SharedEmbeddings.Weights[id])
			assert.Same(t, rs[k], m.Bart.Decoder.Embeddings.SharedEmbeddings.Weights[id])
			assert.Equal(t, fixtureRow(id, 32), rows.Get(m.Projection.W.Value().(mat.Matrix), id, 32), "lm_head row %d", id)
		}
	})
	t.Run("registry dispatch", func(t *testing.T) {
		m := testmodels.BERT(t)
		got, err := registry.LoadAdapter(m, fixture("bert-tiny"), "via-registry")
		require.NoError(t, err)
		tm, ok := got.(*Model)
		require.True(t, ok, "%T", got)
		assert.Equal(t, []string{"via-registry"}, tm.Adapters())
		assert.Contains(t, registry.Methods(), PeftType)
	})
}

func TestRegistryUnknownPeftType(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"peft_type": "LOHA"}`), 0o644))
	m := testmodels.BERT(t)
	before := snapshot(m)
	_, err := registry.LoadAdapter(m, dir, "x")
	require.ErrorIs(t, err, registry.ErrUnknownMethod)
	assert.Contains(t, err.Error(), `"LOHA"`)
	assert.Contains(t, err.Error(), "registered: ")
	assert.Contains(t, err.Error(), PeftType)
	requireSame(t, before, m)
}

// readConfig decodes a saved adapter_config.json generically.
func readConfig(t *testing.T, dir string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(data, &out))
	return out
}

// readTensors parses a safetensors file by hand (independently of the
// package's codec): metadata and name → (dtype, shape, bytes).
type rawTensor struct {
	dtype string
	shape []int
	data  []byte
}

func readTensors(t *testing.T, path string) (map[string]string, map[string]rawTensor) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	n := binary.LittleEndian.Uint64(b[:8])
	require.Zero(t, n%8, "header padded to 8 bytes")
	var header map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b[8:8+n], &header))
	meta := map[string]string{}
	out := map[string]rawTensor{}
	for k, v := range header {
		if k == "__metadata__" {
			require.NoError(t, json.Unmarshal(v, &meta))
			continue
		}
		var info struct {
			DType       string `json:"dtype"`
			Shape       []int  `json:"shape"`
			DataOffsets []int  `json:"data_offsets"`
		}
		require.NoError(t, json.Unmarshal(v, &info))
		out[k] = rawTensor{info.DType, info.Shape, b[8+int(n)+info.DataOffsets[0] : 8+int(n)+info.DataOffsets[1]]}
	}
	return meta, out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestSaveFormat(t *testing.T) {
	peftFields := []string{"auto_mapping", "base_model_name_or_path", "inference_mode", "init_weights", "peft_type",
		"peft_version", "revision", "target_modules", "task_type", "token_indices"}
	t.Run("bert default target", func(t *testing.T) {
		m := testmodels.BERT(t)
		tm, err := New(m, Config{TokenIndices: []int{9, 3}}, "")
		require.NoError(t, err)
		dir := filepath.Join(t.TempDir(), "out")
		require.NoError(t, tm.Save(dir, "", SaveOptions{}))
		cfg := readConfig(t, dir)
		assert.Equal(t, peftFields, keys(cfg), "exactly PEFT's TrainableTokensConfig fields")
		assert.Equal(t, "TRAINABLE_TOKENS", cfg["peft_type"])
		assert.Equal(t, "bert.embeddings.word_embeddings", cfg["target_modules"], "resolved input embedding, as a string")
		assert.Equal(t, []any{9.0, 3.0}, cfg["token_indices"])
		assert.Equal(t, true, cfg["init_weights"])
		assert.Equal(t, true, cfg["inference_mode"])
		assert.Nil(t, cfg["task_type"])
		assert.Nil(t, cfg["revision"])
		assert.Nil(t, cfg["base_model_name_or_path"])
		assert.Equal(t, PEFTVersion, cfg["peft_version"])
		assert.Equal(t, map[string]any{"base_model_class": "BertForMaskedLM", "parent_library": "transformers.models.bert.modeling_bert"}, cfg["auto_mapping"])
		meta, ts := readTensors(t, filepath.Join(dir, WeightsFile))
		key := "base_model.model.bert.embeddings.word_embeddings.trainable_tokens_delta"
		tied := "base_model.model.cls.predictions.decoder.trainable_tokens_delta"
		assert.Equal(t, []string{key, tied}, keys(ts), "PEFT's key set: the tied decoder has its own copy")
		assert.Equal(t, ts[key], ts[tied])
		assert.Equal(t, "F32", ts[key].dtype)
		assert.Equal(t, []int{2, 32}, ts[key].shape)
		rs, _ := tm.Rows("default", "")
		for k := range rs {
			for j, v := range paramValues(rs[k]) {
				assert.Equal(t, math.Float32bits(float32(v)), binary.LittleEndian.Uint32(ts[key].data[4*(k*32+j):]))
			}
		}
		assert.Equal(t, map[string]string{
			"format": "pt", "gopeft.format": "1", "gopeft.adapter": "default", "gopeft.token_indices": "[9,3]",
			"gopeft.vocab_size.bert.embeddings.word_embeddings": "1038", "gopeft.dim.bert.embeddings.word_embeddings": "32",
		}, meta)
	})
	t.Run("list and regex targets, options, tied duplicates", func(t *testing.T) {
		m := testmodels.BART(t)
		tm, err := New(m, Config{TokenIndices: []int{7}, TargetModules: []string{"embed_tokens"}, InitWeights: InitRandom}, "a")
		require.NoError(t, err)
		require.NoError(t, tm.AddAdapter("b", Config{TokenIndices: []int{8}, TargetRegex: `model\.shared`}))
		dir := t.TempDir()
		require.NoError(t, tm.Save(filepath.Join(dir, "a"), "", SaveOptions{BaseModelNameOrPath: "facebook/bart-base", Revision: "main"}))
		require.NoError(t, tm.Save(filepath.Join(dir, "b"), "b", SaveOptions{}))
		require.NoError(t, tm.Save(filepath.Join(dir, "b1"), "b", SaveOptions{CompactTied: true}))
		a, b := readConfig(t, filepath.Join(dir, "a")), readConfig(t, filepath.Join(dir, "b"))
		assert.Equal(t, []any{"embed_tokens"}, a["target_modules"])
		assert.Equal(t, false, a["init_weights"])
		assert.Equal(t, "facebook/bart-base", a["base_model_name_or_path"])
		assert.Equal(t, "main", a["revision"])
		assert.Equal(t, `model\.shared`, b["target_modules"])
		// target_modules ["embed_tokens"]: PEFT wraps the encoder's and the
		// decoder's embed_tokens (separate modules sharing the weight), not
		// model.shared, so no tied layers are added.
		_, ts := readTensors(t, filepath.Join(dir, "a", WeightsFile))
		assert.Equal(t, []string{
			"base_model.model.model.decoder.embed_tokens.trainable_tokens_delta",
			"base_model.model.model.encoder.embed_tokens.trainable_tokens_delta",
		}, keys(ts), "PEFT's keys for list target embed_tokens")
		assert.Equal(t, ts["base_model.model.model.decoder.embed_tokens.trainable_tokens_delta"].data,
			ts["base_model.model.model.encoder.embed_tokens.trainable_tokens_delta"].data)
		// A regex selecting model.shared (the input embedding): its tied
		// modules follow, as in PEFT's standalone save.
		_, ts = readTensors(t, filepath.Join(dir, "b", WeightsFile))
		assert.Equal(t, []string{
			"base_model.model.lm_head.trainable_tokens_delta",
			"base_model.model.model.decoder.embed_tokens.trainable_tokens_delta",
			"base_model.model.model.encoder.embed_tokens.trainable_tokens_delta",
			"base_model.model.model.shared.trainable_tokens_delta",
		}, keys(ts), "PEFT's standalone keys for BART")
		for _, k := range keys(ts) {
			assert.Equal(t, ts["base_model.model.model.shared.trainable_tokens_delta"].data, ts[k].data)
		}
		_, ts = readTensors(t, filepath.Join(dir, "b1", WeightsFile))
		assert.Equal(t, []string{"base_model.model.model.shared.trainable_tokens_delta"}, keys(ts), "compact: once per table")
		err = tm.Save(filepath.Join(dir, "c"), "zzz", SaveOptions{})
		assert.ErrorIs(t, err, ErrUnknownAdapter)
		assert.NoDirExists(t, filepath.Join(dir, "c"))
	})
	t.Run("re-saving PEFT's fixture reproduces its config byte for byte", func(t *testing.T) {
		for _, name := range []string{"bert-tiny", "bart-tiny"} {
			var m nn.Model = testmodels.BERT(t)
			if name == "bart-tiny" {
				m = testmodels.BART(t)
			}
			tm, err := Load(m, fixture(name), "")
			require.NoError(t, err)
			out := filepath.Join(t.TempDir(), name)
			require.NoError(t, tm.Save(out, "", SaveOptions{BaseModelNameOrPath: "gopeft/" + name}))
			want, err := os.ReadFile(filepath.Join(fixture(name), ConfigFile))
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(out, ConfigFile))
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got), name)
			_, wantTs := readTensors(t, filepath.Join(fixture(name), WeightsFile))
			_, gotTs := readTensors(t, filepath.Join(out, WeightsFile))
			assert.Equal(t, wantTs, gotTs, name)
		}
	})
	t.Run("float64 model writes F64", func(t *testing.T) {
		m := syntheticBERT[float64](t, 50, 8, 1)
		tm, err := New(m, Config{TokenIndices: []int{5}}, "")
		require.NoError(t, err)
		perturb(t, tm, "default", 3)
		dir := t.TempDir()
		require.NoError(t, tm.Save(dir, "", SaveOptions{}))
		_, ts := readTensors(t, filepath.Join(dir, WeightsFile))
		for _, v := range ts {
			assert.Equal(t, "F64", v.dtype)
			assert.Len(t, v.data, 8*8)
		}
		// Round trip into a fresh float64 model: bits preserved.
		m2 := syntheticBERT[float64](t, 50, 8, 1)
		tm2, err := Load(m2, dir, "")
		require.NoError(t, err)
		assert.Equal(t, paramValues(tm.TrainableParams()[0]), paramValues(tm2.TrainableParams()[0]))
		// And into a float32 model only if every value is exact.
		_, err = Load(syntheticBERT[float32](t, 50, 8, 1), dir, "")
		require.ErrorIs(t, err, ErrInvalidAdapterFile)
		assert.Contains(t, err.Error(), "has no exact float32 value")
	})
}

func TestRoundTrip(t *testing.T) {
	t.Run("bert", func(t *testing.T) {
		m := testmodels.BERT(t)
		ids := []int{200, 5, 100, 7}
		tm, err := New(m, Config{TokenIndices: ids}, "")
		require.NoError(t, err)
		perturb(t, tm, "default", 1)
		tokens := bertTokens(m, ids...)
		want := bertOut(t, tm, m, tokens)
		base := predict(testmodels.BERT(t), tokens)
		assert.NotEqual(t, base, want, "the perturbation changes the output")
		dir := filepath.Join(t.TempDir(), "adapter")
		require.NoError(t, tm.Save(dir, "", SaveOptions{}))

		fresh := testmodels.BERT(t)
		tm2, err := Load(fresh, dir, "")
		require.NoError(t, err)
		assertBits(t, want, bertOut(t, tm2, fresh, tokens))
		// Under another name, and after a merge into a plain model.
		fresh2 := testmodels.BERT(t)
		tm3, err := Load(fresh2, dir, "renamed")
		require.NoError(t, err)
		assert.Equal(t, []string{"renamed"}, tm3.Active())
		plain, err := tm3.MergeAndUnload(true)
		require.NoError(t, err)
		assertBits(t, want, predict(plain.(*bert.ModelForMaskedLM), tokens))
	})
	t.Run("bart", func(t *testing.T) {
		m := testmodels.BART(t)
		tm, err := New(m, Config{TokenIndices: []int{50, 60, 400}}, "")
		require.NoError(t, err)
		perturb(t, tm, "default", 2)
		src := []int{0, 50, 60, 400, 2}
		want := bartOut(t, tm, m, src)
		for _, dup := range []bool{false, true} {
			dir := filepath.Join(t.TempDir(), "adapter")
			require.NoError(t, tm.Save(dir, "", SaveOptions{CompactTied: !dup}))
			fresh := testmodels.BART(t)
			tm2, err := Load(fresh, dir, "")
			require.NoError(t, err)
			assertBits(t, want, bartOut(t, tm2, fresh, src))
		}
	})
	t.Run("two adapters, switch with SetActive", func(t *testing.T) {
		m := testmodels.BERT(t)
		tm, err := New(m, Config{TokenIndices: []int{200, 5}}, "a")
		require.NoError(t, err)
		require.NoError(t, tm.AddAdapter("b", Config{TokenIndices: []int{100, 7, 5}}))
		perturb(t, tm, "a", 4)
		require.NoError(t, tm.SetActive("b"))
		perturb(t, tm, "b", 5)
		tokens := bertTokens(m, 200, 5, 100, 7)
		wantB := bertOut(t, tm, m, tokens)
		require.NoError(t, tm.SetActive("a"))
		wantA := bertOut(t, tm, m, tokens)
		dir := t.TempDir()
		require.NoError(t, tm.Save(filepath.Join(dir, "a"), "a", SaveOptions{}))
		require.NoError(t, tm.Save(filepath.Join(dir, "b"), "b", SaveOptions{}))

		fresh := testmodels.BERT(t)
		before := predict(fresh, tokens)
		tm2, err := Load(fresh, filepath.Join(dir, "a"), "a")
		require.NoError(t, err)
		require.NoError(t, tm2.LoadAdapter(filepath.Join(dir, "b"), "b"))
		assert.Equal(t, []string{"a"}, tm2.Active(), "loaded adapters start inactive")
		assertBits(t, wantA, bertOut(t, tm2, fresh, tokens))
		require.NoError(t, tm2.SetActive("b"))
		assertBits(t, wantB, bertOut(t, tm2, fresh, tokens))
		require.NoError(t, tm2.SetActive("a"))
		assertBits(t, wantA, bertOut(t, tm2, fresh, tokens))
		require.NoError(t, tm2.SetActive())
		assertBits(t, before, bertOut(t, tm2, fresh, tokens))
		err = tm2.LoadAdapter(filepath.Join(dir, "b"), "b")
		assert.ErrorContains(t, err, `an adapter named "b" already exists`)
	})
}

// TestSavedFilesPassPEFTChecks runs make_fixtures.py --check --model (the
// structural rules of PEFT and the safetensors library, then PEFT's loading
// rules: wrapped and tied modules, missing and unexpected keys, token ids
// within the vocabulary) on files written by Save, and checks that it fails
// on files PEFT would warn about or load wrongly. Skipped without
// /usr/bin/python3 and torch.
func TestSavedFilesPassPEFTChecks(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("no %s with torch: %v", py, err)
	}
	script := filepath.Join(testmodels.Dir("peft"), "make_fixtures.py")
	cases := []struct {
		model string
		make  func() (*Model, error)
	}{
		{"bert-tiny", func() (*Model, error) {
			return New(testmodels.BERT(t), Config{TokenIndices: []int{1, 2, 3}}, "")
		}},
		{"bart-tiny", func() (*Model, error) {
			return New(testmodels.BART(t), Config{TokenIndices: []int{10, 1099}}, "")
		}},
		{"bart-tiny", func() (*Model, error) {
			return New(testmodels.BART(t), Config{TokenIndices: []int{10, 1099}, TargetModules: []string{"lm_head", "embed_tokens"}}, "")
		}},
	}
	args := []string{script}
	var compact []string
	for _, c := range cases {
		tm, err := c.make()
		require.NoError(t, err)
		dir := filepath.Join(t.TempDir(), "adapter")
		require.NoError(t, tm.Save(dir, "", SaveOptions{BaseModelNameOrPath: "x"}))
		args = append(args, "--check", dir, "--model", testmodels.Dir(c.model))
		cdir := filepath.Join(t.TempDir(), "compact")
		require.NoError(t, tm.Save(cdir, "", SaveOptions{CompactTied: true}))
		compact = append(compact, cdir, testmodels.Dir(c.model))
	}
	out, err := exec.Command(py, args...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, 3, strings.Count(string(out), "ok PEFT rules"), "%s", out)
	assert.Contains(t, string(out), "wraps ['bert.embeddings.word_embeddings'], tied ['cls.predictions.decoder'], 2 keys")
	assert.Contains(t, string(out), "wraps ['model.shared'], tied ['lm_head', 'model.decoder.embed_tokens', 'model.encoder.embed_tokens'], 4 keys")
	assert.Contains(t, string(out), "wraps ['lm_head', 'model.decoder.embed_tokens', 'model.encoder.embed_tokens'], tied [], 3 keys")

	// The compact form: PEFT loads it but warns about the tied keys.
	for i := 0; i < 2; i++ { // the two default-target cases
		out, err := exec.Command(py, script, "--check", compact[2*i], "--model", compact[2*i+1]).CombinedOutput()
		require.Error(t, err, "%s", out)
		assert.Contains(t, string(out), "missing keys", "%s", out)
		assert.Contains(t, string(out), "Found missing adapter keys")
	}

	// A tensor keyed for a module PEFT does not wrap (same-length name, so
	// the header stays valid): PEFT drops it and leaves the embedding's rows
	// at their initial values.
	tm, err := New(testmodels.BERT(t), Config{TokenIndices: []int{5}}, "")
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "wrong")
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	st, err := os.ReadFile(filepath.Join(dir, WeightsFile))
	require.NoError(t, err)
	st = bytes.ReplaceAll(st, []byte("bert.embeddings.word_embeddings"), []byte("bert.embeddings.xxxx_embeddings"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, WeightsFile), st, 0o644))
	out, err = exec.Command(py, script, "--check", dir, "--model", testmodels.Dir("bert-tiny")).CombinedOutput()
	require.Error(t, err, "%s", out)
	assert.Contains(t, string(out), "unexpected keys ['base_model.model.bert.embeddings.xxxx_embeddings.trainable_tokens_delta'")
	// The tied decoder's key still fills the shared rows.
	assert.Contains(t, string(out), "missing keys ['base_model.model.bert.embeddings.word_embeddings.trainable_tokens_delta']")
	// Compact and renamed: nothing fills the rows.
	require.NoError(t, tm.Save(dir, "", SaveOptions{CompactTied: true}))
	st, err = os.ReadFile(filepath.Join(dir, WeightsFile))
	require.NoError(t, err)
	st = bytes.ReplaceAll(st, []byte("bert.embeddings.word_embeddings"), []byte("bert.embeddings.xxxx_embeddings"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, WeightsFile), st, 0o644))
	out, err = exec.Command(py, script, "--check", dir, "--model", testmodels.Dir("bert-tiny")).CombinedOutput()
	require.Error(t, err, "%s", out)
	assert.Contains(t, string(out), "wrapped modules ['bert.embeddings.word_embeddings', 'cls.predictions.decoder'] then keep their initial rows", "%s", out)

	// New-token ids beyond the base's vocabulary, with no tokenizer next to
	// the adapter: PEFT's injection raises IndexError.
	cfgPath := filepath.Join(dir, ConfigFile)
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	raw, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	raw = bytes.Replace(raw, []byte("\"token_indices\": [\n    5\n  ]"), []byte("\"token_indices\": [\n    1040\n  ]"), 1)
	require.NoError(t, os.WriteFile(cfgPath, raw, 0o644))
	out, err = exec.Command(py, script, "--check", dir, "--model", testmodels.Dir("bert-tiny")).CombinedOutput()
	require.Error(t, err, "%s", out)
	assert.Contains(t, string(out), "token id 1040 >= 1038 rows", "%s", out)
}

// syntheticBERT builds an in-memory masked-LM (never serialized) with a
// vocabulary of vocab fake terms, random weights and the MLM decoder a
// value copy of the token table, as cybertron's converter writes it.
func syntheticBERT[T float32 | float64](tb testing.TB, vocab, hidden int, seed uint64) *bert.ModelForMaskedLM {
	tb.Helper()
	terms := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	for i := len(terms); i < vocab; i++ {
		terms = append(terms, fmt.Sprintf("tok%d", i))
	}
	cfg := bert.Config{
		HiddenSize: hidden, EmbeddingsSize: hidden, IntermediateSize: 2 * hidden, NumAttentionHeads: 2,
		NumHiddenLayers: 1, MaxPositionEmbeddings: 16, TypeVocabSize: 2, VocabSize: vocab,
		HiddenAct: "gelu", ID2Label: map[string]string{"0": "a"},
	}
	m := bert.NewModelForMaskedLM[T](bert.New[T](cfg))
	m.Bert.Embeddings.Vocab = vocabulary.New(terms)
	fill(m, rand.New(rand.NewPCG(seed, 2)))
	dec := m.Layers[3].(*linear.Model).W.Value().(mat.Matrix)
	for i, p := range m.Bert.Embeddings.Tokens.Weights {
		if err := rows.Copy(dec, i, p.Value().(mat.Matrix), 0, hidden); err != nil {
			tb.Fatal(err)
		}
	}
	return m
}

func TestFileSize(t *testing.T) {
	check := func(t *testing.T, m nn.Model, ids []int, dim int) int64 {
		tm, err := New(m, Config{TokenIndices: ids}, "")
		require.NoError(t, err)
		dir := filepath.Join(t.TempDir(), "a")
		require.NoError(t, tm.Save(dir, "", SaveOptions{}))
		fi, err := os.Stat(filepath.Join(dir, WeightsFile))
		require.NoError(t, err)
		limit := int64(4*len(ids)*dim*4 + 4096) // up to 4 tied copies (BART)
		assert.LessOrEqual(t, fi.Size(), limit)
		t.Logf("%T: %d tokens × %d dims: adapter_model.safetensors = %d bytes (rows %d, limit %d)",
			m, len(ids), dim, fi.Size(), len(ids)*dim*4, limit)
		return fi.Size()
	}
	ids := []int{5, 6, 7, 8}
	check(t, testmodels.BERT(t), ids, 32)
	check(t, testmodels.BART(t), ids, 32)
	big := syntheticBERT[float32](t, 30522, 64, 1)
	require.Len(t, big.Bert.Embeddings.Tokens.Weights, 30522)
	size := check(t, big, ids, 64)
	small := check(t, syntheticBERT[float32](t, 50, 64, 1), ids, 64)
	assert.InDelta(t, small, size, 8, "the vocabulary size does not change the file (beyond its digits in the metadata)")

	// From 100 rows of width 256 on, the file is within 1% of the rows
	// themselves: long token_indices lists are recorded as a digest.
	wide := syntheticBERT[float32](t, 30522, 256, 1)
	var many []int
	for id := 30422; id < 30522; id++ {
		many = append(many, id)
	}
	tm, err := New(wide, Config{TokenIndices: many}, "")
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "wide")
	require.NoError(t, tm.Save(dir, "", SaveOptions{CompactTied: true}))
	fi, err := os.Stat(filepath.Join(dir, WeightsFile))
	require.NoError(t, err)
	assert.LessOrEqual(t, float64(fi.Size())/float64(100*256*4), 1.01, "compact: one copy")
	peftDir := filepath.Join(t.TempDir(), "peft")
	require.NoError(t, tm.Save(peftDir, "", SaveOptions{}))
	fi, err = os.Stat(filepath.Join(peftDir, WeightsFile))
	require.NoError(t, err)
	assert.LessOrEqual(t, float64(fi.Size())/float64(2*100*256*4), 1.01, "PEFT's key set: the table and the tied decoder")
	fresh := syntheticBERT[float32](t, 30522, 256, 1)
	back, err := Load(fresh, dir, "")
	require.NoError(t, err, "the digest matches the config's token_indices")
	rows, err := back.Rows(DefaultAdapterName, "")
	require.NoError(t, err)
	assert.Len(t, rows, 100)
}

// TestAtomicSave injects a failure at every stage of a save over an
// existing adapter: the directory must keep the old adapter, byte for byte,
// with no temporary file left behind.
func TestAtomicSave(t *testing.T) {
	m := testmodels.BERT(t)
	tm, err := New(m, Config{TokenIndices: []int{10, 11}}, "")
	require.NoError(t, err)
	parent := t.TempDir()
	dir := filepath.Join(parent, "adapter")
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	// Files the user keeps in the adapter directory, and a PEFT-style
	// sub-directory of another adapter.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("my notes"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "other", "deep"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "other", "deep", "x.txt"), []byte("keep"), 0o600))
	require.NoError(t, os.Symlink("README.md", filepath.Join(dir, "link")))
	old := tree(t, dir)

	perturb(t, tm, "default", 9)
	stages := []string{"write adapter_model.safetensors", "write adapter_config.json", "sync", "backup",
		"rename adapter_model.safetensors", "rename adapter_config.json", "sync dir"}
	for _, stage := range stages {
		t.Run(stage, func(t *testing.T) {
			boom := errors.New("injected failure")
			saveHook = func(s string) error {
				if s == stage {
					return boom
				}
				return nil
			}
			defer func() { saveHook = nil }()
			err := tm.Save(dir, "", SaveOptions{})
			require.ErrorIs(t, err, boom)
			assert.Contains(t, err.Error(), stage)
			assert.Equal(t, old, tree(t, dir), "old adapter intact, no temporary file")
			entries, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Len(t, entries, 1, "nothing written next to the directory: %v", entries)
		})
	}
	var seen []string
	saveHook = func(s string) error { seen = append(seen, s); return nil }
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	saveHook = nil
	assert.Equal(t, stages, seen)
	now := tree(t, dir)
	assert.NotEqual(t, old[WeightsFile], now[WeightsFile], "new rows written")
	for _, k := range []string{"README.md", "other/", "other/deep/", "other/deep/x.txt", "link"} {
		assert.Equal(t, old[k], now[k], "%s left alone", k)
	}
	assert.Len(t, now, len(old), "no temporary file left: %v", keys(now))
	fi, err := os.Stat(filepath.Join(dir, "other", "deep", "x.txt"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
	entries, _ := os.ReadDir(parent)
	assert.Len(t, entries, 1)
	// The directory loads and holds the new rows.
	tm2, err := Load(testmodels.BERT(t), dir, "")
	require.NoError(t, err)
	assert.Equal(t, paramValues(tm.TrainableParams()[0]), paramValues(tm2.TrainableParams()[0]))

	t.Run("fresh directory, failure leaves nothing", func(t *testing.T) {
		saveHook = func(s string) error {
			if s == "rename adapter_config.json" {
				return errors.New("injected")
			}
			return nil
		}
		defer func() { saveHook = nil }()
		p := t.TempDir()
		require.Error(t, tm.Save(filepath.Join(p, "new", "adapter"), "", SaveOptions{}))
		entries, _ := os.ReadDir(p)
		assert.Empty(t, entries)
	})
	t.Run("symlinked directory: written through, the link kept", func(t *testing.T) {
		p := t.TempDir()
		real := filepath.Join(p, "real")
		require.NoError(t, os.Mkdir(real, 0o755))
		link := filepath.Join(p, "link")
		require.NoError(t, os.Symlink(real, link))
		require.NoError(t, tm.Save(link, "", SaveOptions{}))
		fi, err := os.Lstat(link)
		require.NoError(t, err)
		assert.NotZero(t, fi.Mode()&fs.ModeSymlink)
		assert.FileExists(t, filepath.Join(real, WeightsFile))
	})
	t.Run("unwritable targets", func(t *testing.T) {
		p := t.TempDir()
		file := filepath.Join(p, "file")
		require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
		assert.ErrorContains(t, tm.Save(file, "", SaveOptions{}), "not a directory")
		assert.Error(t, tm.Save(filepath.Join(file, "sub"), "", SaveOptions{}))
		assert.Error(t, tm.Save("", "", SaveOptions{}))
		b, _ := os.ReadFile(file)
		assert.Equal(t, "x", string(b))
	})
}

// tree maps every path under dir (directories with a trailing slash) to
// its content (symlinks: "-> target").
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[rel] = "-> " + target
			return err
		case d.IsDir():
			out[rel+"/"] = ""
		default:
			b, err := os.ReadFile(p)
			out[rel] = string(b)
			return err
		}
		return nil
	}))
	return out
}

// ---------------------------------------------------------------------------
// Bad input

// stEntry describes one tensor of a hand-built safetensors file.
type stEntry struct {
	name  string
	dtype string
	shape []int
	data  []byte
}

// buildST writes a safetensors file by hand (not with the package's codec).
func buildST(meta map[string]string, entries ...stEntry) []byte {
	var parts []string
	if meta != nil {
		b, _ := json.Marshal(meta)
		parts = append(parts, `"__metadata__":`+string(b))
	}
	off := 0
	var data []byte
	for _, e := range entries {
		shape, _ := json.Marshal(e.shape)
		parts = append(parts, fmt.Sprintf(`%q:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, e.name, e.dtype, shape, off, off+len(e.data)))
		off += len(e.data)
		data = append(data, e.data...)
	}
	return rawST("{"+strings.Join(parts, ",")+"}", data)
}

func rawST(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(out, header...), data...)
}

func f32Bytes(vals ...float64) []byte {
	var out []byte
	for _, v := range vals {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(v)))
	}
	return out
}

func f64Bytes(vals ...float64) []byte {
	var out []byte
	for _, v := range vals {
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
	}
	return out
}

// goodRows are k × dim float values exact in float32.
func goodRows(k, dim int) []float64 {
	out := make([]float64, k*dim)
	for i := range out {
		out[i] = float64(i%17-8) / 16
	}
	return out
}

const wordKey = "base_model.model.bert.embeddings.word_embeddings.trainable_tokens_delta"

func writeAdapter(t *testing.T, config string, weights []byte) string {
	t.Helper()
	dir := t.TempDir()
	if config != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte(config), 0o644))
	}
	if weights != nil {
		require.NoError(t, os.WriteFile(filepath.Join(dir, WeightsFile), weights, 0o644))
	}
	return dir
}

const goodConfig = `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 20], "target_modules": null, "init_weights": true}`

func goodWeights() []byte {
	return buildST(map[string]string{"format": "pt"}, stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)})
}

func TestLoadBadFiles(t *testing.T) {
	good := goodWeights()
	nan := goodRows(2, 32)
	nan[32+5] = math.NaN()
	inf := goodRows(2, 32)
	inf[3] = math.Inf(-1)
	otherRows := goodRows(2, 32)
	otherRows[40] += 0.5
	cases := []struct {
		name    string
		config  string // "" = no file
		weights []byte // nil = no file
		want    string
	}{
		{"missing config", "", good, "adapter_config.json: no such file"},
		{"missing weights", goodConfig, nil, "adapter_model.safetensors: no such file"},
		{"malformed JSON", `{"peft_type": "TRAINABLE_TOKENS",`, good, "malformed JSON"},
		{"config not an object", `[1, 2]`, good, "expected a JSON object"},
		{"missing peft_type", `{"token_indices": [1]}`, good, `missing "peft_type"; expected "TRAINABLE_TOKENS"`},
		{"wrong peft_type", `{"peft_type": "LORA", "token_indices": [1]}`, good, `peft_type is "LORA"; expected "TRAINABLE_TOKENS"`},
		{"LoRA with trainable tokens", `{"peft_type": "LORA", "r": 8, "trainable_token_indices": [1, 2]}`, good,
			`peft_type is "LORA" with trainable_token_indices: a LoRA adapter that also trains token rows`},
		{"duplicate config key", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 20], "token_indices": [1]}`, good, `key "token_indices" appears twice`},
		{"missing token_indices", `{"peft_type": "TRAINABLE_TOKENS"}`, good, `missing "token_indices"`},
		{"token_indices not a list", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": 5}`, good, "token_indices is 5; expected a list"},
		{"empty token_indices", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": []}`, good, "token_indices is empty"},
		{"fractional index", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 2.5]}`, good, "token_indices[1] = 2.5; expected a token id"},
		{"negative index", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [-1, 20]}`, good, "token_indices[0] = -1"},
		{"string index", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": ["10", 20]}`, good, "token_indices[0] is 10; expected a non-negative integer"},
		{"duplicate index", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 10]}`, good, "token id 10 appears twice in token_indices (positions 0 and 1)"},
		{"index outside vocabulary", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 1038]}`, good, "token_indices[1] = 1038 is outside the vocabulary of bert.embeddings.word_embeddings: allowed [0, 1038)"},
		{"huge index", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 99999999999999999999]}`, good, "expected a token id in [0, 2^31)"},
		{"unknown target", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 20], "target_modules": ["doesnt_exist"]}`, good, `"doesnt_exist" matches no embedding module of bert.ModelForMaskedLM; embedding modules: `},
		{"bad target type", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 20], "target_modules": 3}`, good, "target_modules is 3; expected null, a string or a list of strings"},
		{"bad regex", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 20], "target_modules": "(("}`, good, "invalid regular expression"},
		{"bad init_weights", `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 20], "init_weights": "yes"}`, good, `init_weights is "yes"; expected true or false`},

		{"empty weights file", goodConfig, []byte{}, "file is 0 bytes"},
		{"header length larger than the file", goodConfig, binary.LittleEndian.AppendUint64(nil, 1000), "header length 1000 is larger than the 0 bytes that follow it"},
		{"header length over the cap", goodConfig, append(binary.LittleEndian.AppendUint64(nil, 1<<40), '{', '}'), "header length 1099511627776 exceeds the limit of 100000000 bytes"},
		{"header not JSON", goodConfig, rawST("{nope}", nil), "header JSON"},
		{"header not an object", goodConfig, rawST("[1, 2]  ", nil), "expected a JSON object starting with '{'"},
		{"header invalid UTF-8", goodConfig, rawST("{\"\xff\":1}", nil), "header is not valid UTF-8"},
		{"header with trailing data", goodConfig, rawST(`{} {}`, nil), "unexpected data after the JSON object"},
		{"duplicate tensor name", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `key "a" appears twice`},
		{"overlapping offsets", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), `tensor "b" data_offsets [4, 12] overlap tensor "a" [0, 8]`},
		{"gap between tensors", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12)), "bytes [4, 8) of the data section belong to no tensor"},
		{"offsets out of bounds", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, make([]byte, 8)), `tensor "a" data_offsets [0, 16] run past the end of the data section (8 bytes)`},
		{"data not covered", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 12)), "the data section has 12 bytes but the tensors cover 4"},
		{"offsets lie about the size", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,8]}}`, make([]byte, 8)), "span 8 bytes, but shape [2 3] of F32 needs 24 bytes"},
		{"offsets reversed", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, make([]byte, 8)), "end before they begin"},
		{"shape overflow", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil), "more elements than fit in 64 bits"},
		{"negative shape", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, nil), "-1 is not a non-negative integer"},
		{"missing field", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), `missing "data_offsets"`},
		{"extra field", goodConfig, rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, make([]byte, 4)), `unexpected field "x"`},
		{"unknown dtype", goodConfig, rawST(`{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `unknown dtype "Q7"`},
		{"non-string metadata", goodConfig, rawST(`{"__metadata__":{"format":1}}`, nil), `__metadata__["format"] is 1; metadata values must be strings`},
		{"truncated data", goodConfig, good[:len(good)-4], "run past the end of the data section"},
		{"wrong dtype I32", goodConfig, buildST(nil, stEntry{wordKey, "I32", []int{2, 32}, make([]byte, 256)}), "has dtype I32; expected F32 or F64"},
		{"wrong dtype F16", goodConfig, buildST(nil, stEntry{wordKey, "F16", []int{2, 32}, make([]byte, 128)}), "has dtype F16; expected F32 or F64"},
		{"dim mismatch", goodConfig, buildST(nil, stEntry{wordKey, "F32", []int{2, 16}, make([]byte, 128)}), "rows are 16 wide; table bert.embeddings.word_embeddings has dimension 32"},
		{"row count mismatch", goodConfig, buildST(nil, stEntry{wordKey, "F32", []int{3, 32}, make([]byte, 384)}), "has 3 rows; expected 2, one per token_indices entry [10 20]"},
		{"3-D tensor", goodConfig, buildST(nil, stEntry{wordKey, "F32", []int{2, 32, 1}, make([]byte, 256)}), "expected 2 dimensions [2 32]"},
		{"no tensor", goodConfig, buildST(map[string]string{"format": "pt"}), "no tensor for table bert.embeddings.word_embeddings; expected key \"" + wordKey + "\""},
		{"tensor for no table", goodConfig, buildST(nil,
			stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)},
			stEntry{"base_model.model.bert.encoder.layer.0.trainable_tokens_delta", "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)}),
			`is for module "bert.encoder.layer.0", which is no embedding table of bert.ModelForMaskedLM`},
		{"not a trainable tokens key", goodConfig, buildST(nil,
			stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)},
			stEntry{"base_model.model.bert.embeddings.word_embeddings.lora_A.weight", "F32", []int{1, 32}, make([]byte, 128)}),
			"is not a Trainable Tokens tensor; expected keys base_model.model.<module>.trainable_tokens_delta"},
		{"table not targeted", goodConfig, buildST(nil,
			stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)},
			stEntry{"base_model.model.bert.embeddings.position_embeddings.trainable_tokens_delta", "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)}),
			"is for table bert.embeddings.position_embeddings, which target_modules null (the input embedding) in adapter_config.json does not select"},
		{"NaN row", goodConfig, buildST(nil, stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(nan...)}), "row 1 (token id 20), column 5 is NaN; rows must be finite"},
		{"Inf row", goodConfig, buildST(nil, stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(inf...)}), "row 0 (token id 10), column 3 is -Inf"},
		{"tied duplicate differs", goodConfig, buildST(nil,
			stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)},
			stEntry{"base_model.model.cls.predictions.decoder.trainable_tokens_delta", "F32", []int{2, 32}, f32Bytes(otherRows...)}),
			`tied duplicate "base_model.model.cls.predictions.decoder.trainable_tokens_delta" differs from "` + wordKey + `" at row 1 (token id 20), column 8: 0.375 vs -0.125`},
		{"tied duplicate other dtype", goodConfig, buildST(nil,
			stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)},
			stEntry{"base_model.model.cls.predictions.decoder.trainable_tokens_delta", "F64", []int{2, 32}, f64Bytes(goodRows(2, 32)...)}),
			"differs from"},
		{"F64 not exact in float32", goodConfig, buildST(nil, stEntry{wordKey, "F64", []int{2, 32}, f64Bytes(append([]float64{0.1}, goodRows(2, 32)[1:]...)...)}),
			"row 0 (token id 10), column 0 = 0.1 has no exact float32 value"},
		{"metadata token_indices mismatch", goodConfig, buildST(map[string]string{"gopeft.token_indices": "[10,21]"}, stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)}),
			"records token_indices [10 21] but adapter_config.json has [10 20]; the two files come from different saves"},
		{"metadata token_indices digest mismatch", goodConfig, buildST(map[string]string{"gopeft.token_indices.sha256": "00ff"}, stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)}),
			"records a digest of token_indices (00ff) that does not match the 2 token_indices of adapter_config.json"},
		{"metadata vocabulary mismatch", goodConfig, buildST(map[string]string{"gopeft.vocab_size.bert.embeddings.word_embeddings": "30522"}, stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)}),
			"was saved for bert.embeddings.word_embeddings with a vocabulary of 30522 rows; the model's table has 1038"},
		{"whole layer of another vocabulary size", goodConfig, buildST(nil,
			stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)},
			stEntry{"base_model.model.bert.embeddings.word_embeddings.base_layer.weight", "F32", []int{1, 32}, make([]byte, 128)}),
			"holds the whole layer of bert.embeddings.word_embeddings with 1 rows, as PEFT saves it after a vocabulary resize; the model has 1038, more than the file: the adapter was saved for another base model"},
		{"whole layer of another model", goodConfig, buildST(nil,
			stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)},
			stEntry{"base_model.model.bert.embeddings.word_embeddings.base_layer.weight", "F32", []int{1038, 32}, make([]byte, 1038*32*4)}),
			"(the whole layer PEFT saved for bert.embeddings.word_embeddings) differs from the model at row 0, column 0"},
		{"whole-layer bias on the embedding", goodConfig, buildST(nil,
			stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)},
			stEntry{"base_model.model.bert.embeddings.word_embeddings.base_layer.bias", "F32", []int{1038}, make([]byte, 1038*4)}),
			"is a bias, but bert.embeddings.word_embeddings has none in this model"},
		{"metadata newer format", goodConfig, buildST(map[string]string{"gopeft.format": "2"}, stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)}),
			`gopeft.format is "2"; this gopeft reads format "1"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeAdapter(t, tc.config, tc.weights)
			m := testmodels.BERT(t)
			before := snapshot(m)
			tm, err := Load(m, dir, "")
			require.Error(t, err)
			assert.Nil(t, tm)
			assert.Contains(t, err.Error(), tc.want)
			assert.ErrorIs(t, err, ErrInvalidAdapterFile)
			requireSame(t, before, m)

			// The same file offered as a second adapter changes nothing either.
			m2 := testmodels.BERT(t)
			tm2, err := New(m2, Config{TokenIndices: []int{10, 30}}, "first")
			require.NoError(t, err)
			before2 := snapshot(m2)
			err = tm2.LoadAdapter(dir, "second")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			requireSame(t, before2, m2)
			assert.Equal(t, []string{"first"}, tm2.Adapters())
		})
	}

	t.Run("unreadable pickle", func(t *testing.T) {
		dir := writeAdapter(t, goodConfig, nil)
		require.NoError(t, os.WriteFile(filepath.Join(dir, PickleWeightsFile), []byte("PK"), 0o644))
		_, err := Load(testmodels.BERT(t), dir, "")
		require.ErrorIs(t, err, ErrInvalidAdapterFile)
		assert.Contains(t, err.Error(), "not a readable PyTorch state dict")
		assert.Contains(t, err.Error(), "convert it to safetensors in Python: safetensors.torch.save_file(torch.load(")
	})
	t.Run("missing directory", func(t *testing.T) {
		_, err := Load(testmodels.BERT(t), filepath.Join(t.TempDir(), "nope"), "")
		require.ErrorIs(t, err, ErrInvalidAdapterFile)
		assert.Contains(t, err.Error(), "no such file or directory")
	})
	t.Run("options", func(t *testing.T) {
		dir := writeAdapter(t, goodConfig, buildST(nil, stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(nan...)}))
		tm, err := Load(testmodels.BERT(t), dir, "", LoadOptions{AllowNonFinite: true})
		require.NoError(t, err)
		assert.True(t, math.IsNaN(paramValues(tm.TrainableParams()[1])[5]))
		assert.ErrorIs(t, tm.Merge(true), ErrNotFinite, "a safe merge still refuses it")
		dir = writeAdapter(t, goodConfig, buildST(map[string]string{"gopeft.vocab_size.bert.embeddings.word_embeddings": "30522"},
			stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)}))
		_, err = Load(testmodels.BERT(t), dir, "", LoadOptions{AllowVocabChange: true})
		require.NoError(t, err)
		_, err = Load(testmodels.BERT(t), dir, "", LoadOptions{}, LoadOptions{})
		assert.ErrorContains(t, err, "at most one LoadOptions")
	})
	t.Run("exact F64 into float32, F32 into float64", func(t *testing.T) {
		dir := writeAdapter(t, goodConfig, buildST(nil, stEntry{wordKey, "F64", []int{2, 32}, f64Bytes(goodRows(2, 32)...)}))
		tm, err := Load(testmodels.BERT(t), dir, "")
		require.NoError(t, err)
		assert.Equal(t, goodRows(2, 32)[:32], paramValues(tm.TrainableParams()[0]))
		dir = writeAdapter(t, `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 20]}`, buildST(nil, stEntry{wordKey, "F32", []int{2, 8}, f32Bytes(goodRows(2, 8)...)}))
		tm, err = Load(syntheticBERT[float64](t, 40, 8, 1), dir, "")
		require.NoError(t, err)
		assert.Equal(t, goodRows(2, 8)[8:], paramValues(tm.TrainableParams()[1]))
	})
	t.Run("lm_head rows alone stand for the table", func(t *testing.T) {
		cfg := `{"peft_type": "TRAINABLE_TOKENS", "token_indices": [10, 20], "target_modules": ["lm_head"]}`
		dir := writeAdapter(t, cfg, buildST(nil, stEntry{"base_model.model.lm_head.trainable_tokens_delta", "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)}))
		m := testmodels.BART(t)
		tm, err := Load(m, dir, "")
		require.NoError(t, err)
		assert.Equal(t, goodRows(2, 32)[32:], rows.Get(m.Projection.W.Value().(mat.Matrix), 20, 32))
		assert.Same(t, tm.TrainableParams()[0], m.Bart.Embeddings.Weights[10])
	})
}
