package models_test

import (
	"bufio"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft"
	"github.com/gopeft/gopeft/models"
)

// Convert changes no process-wide state: other goroutines' stdout output
// during a conversion arrives (the old Convert swapped os.Stdout for
// /dev/null and lost it), nothing of the converter's reaches stdout, and
// zerolog's global level is left alone.
func TestConvertLeavesProcessStateAlone(t *testing.T) {
	work := t.TempDir()
	dir, err := gopeft.WriteTinyModel("bert-tiny", work)
	require.NoError(t, err)

	r, w, err := os.Pipe()
	require.NoError(t, err)
	old := os.Stdout
	os.Stdout = w // the test's own redirection, to read what the process prints
	defer func() { os.Stdout = old }()
	var lines []string
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}()
	level := zerolog.GlobalLevel()
	zerolog.SetGlobalLevel(zerolog.DebugLevel)
	defer zerolog.SetGlobalLevel(level)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	written := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_, err := os.Stdout.WriteString("other goroutine\n")
				if err == nil {
					written++
				}
			}
		}
	}()
	err = models.Convert(dir, true)
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	assert.Equal(t, zerolog.DebugLevel, zerolog.GlobalLevel())
	os.Stdout = old
	w.Close()
	<-read
	require.Positive(t, written)
	assert.Len(t, lines, written, "every line another goroutine printed during Convert arrived")
	for _, l := range lines {
		require.Equal(t, "other goroutine", l, "the converter printed on stdout")
	}
	_, err = os.Stat(filepath.Join(dir, models.SpagoFile))
	assert.NoError(t, err)
}
