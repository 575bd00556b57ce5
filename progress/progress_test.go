package progress_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/progress"
)

// TestPlainLines: into a pipe or a buffer the bar writes a plain line every
// tenth of the run and at the last step, with the measured time per step.
func TestPlainLines(t *testing.T) {
	var buf bytes.Buffer
	b := progress.New(&buf, 20)
	for i := 1; i <= 20; i++ {
		require.NoError(t, b.Step(finetune.StepInfo{Step: i, Epoch: (i - 1) / 10, Loss: 1 / float64(i)}))
	}
	b.Finish()
	b.Finish()
	require.NoError(t, b.Step(finetune.StepInfo{Step: 21}))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	assert.Len(t, lines, 10)
	assert.True(t, strings.HasPrefix(lines[0], "step 2/20  epoch 1  loss 0.5000  "), lines[0])
	assert.True(t, strings.HasPrefix(lines[9], "step 20/20  epoch 2  loss 0.0500  "), lines[9])
	assert.True(t, strings.HasSuffix(lines[9], "/step"))
	assert.NotContains(t, buf.String(), "\r", "no bar drawn into a buffer")
}

func TestNilAndTerminal(t *testing.T) {
	var b *progress.Bar
	assert.NoError(t, b.Step(finetune.StepInfo{Step: 1}))
	b.Finish()
	f, err := os.CreateTemp(t.TempDir(), "out")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, progress.IsTerminal(f), "a file is not a terminal")
	assert.False(t, progress.IsTerminal(&bytes.Buffer{}))
	// A zero or negative total does not divide by zero.
	var buf bytes.Buffer
	z := progress.New(&buf, 0)
	assert.NoError(t, z.Step(finetune.StepInfo{Step: 1}))
	assert.Contains(t, buf.String(), "step 1/1")
}
