package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMainJob runs the README's first command end to end (quietly, into a
// temporary folder) and checks what it leaves behind.
func TestMainJob(t *testing.T) {
	out := t.TempDir()
	require.NoError(t, run(options{outDir: out, epochs: 2, batch: 8, lr: 0.05, seed: 1, quiet: true}))
	for _, f := range []string{
		"adapter/adapter_config.json", "adapter/adapter_model.safetensors",
		"merged/spago_model.bin", "merged/vocab.txt", "merged/config.json",
		"base-with-tokens/spago_model.bin", "loss.png",
	} {
		info, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err, f)
		assert.Positive(t, info.Size(), f)
	}
}

func TestMainJobBadInput(t *testing.T) {
	out := t.TempDir()
	err := run(options{outDir: out, tokens: "the", epochs: 1, batch: 8, lr: 0.05, quiet: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"the"`)
	err = run(options{outDir: out, modelDir: filepath.Join(out, "missing"), epochs: 1, quiet: true})
	assert.ErrorContains(t, err, "not a model directory")
}
