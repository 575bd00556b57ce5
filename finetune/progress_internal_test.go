package finetune

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRenderProgress(t *testing.T) {
	tests := []struct {
		done, total int
		elapsed     time.Duration
		want        string
	}{
		{12, 40, 12 * 410 * time.Millisecond, "train 12/40 [=======>                ] loss 2.3456  0.41s/step  eta 11s "},
		{40, 40, 40 * time.Second, "train 40/40 [========================] loss 2.3456  1.00s/step  eta 0s "},
		{1, 3, 2 * time.Second, "train 1/3 [========>               ] loss 2.3456  2.00s/step  eta 4s "},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, renderProgress(tt.done, tt.total, 2.3456, tt.elapsed))
	}
}

func TestProgressOnlyOnTerminals(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, false, 3)
	assert.False(t, p.enabled, "a buffer is not a terminal")
	p.update(3, 1)
	p.finish()
	assert.Empty(t, buf.String())

	assert.False(t, newProgress(os.Stderr, true, 3).enabled, "Quiet")

	f, err := os.CreateTemp(t.TempDir(), "log")
	assert.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f), "a regular file is not a terminal")

	p = &progress{w: &buf, total: 3, start: time.Now(), enabled: true}
	p.update(1, 0.5)
	p.update(2, 0.5) // within 100 ms of the last draw: skipped
	p.update(3, 0.25)
	p.finish()
	out := buf.String()
	assert.Equal(t, 2, strings.Count(out, "\r"))
	assert.Contains(t, out, "train 3/3 [")
	assert.True(t, strings.HasSuffix(out, "\n"))
}
