package main

import (
	"os"
	"path/filepath"
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
}
