package regular

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// specials makes a FIFO, a socket and a directory in dir.
func specials(t *testing.T, dir string) map[string]string {
	t.Helper()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	sock := filepath.Join(dir, "sock")
	listenUnix(t, sock)
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))
	return map[string]string{"named pipe (FIFO)": fifo, "socket": sock, "directory": sub, "character device": "/dev/null"}
}

func TestSpecialFilesFailAtOnce(t *testing.T) {
	for kind, path := range specials(t, t.TempDir()) {
		t.Run(kind, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := ReadFile(path, 0); done <- err }()
			select {
			case err := <-done:
				require.ErrorIs(t, err, ErrNotRegular)
				assert.ErrorContains(t, err, kind)
				assert.ErrorContains(t, err, path)
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFile blocked on a " + kind)
			}
			assert.ErrorIs(t, Check(path), ErrNotRegular)
		})
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(p, []byte("hello"), 0o644))
	b, err := ReadFile(p, 5)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(b))
	_, err = ReadFile(p, 4)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.ErrorContains(t, err, "5 bytes, more than the limit of 4")
	_, err = ReadFile(filepath.Join(dir, "missing"), 0)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	// A link to a regular file is fine.
	require.NoError(t, os.Symlink("f", filepath.Join(dir, "link")))
	_, err = ReadFile(filepath.Join(dir, "link"), 0)
	assert.NoError(t, err)
	if os.Geteuid() != 0 {
		require.NoError(t, os.Chmod(p, 0))
		_, err = ReadFile(p, 0)
		assert.True(t, errors.Is(err, fs.ErrPermission), "%v", err)
	}
}

// listenUnix makes a unix socket at path, through a short symbolic link to
// its directory: socket addresses are limited to about 100 bytes, and
// test directories can be longer.
func listenUnix(t *testing.T, path string) net.Listener {
	t.Helper()
	base := "/tmp"
	if _, err := os.Stat(base); err != nil {
		base = ""
	}
	short, err := os.MkdirTemp(base, "sk")
	require.NoError(t, err)
	link := filepath.Join(short, "d")
	require.NoError(t, os.Symlink(filepath.Dir(path), link))
	l, err := net.Listen("unix", filepath.Join(link, filepath.Base(path)))
	require.NoError(t, err)
	t.Cleanup(func() { l.Close(); os.RemoveAll(short) })
	return l
}
