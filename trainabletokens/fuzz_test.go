package trainabletokens

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
)

// The fuzz model: an in-memory BERT masked-LM, vocabulary 40, width 8, with
// a tied MLM decoder (so tied duplicate keys resolve).
const (
	fuzzVocab = 40
	fuzzDim   = 8
)

const fuzzWordKey = "base_model.model.bert.embeddings.word_embeddings.trainable_tokens_delta"
const fuzzDecoderKey = "base_model.model.cls.predictions.decoder.trainable_tokens_delta"

// FuzzLoad feeds arbitrary adapter_config.json and adapter_model.safetensors
// bytes to the loader. Properties: it never panics; on error the model is
// untouched (every parameter's pointer, bits and requiresGrad flag); on
// success every loaded row is finite unless allowed, Save of the loaded
// adapter loads back to the same bits, and Unload restores the model.
//
//	go test -run='^$' -fuzz=FuzzLoad -fuzztime=60s ./trainabletokens
//
// Seeds: testdata/fuzz/FuzzLoad (see TestWriteFuzzSeeds) plus f.Add below.
func FuzzLoad(f *testing.F) {
	model := syntheticBERT[float32](f, fuzzVocab, fuzzDim, 11)
	before := snapshot(model)
	for _, s := range fuzzSeeds() {
		f.Add(s.config, s.weights, s.allow)
	}
	f.Fuzz(func(t *testing.T, config, weights []byte, allowNonFinite bool) {
		src := memSource(config, weights)
		tm, err := loadNew(model, src, "fuzz", LoadOptions{AllowNonFinite: allowNonFinite})
		if err != nil {
			require.Nil(t, tm)
			if !errors.Is(err, ErrInvalidAdapterFile) && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error wraps neither ErrInvalidAdapterFile nor ErrInvalidConfig: %v", err)
			}
			requireSame(t, before, model)
			return
		}
		first := map[string][][]float64{}
		finite := true
		for _, tg := range tm.adapters["fuzz"].targets {
			for _, p := range tg.rows {
				v := paramValues(p)
				if ok, _ := rows.Finite(p.Value().(mat.Matrix), 0, len(v)); !ok {
					finite = false
					if !allowNonFinite {
						t.Fatalf("loaded a non-finite row without AllowNonFinite")
					}
				}
				first[tg.group.Table.HFPath] = append(first[tg.group.Table.HFPath], v)
			}
		}
		files, err := tm.encode("", SaveOptions{CompactTied: len(weights)%2 == 0})
		if !finite { // nothing non-finite is ever saved
			require.ErrorIs(t, err, ErrNotFinite)
			_, err = tm.Unload()
			require.NoError(t, err)
			requireSame(t, before, model)
			return
		}
		require.NoError(t, err)
		_, err = tm.Unload()
		require.NoError(t, err)
		requireSame(t, before, model)

		// What Save writes loads back to the same bits.
		tm2, err := loadNew(model, memSource(files[ConfigFile], files[WeightsFile]), "again", LoadOptions{AllowNonFinite: true})
		require.NoError(t, err, "reloading a saved adapter")
		for _, tg := range tm2.adapters["again"].targets {
			for k, p := range tg.rows {
				requireSameBits(t, first[tg.group.Table.HFPath][k], paramValues(p))
			}
		}
		_, err = tm2.Unload()
		require.NoError(t, err)
		requireSame(t, before, model)
	})
}

func requireSameBits(t *testing.T, want, got []float64) {
	t.Helper()
	require.Equal(t, len(want), len(got))
	for i := range want {
		if math.Float64bits(want[i]) != math.Float64bits(got[i]) && !(math.IsNaN(want[i]) && math.IsNaN(got[i])) {
			t.Fatalf("element %d: %v != %v", i, want[i], got[i])
		}
	}
}

func memSource(config, weights []byte) *source {
	return &source{
		configPath: "fuzz/" + ConfigFile, config: config,
		weightsPath: "fuzz/" + WeightsFile, weights: bytes.NewReader(weights), size: int64(len(weights)),
	}
}

type fuzzSeed struct {
	name            string
	config, weights []byte
	allow           bool
}

