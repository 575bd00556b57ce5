package testfs

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Timeout is how long Within waits: a call blocked on a FIFO never
// returns, a correct one returns at once.
const Timeout = 10 * time.Second

// Within runs fn and returns its error; it fails the test if fn does not
// return within Timeout (a read or write blocked on a special file).
func Within(t testing.TB, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(Timeout):
		t.Fatalf("blocked for %v (on a special file?)", Timeout)
		return nil
	}
}

// Mkfifo makes a named pipe (FIFO) at path.
func Mkfifo(t testing.TB, path string) {
	t.Helper()
	require.NoError(t, syscall.Mkfifo(path, 0o644))
}

// ListenUnix makes a unix socket at path, through a short symbolic link to
// its directory: socket addresses are limited to about 100 bytes, and test
// directories can be longer. The socket and the link go at the test's end.
func ListenUnix(t testing.TB, path string) net.Listener {
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

// Files maps every entry of dir (not recursively) to its content, and
// every entry that is not a regular file to "<" + its type + ">".
func Files(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			out[e.Name()] = "<" + e.Type().String() + ">"
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = string(b)
	}
	return out
}

// Names lists the names of dir's entries, sorted.
func Names(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
