package finetune

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRenderProgress(t *testing.T) {
	assert.Equal(t, "train step 12/40  loss 2.3456  410ms/step  eta 11s", renderProgress(12, 40, 2.3456, 12*410*time.Millisecond))
	assert.Equal(t, "train step 40/40  loss 2.3456  1s/step  eta 0s", renderProgress(40, 40, 2.3456, 40*time.Second))
	assert.Equal(t, "train step 0/3  loss 1.0000  2s/step  eta 6s", renderProgress(0, 3, 1, 2*time.Second))
}

// TestProgressOnlyWhenAsked: nothing is written without a writer or with
// Quiet; with one, a line every tenth of the run and at the last step.
func TestProgressOnlyWhenAsked(t *testing.T) {
	for _, p := range []*progress{newProgress(nil, false, 20), newProgress(&bytes.Buffer{}, true, 20)} {
		for i := 1; i <= 20; i++ {
			p.update(i, 1)
		}
		assert.Nil(t, p.w)
	}
	var buf bytes.Buffer
	p := newProgress(&buf, false, 25)
	for i := 1; i <= 25; i++ {
		p.update(i, 1)
	}
	p.finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	assert.Len(t, lines, 13) // steps 2, 4, …, 24 and 25
	assert.True(t, strings.HasPrefix(lines[len(lines)-1], "train step 25/25  loss 1.0000"), lines[len(lines)-1])
}