// fuzzSeeds are valid and invalid adapters for the fuzz model.
func fuzzSeeds() []fuzzSeed {
	cfg := func(s string) []byte { return []byte(s) }
	base := cfg(`{"peft_type": "TRAINABLE_TOKENS", "token_indices": [7, 3], "target_modules": null, "init_weights": true}`)
	rows := goodRows(2, fuzzDim)
	f32 := f32Bytes(rows...)
	nan := append([]float64(nil), rows...)
	nan[3] = math.NaN()
	diff := append([]float64(nil), rows...)
	diff[9] += 1
	entry := func(key, dtype string, shape []int, data []byte) stEntry { return stEntry{key, dtype, shape, data} }
	valid := buildST(map[string]string{"format": "pt"}, entry(fuzzWordKey, "F32", []int{2, fuzzDim}, f32))
	return []fuzzSeed{
		{"valid", base, valid, false},
		{"valid tied duplicate", base, buildST(map[string]string{"format": "pt"},
			entry(fuzzWordKey, "F32", []int{2, fuzzDim}, f32), entry(fuzzDecoderKey, "F32", []int{2, fuzzDim}, f32)), false},
		{"valid F64", base, buildST(nil, entry(fuzzWordKey, "F64", []int{2, fuzzDim}, f64Bytes(rows...))), false},
		{"valid list target and gopeft metadata", cfg(`{"auto_mapping": null, "base_model_name_or_path": null, "inference_mode": true, "init_weights": false, "peft_type": "TRAINABLE_TOKENS", "peft_version": "0.20.0", "revision": null, "target_modules": ["word_embeddings"], "task_type": null, "token_indices": [7, 3]}`),
			buildST(map[string]string{"format": "pt", "gopeft.format": "1", "gopeft.token_indices": "[7,3]",
				"gopeft.vocab_size.bert.embeddings.word_embeddings": "40", "gopeft.dim.bert.embeddings.word_embeddings": "8"},
				entry(fuzzWordKey, "F32", []int{2, fuzzDim}, f32)), false},
		{"valid lm-head style only decoder key", cfg(`{"peft_type": "TRAINABLE_TOKENS", "token_indices": [7, 3], "target_modules": "cls.predictions.decoder"}`),
			buildST(nil, entry(fuzzDecoderKey, "F32", []int{2, fuzzDim}, f32)), false},
		{"two tables", cfg(`{"peft_type": "TRAINABLE_TOKENS", "token_indices": [1], "target_modules": ["word_embeddings", "position_embeddings"]}`),
			buildST(nil, entry(fuzzWordKey, "F32", []int{1, fuzzDim}, f32[:4*fuzzDim]),
				entry("base_model.model.bert.embeddings.position_embeddings.trainable_tokens_delta", "F32", []int{1, fuzzDim}, f32[4*fuzzDim:])), false},
		{"NaN allowed", base, buildST(nil, entry(fuzzWordKey, "F32", []int{2, fuzzDim}, f32Bytes(nan...))), true},
		{"NaN refused", base, buildST(nil, entry(fuzzWordKey, "F32", []int{2, fuzzDim}, f32Bytes(nan...))), false},
		{"header length past the end", base, append([]byte{200, 0, 0, 0, 0, 0, 0, 0}, valid[8:40]...), false},
		{"overlapping offsets", base, rawST(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), false},
		{"gap", base, rawST(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12)), false},
		{"truncated", base, valid[:len(valid)-5], false},
		{"I32", base, buildST(nil, entry(fuzzWordKey, "I32", []int{2, fuzzDim}, f32)), false},
		{"dim mismatch", base, buildST(nil, entry(fuzzWordKey, "F32", []int{4, fuzzDim / 2}, f32)), false},
		{"duplicate indices", cfg(`{"peft_type": "TRAINABLE_TOKENS", "token_indices": [7, 7]}`), valid, false},
		{"malformed config", cfg(`{"peft_type": "TRAINABLE_TOKENS", "token_indices": [7, `), valid, false},
		{"index outside vocabulary", cfg(`{"peft_type": "TRAINABLE_TOKENS", "token_indices": [7, 40]}`), valid, false},
		{"tied duplicate differs", base, buildST(nil,
			entry(fuzzWordKey, "F32", []int{2, fuzzDim}, f32), entry(fuzzDecoderKey, "F32", []int{2, fuzzDim}, f32Bytes(diff...))), false},
		{"empty", nil, nil, false},
	}
}

// TestWriteFuzzSeeds writes fuzzSeeds into testdata/fuzz/FuzzLoad in go
// test's corpus format when GOPEFT_WRITE_FUZZ_SEEDS=1; otherwise it checks
// that the committed files are there.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzLoad")
	for _, s := range fuzzSeeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\nbool(%v)\n", s.config, s.weights, s.allow)
		name := fmt.Sprintf("seed-%x", sha256.Sum256([]byte(body)))[:21]
		path := filepath.Join(dir, name)
		if os.Getenv("GOPEFT_WRITE_FUZZ_SEEDS") == "1" {
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
			continue
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err, "seed %q missing: run GOPEFT_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./trainabletokens", s.name)
		require.Equal(t, body, string(got), "seed %q", s.name)
	}
}

// TestFuzzSeedsBehave checks that the valid seeds load (so the fuzzer starts
// from inputs that reach the success path) and the others are refused.
func TestFuzzSeedsBehave(t *testing.T) {
	model := syntheticBERT[float32](t, fuzzVocab, fuzzDim, 11)
	before := snapshot(model)
	ok := map[string]bool{"valid": true, "valid tied duplicate": true, "valid F64": true,
		"valid list target and gopeft metadata": true, "valid lm-head style only decoder key": true,
		"two tables": true, "NaN allowed": true}
	for _, s := range fuzzSeeds() {
		tm, err := loadNew(model, memSource(s.config, s.weights), "x", LoadOptions{AllowNonFinite: s.allow})
		if ok[s.name] {
			require.NoError(t, err, s.name)
			_, err = tm.Unload()
			require.NoError(t, err)
		} else {
			require.Error(t, err, s.name)
			t.Logf("%s: %v", s.name, err)
		}
		requireSame(t, before, model)
	}
}
