package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A small configuration runs end to end and prints every figure with its
// goal (the timing itself is not asserted: that is what the command is for).
func TestRunSmall(t *testing.T) {
	cfg := config{vocab: 300, hidden: 16, layers: 2, heads: 2, ffn: 32, seqLen: 12, batch: 4, masks: 3, adapterIDs: 6, reps: 1, models: "bert,bart"}
	var b bytes.Buffer
	_, err := run(&b, cfg)
	require.NoError(t, err)
	out := b.String()
	for _, m := range []string{"bert", "bart"} {
		assert.Contains(t, out, m+": 4 different adapters in one batch:")
		assert.Contains(t, out, m+": one adapter for all 4:")
		assert.Contains(t, out, m+": mixed / one-adapter throughput = ")
		assert.Contains(t, out, m+": one adapter active, plain batch:")
		assert.Contains(t, out, "(goal >= 0.90: ")
		assert.Contains(t, out, m+": max |mixed - each sample alone with its adapter active| = 0 (goal <= 1e-6: PASS)")
	}
	_, err = run(&b, config{reps: 0})
	assert.Error(t, err)
	assert.True(t, contains("bert,bart", "bart"))
	assert.False(t, contains("bert", "bart"))
}
