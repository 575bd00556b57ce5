package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testfs"
)

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o2775|fs.ModeSetgid))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a"), []byte("old a"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mine"), []byte("user's"), 0o644))
	testfs.Mkfifo(t, filepath.Join(dir, "fifo"))
	before, err := os.Stat(dir)
	require.NoError(t, err)

	files := []File{{Name: "a", Data: []byte("new a"), Perm: 0o644}, {Name: "b", Data: []byte("new b"), Perm: 0o640}}
	require.NoError(t, WriteFiles(dir, files, Options{}))
	got := testfs.Files(t, dir)
	assert.Equal(t, map[string]string{"a": "new a", "b": "new b", "mine": "user's", "fifo": "<p--------->"}, got)
	fi, err := os.Stat(filepath.Join(dir, "a"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "an existing file keeps its permission")
	after, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, before.Mode(), after.Mode(), "directory mode (setgid included) untouched")
	assert.True(t, os.SameFile(before, after), "same directory inode")
}

// Every stage fails in turn: no temporary file survives, and with
// AllOrNothing every destination keeps its old content.
func TestInjectedFailures(t *testing.T) {
	stages := []string{"write a", "write b", "sync", "backup", "rename a", "rename b", "sync dir"}
	for _, allOrNothing := range []bool{false, true} {
		for _, stage := range stages {
			if stage == "backup" && !allOrNothing {
				continue
			}
			t.Run(stage, func(t *testing.T) {
				dir := t.TempDir()
				require.NoError(t, os.WriteFile(filepath.Join(dir, "a"), []byte("old a"), 0o644))
				require.NoError(t, os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644))
				old := testfs.Files(t, dir)
				boom := errors.New("injected")
				err := WriteFiles(dir, []File{{Name: "a", Data: []byte("new a")}, {Name: "b", Data: []byte("new b")}},
					Options{AllOrNothing: allOrNothing, Hook: func(s string) error {
						if s == stage {
							return boom
						}
						return nil
					}})
				require.ErrorIs(t, err, boom)
				assert.ErrorContains(t, err, stage)
				now := testfs.Files(t, dir)
				switch {
				case allOrNothing, stage == "write a", stage == "write b", stage == "sync", stage == "rename a":
					assert.Equal(t, old, now, "nothing changed, no temporary file")
				case stage == "rename b":
					assert.Equal(t, map[string]string{"a": "new a", "other": "x"}, now, "first file renamed, no temporary file")
				default:
					assert.Equal(t, map[string]string{"a": "new a", "b": "new b", "other": "x"}, now)
				}
			})
		}
	}
}

func TestRefusesSpecialDestinations(t *testing.T) {
	dir := t.TempDir()
	testfs.Mkfifo(t, filepath.Join(dir, "fifo"))
	testfs.ListenUnix(t, filepath.Join(dir, "sock"))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "target"), []byte("t"), 0o644))
	require.NoError(t, os.Symlink("target", filepath.Join(dir, "link")))
	old := testfs.Files(t, dir)
	for _, name := range []string{"fifo", "sock", "sub", "link"} {
		err := WriteFiles(dir, []File{{Name: "ok", Data: []byte("x")}, {Name: name, Data: []byte("x")}}, Options{})
		require.ErrorIs(t, err, ErrNotRegular, name)
		assert.ErrorContains(t, err, filepath.Join(dir, name))
		assert.Equal(t, old, testfs.Files(t, dir), "nothing written for %s", name)
	}
	assert.ErrorContains(t, WriteFiles(dir, []File{{Name: "../x"}}, Options{}), "not a plain file name")
	assert.ErrorContains(t, WriteFiles(dir, []File{{Name: "x"}, {Name: "x"}}, Options{}), "given twice")
}

func TestWriteFileAndFunc(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	require.NoError(t, WriteFile(p, []byte("one"), 0o600))
	require.NoError(t, WriteFunc(p, 0o644, func(w io.Writer) error { _, err := io.WriteString(w, "two"); return err }))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))
	boom := errors.New("encoder failed")
	err = WriteFunc(p, 0o644, func(w io.Writer) error { io.WriteString(w, "par"); return boom })
	require.ErrorIs(t, err, boom)
	assert.Equal(t, map[string]string{"f": "two"}, testfs.Files(t, dir))
	// The error of a missing directory wraps fs.ErrNotExist.
	err = WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o644)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	// Relative paths in the working directory work.
	t.Chdir(dir)
	require.NoError(t, WriteFile("rel", []byte("r"), 0o644))
	names := []string{}
	for n := range testfs.Files(t, ".") {
		names = append(names, n)
	}
	sort.Strings(names)
	assert.Equal(t, []string{"f", "rel"}, names)
}

func TestPermissionError(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o555))
	defer os.Chmod(dir, 0o755)
	err := WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	assert.ErrorIs(t, err, fs.ErrPermission)
}

func TestMkdirAllUndo(t *testing.T) {
	p := t.TempDir()
	undo, err := MkdirAll(filepath.Join(p, "a", "b", "c"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(p, "a", "keep"), nil, 0o644))
	undo()
	assert.Equal(t, map[string]string{"keep": ""}, testfs.Files(t, filepath.Join(p, "a")), "created empty dirs removed, a non-empty one kept")
	undo, err = MkdirAll(p)
	require.NoError(t, err)
	undo()
	assert.DirExists(t, p, "an existing directory is never removed")
}

// TestKeepsExactPermissions: an existing file keeps its exact permission
// bits, even those the umask would clear; a new file gets Perm.
func TestKeepsExactPermissions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "shared")
	require.NoError(t, os.WriteFile(p, []byte("old"), 0o600))
	require.NoError(t, os.Chmod(p, 0o666)) // beyond a 022 umask
	require.NoError(t, WriteFile(p, []byte("new"), 0o644))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o666), fi.Mode().Perm())
	require.NoError(t, WriteFile(filepath.Join(dir, "fresh"), []byte("x"), 0o600))
	fi, err = os.Stat(filepath.Join(dir, "fresh"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
}
