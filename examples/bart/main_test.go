package main

import (
	"encoding/json"
	"os"
	"os/exec"
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
	// The adapter directory as AutoPeftModel needs it: the un-grown base and
	// the tokenizer with the added words next to the adapter.
	adapter := filepath.Join(out, "bart-adapter")
	var cfg struct {
		Base         string `json:"base_model_name_or_path"`
		TokenIndices []int  `json:"token_indices"`
	}
	readJSON(t, filepath.Join(adapter, "adapter_config.json"), &cfg)
	require.True(t, filepath.IsAbs(cfg.Base), cfg.Base)
	var tokCfg map[string]any
	readJSON(t, filepath.Join(adapter, "tokenizer_config.json"), &tokCfg)
	assert.Equal(t, "BartTokenizer", tokCfg["tokenizer_class"])
	var vocab map[string]int
	readJSON(t, filepath.Join(adapter, "vocab.json"), &vocab)
	assert.Len(t, vocab, 1104)
	assert.FileExists(t, filepath.Join(adapter, "merges.txt"))
	var added map[string]int
	readJSON(t, filepath.Join(adapter, "added_tokens.json"), &added)
	assert.Len(t, added, 4)
	for _, id := range cfg.TokenIndices {
		assert.Less(t, id, 1104)
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import torch").Run(); err != nil {
		t.Log("PEFT's loading rules not checked: no /usr/bin/python3 with torch")
		return
	}
	res, err := exec.Command("/usr/bin/python3", filepath.Join("..", "..", "testdata", "peft", "make_fixtures.py"),
		"--check", adapter, "--model", cfg.Base).CombinedOutput()
	require.NoError(t, err, "%s", res)
	assert.Contains(t, string(res), "AutoPeftModel resizes the base to 1104", "%s", res)
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, v), file)
}

func TestBARTExampleBadFlags(t *testing.T) {
	out := t.TempDir()
	assert.ErrorContains(t, run(out, 0, 0.05, true), "-epochs must be at least 1, got 0")
	assert.ErrorContains(t, run(out, 2, 0, true), "-lr")
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	assert.Empty(t, entries, "a refused run writes nothing")
}
