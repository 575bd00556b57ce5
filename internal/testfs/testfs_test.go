package testfs

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSnapshotOfSpecialFiles: a socket on a path longer than a socket
// address may be, a FIFO, a sub-directory and a file, as Files and Names
// report them; Within returns what a prompt call returns.
func TestSnapshotOfSpecialFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	require.NoError(t, os.Mkdir(dir, 0o755))
	l := ListenUnix(t, filepath.Join(dir, "sock"))
	c, err := net.Dial("unix", l.Addr().String())
	require.NoError(t, err, "the socket accepts connections")
	c.Close()
	Mkfifo(t, filepath.Join(dir, "fifo"))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("content"), 0o644))

	assert.Equal(t, map[string]string{
		"f":    "content",
		"fifo": "<p--------->",
		"sock": "<S--------->",
		"sub":  "<d--------->",
	}, Files(t, dir))
	assert.Equal(t, []string{"f", "fifo", "sock", "sub"}, Names(t, dir))
	assert.EqualError(t, Within(t, func() error { return os.ErrClosed }), os.ErrClosed.Error())
}
