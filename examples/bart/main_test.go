package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBARTExample runs the example end to end with two epochs.
func TestBARTExample(t *testing.T) {
	out := t.TempDir()
	require.NoError(t, run(out, 2, 0.05, true))
	for _, f := range []string{"bart-adapter/adapter_model.safetensors", "bart-merged/spago_model.bin", "bart-merged/vocab.json"} {
		_, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err, f)
	}
}

func TestBARTExampleBadFlags(t *testing.T) {
	out := t.TempDir()
	assert.ErrorContains(t, run(out, 0, 0.05, true), "-epochs must be at least 1, got 0")
	assert.ErrorContains(t, run(out, 2, 0, true), "-lr")
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	assert.Empty(t, entries, "a refused run writes nothing")
}
