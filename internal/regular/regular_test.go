package regular

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testfs"
)

// specials makes a FIFO, a socket and a directory in dir.
func specials(t *testing.T, dir string) map[string]string {
	t.Helper()
	fifo := filepath.Join(dir, "fifo")
	testfs.Mkfifo(t, fifo)
	sock := filepath.Join(dir, "sock")
	testfs.ListenUnix(t, sock)
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))
	return map[string]string{"named pipe (FIFO)": fifo, "socket": sock, "directory": sub, "character device": "/dev/null"}
}

func TestSpecialFilesFailAtOnce(t *testing.T) {
	for kind, path := range specials(t, t.TempDir()) {
		t.Run(kind, func(t *testing.T) {
			err := testfs.Within(t, func() error { _, err := ReadFile(path, 0); return err })
			require.ErrorIs(t, err, ErrNotRegular)
			assert.ErrorContains(t, err, kind)
			assert.ErrorContains(t, err, path)
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
