package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMainJob runs the README's first command end to end with its default
// flags (quietly, into a temporary folder), checks what it leaves behind,
// and holds the guard to its claim: the new words are learnt (held-out
// accuracy at least 95%) while masked-word accuracy on held-out ordinary
// sentences stays within 2 points of the base model.
func TestMainJob(t *testing.T) {
	o := defaultOptions()
	o.outDir, o.quiet = t.TempDir(), true
	res, err := run(o)
	require.NoError(t, err)
	rep := res.report
	t.Logf("%v", rep)
	assert.GreaterOrEqual(t, rep.HeldAfter.Accuracy, 0.95, "held-out new-word accuracy")
	assert.LessOrEqual(t, rep.OrdinaryBefore.Accuracy-rep.OrdinaryAfter.Accuracy, 0.02, "ordinary-sentence accuracy within 2 points of the base")
	assert.InDelta(t, 0.589, rep.OrdinaryBefore.Accuracy, 0.001, "the base model's figure (testdata/README.md)")
	for _, f := range []string{
		"adapter/adapter_config.json", "adapter/adapter_model.safetensors",
		"merged/spago_model.bin", "merged/vocab.txt", "merged/config.json",
		"base-with-tokens/spago_model.bin", "loss.png",
	} {
		info, err := os.Stat(filepath.Join(o.outDir, f))
		require.NoError(t, err, f)
		assert.Positive(t, info.Size(), f)
		assert.Equal(t, os.FileMode(0o644), info.Mode().Perm(), f)
	}
	checkPyTorchRoundTrip(t, o.outDir)
}

// checkPyTorchRoundTrip checks the adapter directory against what
// transformers + PEFT need to load it the documented way (README "Take it to
// PyTorch"): AutoPeftModel.from_pretrained(adapter) loads
// base_model_name_or_path (a Hugging Face directory of the un-grown base),
// finds tokenizer_config.json next to the adapter, loads that tokenizer
// (tokenizer_class, as the directory has no config.json) and resizes the
// base to len(tokenizer), which must cover every token id; then PEFT's own
// loading rules apply (make_fixtures.py --check, when torch is installed).
func checkPyTorchRoundTrip(t *testing.T, out string) {
	adapter := filepath.Join(out, "adapter")
	var cfg struct {
		Base         string `json:"base_model_name_or_path"`
		TokenIndices []int  `json:"token_indices"`
	}
	readJSON(t, filepath.Join(adapter, "adapter_config.json"), &cfg)
	require.True(t, filepath.IsAbs(cfg.Base), cfg.Base)
	var baseCfg struct {
		VocabSize int `json:"vocab_size"`
	}
	readJSON(t, filepath.Join(cfg.Base, "config.json"), &baseCfg)
	assert.Equal(t, 1038, baseCfg.VocabSize, "the base as it was")
	assert.FileExists(t, filepath.Join(cfg.Base, "pytorch_model.bin"))

	var tokCfg map[string]any
	readJSON(t, filepath.Join(adapter, "tokenizer_config.json"), &tokCfg)
	assert.Equal(t, "BertTokenizer", tokCfg["tokenizer_class"])
	vocab, err := os.ReadFile(filepath.Join(adapter, "vocab.txt"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(vocab), "\n"), "\n")
	assert.Len(t, lines, 1042, "len(tokenizer): the base vocabulary plus the 4 words")
	var added map[string]int
	readJSON(t, filepath.Join(adapter, "added_tokens.json"), &added)
	assert.Equal(t, map[string]int{"zorblax": 1038, "quindle": 1039, "flumph": 1040, "vintral": 1041}, added)
	for _, id := range cfg.TokenIndices {
		assert.Less(t, id, len(lines), "every trained id exists once AutoPeftModel resized the base")
	}

	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Logf("PEFT's loading rules not checked: no %s with torch", py)
		return
	}
	script := filepath.Join("..", "..", "testdata", "peft", "make_fixtures.py")
	res, err := exec.Command(py, script, "--check", adapter, "--model", cfg.Base).CombinedOutput()
	require.NoError(t, err, "%s", res)
	assert.Contains(t, string(res), "vocabulary from the tokenizer next to the adapter (AutoPeftModel resizes the base to 1042)", "%s", res)
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, v), file)
}

// TestMainJobUnguarded: -no-guard trains as PEFT does, and the job shows
// the damage it does to the old vocabulary.
func TestMainJobUnguarded(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for 8 epochs")
	}
	o := defaultOptions()
	o.outDir, o.quiet, o.noGuard = t.TempDir(), true, true
	res, err := run(o)
	require.NoError(t, err)
	assert.Greater(t, res.report.OrdinaryBefore.Accuracy-res.report.OrdinaryAfter.Accuracy, 0.15)
	assert.Equal(t, 1.0, res.report.HeldAfter.Accuracy)
}

func TestMainJobBadInput(t *testing.T) {
	out := t.TempDir()
	base := defaultOptions()
	base.outDir, base.quiet = out, true
	with := func(f func(*options)) options { o := base; f(&o); return o }
	_, err := run(with(func(o *options) { o.tokens, o.epochs = "the", 1 }))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"the"`)
	_, err = run(with(func(o *options) { o.modelDir = filepath.Join(out, "missing") }))
	assert.ErrorContains(t, err, "not a model directory")
	for _, c := range []struct {
		f    func(*options)
		want string
	}{
		{func(o *options) { o.epochs = 0 }, "-epochs must be at least 1, got 0"},
		{func(o *options) { o.batch = -1 }, "-batch"},
		{func(o *options) { o.lr = 0 }, "-lr"},
		{func(o *options) { o.decay = 1 }, "-decay"},
		{func(o *options) { o.mix = -2 }, "-mix"},
		{func(o *options) { o.maxDrop = 5 }, "-max-drop"},
	} {
		_, err := run(with(c.f))
		assert.ErrorContains(t, err, c.want)
	}
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.NotContains(t, names, "adapter", "a failed run writes no adapter")
	// No temporary file or directory (a conversion's scratch directory, an
	// atomic write's temporary file) is left anywhere under the output.
	require.NoError(t, filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		assert.False(t, strings.HasPrefix(d.Name(), ".") && p != out, "left behind: %s", p)
		return nil
	}))
}
