package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example end to end: the words take [unused0]…, vocab.txt keeps its
// length with the words at their slots, and the adapter on the unchanged
// base predicts what the trained model predicts.
func TestReservedExample(t *testing.T) {
	out := t.TempDir()
	var b bytes.Buffer
	require.NoError(t, run(&b, options{outDir: out, epochs: 1, quiet: true}))
	s := b.String()
	assert.Contains(t, s, "30 reserved slots free; vocabulary stays at 1038 rows")
	assert.Contains(t, s, "zorblax  -> id 5 (was [unused0])")
	assert.Contains(t, s, `vocab.txt line 6 now reads "zorblax"`)
	assert.Contains(t, s, "adapter loaded into the unchanged base (1038 rows, no resize)")
	assert.Contains(t, s, "predicted identically bit for bit: true")
	data, err := os.ReadFile(filepath.Join(out, "vocab", "vocab.txt"))
	require.NoError(t, err)
	assert.Equal(t, 1038, bytes.Count(data, []byte("\n")))
	for _, f := range []string{"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "vocab/added_tokens.json"} {
		_, err := os.Stat(filepath.Join(out, f))
		assert.NoError(t, err, f)
	}
	assert.ErrorContains(t, run(&b, options{outDir: out, epochs: 0}), "-epochs 0")
}
