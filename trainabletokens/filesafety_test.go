package trainabletokens

// Issue 10 (points 1, 2 and 8, file part): Save writes its own two files
// and touches nothing else; nothing blocks on a special file; file-system
// errors wrap the os error; errors never print a whole token list. These
// tests use only API that existed before the fix, so that they can be run
// against the old code (where they fail or hang).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testfs"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/registry"
)

func savedModel(t *testing.T, ids ...int) *Model {
	t.Helper()
	tm, err := New(testmodels.BERT(t), Config{TokenIndices: ids}, "")
	require.NoError(t, err)
	return tm
}

// TestSaveLeavesDirectoryAlone saves over an existing adapter in
// directories holding what users keep there; the directory itself and
// every other entry must be left exactly as they were.
func TestSaveLeavesDirectoryAlone(t *testing.T) {
	tm := savedModel(t, 10, 11)
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) // adds the user's entries
	}{
		{"files and sub-directories", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("notes"), 0o600))
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "other", "deep"), 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "other", "deep", "x"), []byte("x"), 0o644))
		}},
		{"a FIFO", func(t *testing.T, dir string) {
			testfs.Mkfifo(t, filepath.Join(dir, "pipe"))
		}},
		{"a socket", func(t *testing.T, dir string) {
			testfs.ListenUnix(t, filepath.Join(dir, "sock"))
		}},
		{"setgid mode", func(t *testing.T, dir string) {
			require.NoError(t, os.Chmod(dir, 0o770|fs.ModeSetgid))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "adapter")
			require.NoError(t, os.Mkdir(dir, 0o755))
			require.NoError(t, tm.Save(dir, "", SaveOptions{}))
			tc.setup(t, dir)
			before := entries(t, dir)
			dirBefore, err := os.Stat(dir)
			require.NoError(t, err)
			// An open handle on the directory sees the new files.
			handle, err := os.Open(dir)
			require.NoError(t, err)
			defer handle.Close()

			perturb(t, tm, "default", 3)
			require.NoError(t, testfs.Within(t, func() error { return tm.Save(dir, "", SaveOptions{}) }))

			dirAfter, err := os.Stat(dir)
			require.NoError(t, err)
			assert.True(t, os.SameFile(dirBefore, dirAfter), "the directory is the same inode")
			assert.Equal(t, dirBefore.Mode(), dirAfter.Mode(), "mode, setgid included")
			assert.Equal(t, dirBefore.Sys().(*syscall.Stat_t).Uid, dirAfter.Sys().(*syscall.Stat_t).Uid)
			assert.Equal(t, dirBefore.Sys().(*syscall.Stat_t).Gid, dirAfter.Sys().(*syscall.Stat_t).Gid)
			after := entries(t, dir)
			for name, id := range before {
				if name == ConfigFile || name == WeightsFile {
					continue
				}
				assert.Equal(t, id, after[name], "%s left alone (same inode and mode)", name)
			}
			assert.Len(t, after, len(before), "no entry added or removed: %v", after)
			names, err := handle.Readdirnames(-1)
			require.NoError(t, err)
			assert.Contains(t, names, WeightsFile)
			_, err = Load(testmodels.BERT(t), dir, "")
			assert.NoError(t, err)
		})
	}
}

// entries maps each entry of dir (recursively) to its inode and mode.
func entries(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("ino %d mode %v", fi.Sys().(*syscall.Stat_t).Ino, fi.Mode())
		return nil
	}))
	return out
}

// TestSaveKeepsFilesCreatedMeanwhile: files other code creates in the
// directory while Save runs (here at every stage of the write) survive.
func TestSaveKeepsFilesCreatedMeanwhile(t *testing.T) {
	tm := savedModel(t, 10, 11)
	dir := filepath.Join(t.TempDir(), "adapter")
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	var created []string
	saveHook = func(stage string) error {
		name := fmt.Sprintf("meanwhile-%d", len(created))
		created = append(created, name)
		return os.WriteFile(filepath.Join(dir, name), []byte(stage), 0o644)
	}
	defer func() { saveHook = nil }()
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	require.NotEmpty(t, created)
	for _, name := range created {
		assert.FileExists(t, filepath.Join(dir, name))
	}
	saveHook = nil

	// The same with another goroutine writing files while Saves run (the
	// issue's measurement: the directory swap lost 52 of 86 such files).
	stop := make(chan struct{})
	done := make(chan []string)
	go func() {
		var names []string
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- names
				return
			default:
			}
			name := fmt.Sprintf("concurrent-%d", i)
			if os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644) == nil {
				names = append(names, name)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	for i := 0; i < 20; i++ {
		require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	}
	close(stop)
	names := <-done
	require.NotEmpty(t, names)
	var lost int
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			lost++
		}
	}
	assert.Zero(t, lost, "of %d files written during the saves", len(names))
}

// TestSaveNextToNothing: Save creates nothing outside the directory (so a
// writable directory under a read-only parent works).
func TestSaveNextToNothing(t *testing.T) {
	tm := savedModel(t, 10, 11)
	parent := t.TempDir()
	dir := filepath.Join(parent, "adapter")
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	var extra []string
	saveHook = func(string) error {
		list, err := os.ReadDir(parent)
		for _, e := range list {
			if e.Name() != "adapter" {
				extra = append(extra, e.Name())
			}
		}
		return err
	}
	defer func() { saveHook = nil }()
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	assert.Empty(t, extra, "entries created next to the directory during Save")

	if os.Geteuid() != 0 { // root ignores the parent's mode
		saveHook = nil
		require.NoError(t, os.Chmod(parent, 0o555))
		defer os.Chmod(parent, 0o755)
		assert.NoError(t, tm.Save(dir, "", SaveOptions{}))
	}
}

// TestSaveWorkingDirectory: Save(".") and a working directory inside the
// target both work, and the working directory stays valid.
func TestSaveWorkingDirectory(t *testing.T) {
	tm := savedModel(t, 10, 11)
	dir := filepath.Join(t.TempDir(), "adapter")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mine.txt"), []byte("mine"), 0o644))
	t.Chdir(dir)
	before, err := os.Stat(".")
	require.NoError(t, err)

	require.NoError(t, tm.Save(".", "", SaveOptions{}))
	require.NoError(t, tm.Save(dir, "", SaveOptions{}), "absolute path with the working directory inside")
	t.Chdir("sub")
	require.NoError(t, tm.Save("..", "", SaveOptions{}))
	t.Chdir("..")

	after, err := os.Stat(".")
	require.NoError(t, err)
	assert.True(t, os.SameFile(before, after), "the working directory is still the adapter directory")
	names, err := os.ReadDir(".")
	require.NoError(t, err)
	var got []string
	for _, e := range names {
		got = append(got, e.Name())
	}
	assert.ElementsMatch(t, []string{ConfigFile, WeightsFile, "mine.txt", "sub"}, got)
	_, err = Load(testmodels.BERT(t), ".", "")
	assert.NoError(t, err)
}

// TestLoadRefusesMixedPair: a config and weights from different saves (a
// save interrupted between its two renames) are refused with an error
// naming both files.
func TestLoadRefusesMixedPair(t *testing.T) {
	cases := []struct {
		name     string
		old, new []int
	}{
		{"different ids", []int{10, 11}, []int{12, 13, 14}},
		{"same ids, other order", []int{10, 11}, []int{11, 10}},
		{"long lists (digest)", seq(100, 80), seq(101, 80)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
			require.NoError(t, savedModel(t, tc.old...).Save(a, "", SaveOptions{}))
			require.NoError(t, savedModel(t, tc.new...).Save(b, "", SaveOptions{}))
			for _, f := range []string{WeightsFile, ConfigFile} { // new weights + old config, then the reverse
				mixed := t.TempDir()
				for _, g := range []string{WeightsFile, ConfigFile} {
					src := a
					if g == f {
						src = b
					}
					data, err := os.ReadFile(filepath.Join(src, g))
					require.NoError(t, err)
					require.NoError(t, os.WriteFile(filepath.Join(mixed, g), data, 0o644))
				}
				_, err := Load(testmodels.BERT(t), mixed, "")
				require.ErrorIs(t, err, ErrInvalidAdapterFile)
				assert.ErrorContains(t, err, filepath.Join(mixed, ConfigFile))
				assert.ErrorContains(t, err, filepath.Join(mixed, WeightsFile))
				assert.ErrorContains(t, err, "different saves")
			}
		})
	}
}

func seq(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// TestLoadSpecialFiles: a FIFO, socket or device in place of either file is
// a clear error at once; an oversized config is refused.
func TestLoadSpecialFiles(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good")
	require.NoError(t, savedModel(t, 10, 11).Save(good, "", SaveOptions{}))
	specials := map[string]func(t *testing.T, path string){
		"FIFO": func(t *testing.T, p string) { testfs.Mkfifo(t, p) },
		"socket": func(t *testing.T, p string) {
			testfs.ListenUnix(t, p)
		},
		"device": func(t *testing.T, p string) { require.NoError(t, os.Symlink("/dev/zero", p)) },
	}
	for kind, make := range specials {
		for _, file := range []string{ConfigFile, WeightsFile} {
			t.Run(kind+" as "+file, func(t *testing.T) {
				dir := t.TempDir()
				for _, f := range []string{ConfigFile, WeightsFile} {
					if f != file {
						data, err := os.ReadFile(filepath.Join(good, f))
						require.NoError(t, err)
						require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
					}
				}
				make(t, filepath.Join(dir, file))
				m := testmodels.BERT(t)
				before := snapshot(m)
				start := time.Now()
				err := testfs.Within(t, func() error { _, err := Load(m, dir, ""); return err })
				require.ErrorIs(t, err, ErrInvalidAdapterFile)
				assert.ErrorContains(t, err, "not a regular file")
				assert.ErrorContains(t, err, filepath.Join(dir, file))
				assert.Less(t, time.Since(start), 2*time.Second, "refused at once")
				requireSame(t, before, m)
			})
		}
	}
	t.Run("config above the cap", func(t *testing.T) {
		dir := t.TempDir()
		data, err := os.ReadFile(filepath.Join(good, WeightsFile))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, WeightsFile), data, 0o644))
		f, err := os.Create(filepath.Join(dir, ConfigFile))
		require.NoError(t, err)
		require.NoError(t, f.Truncate(MaxConfigSize+1)) // sparse: cheap to make
		require.NoError(t, f.Close())
		_, err = Load(testmodels.BERT(t), dir, "")
		require.ErrorIs(t, err, ErrInvalidAdapterFile)
		assert.ErrorContains(t, err, fmt.Sprintf("more than the limit of %d", MaxConfigSize))
	})
}

// TestFileErrorsWrapOSErrors: errors.Is finds the os error in Load's and
// Save's file-system errors, and the errors stay short.
func TestFileErrorsWrapOSErrors(t *testing.T) {
	tm := savedModel(t, 10, 11)
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := Load(testmodels.BERT(t), missing, "")
	assert.ErrorIs(t, err, fs.ErrNotExist, "missing directory")
	assert.ErrorIs(t, err, ErrInvalidAdapterFile)

	half := t.TempDir()
	require.NoError(t, tm.Save(half, "", SaveOptions{}))
	require.NoError(t, os.Remove(filepath.Join(half, WeightsFile)))
	_, err = Load(testmodels.BERT(t), half, "")
	assert.ErrorIs(t, err, fs.ErrNotExist, "missing weights")
	assert.ErrorContains(t, err, filepath.Join(half, WeightsFile))
	require.NoError(t, os.Remove(filepath.Join(half, ConfigFile)))
	_, err = Load(testmodels.BERT(t), half, "")
	assert.ErrorIs(t, err, fs.ErrNotExist, "missing config")

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	err = tm.Save(filepath.Join(file, "sub"), "", SaveOptions{})
	assert.ErrorIs(t, err, syscall.ENOTDIR)
	assert.Less(t, len(err.Error()), 400, err.Error())

	// A destination name taken by a directory: refused, short, nothing changed.
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, ConfigFile), 0o755))
	t.Chdir(dir)
	err = tm.Save(".", "", SaveOptions{})
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 400, err.Error())
	assert.NoFileExists(t, filepath.Join(dir, WeightsFile))

	if os.Geteuid() != 0 {
		ro := t.TempDir()
		require.NoError(t, os.Chmod(ro, 0o555))
		defer os.Chmod(ro, 0o755)
		assert.ErrorIs(t, tm.Save(ro, "", SaveOptions{}), fs.ErrPermission)
	}
}

// TestErrorsShowFewTokenIDs: an error about a file with many token ids
// gives their count and the first few, not the whole list.
func TestErrorsShowFewTokenIDs(t *testing.T) {
	ids := seq(100, 500)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"peft_type": "TRAINABLE_TOKENS", "token_indices": %s}`, strings.ReplaceAll(fmt.Sprint(ids), " ", ", "))
	weights := buildST(map[string]string{"format": "pt"}, stEntry{wordKey, "F32", []int{2, 32}, f32Bytes(goodRows(2, 32)...)})
	require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte(cfg), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, WeightsFile), weights, 0o644))
	_, err := Load(testmodels.BERT(t), dir, "")
	require.ErrorIs(t, err, ErrInvalidAdapterFile)
	assert.ErrorContains(t, err, "has 2 rows; expected 500")
	assert.NotContains(t, err.Error(), "599", "the whole list is printed")
	assert.Less(t, len(err.Error()), 600, err.Error())
	assert.False(t, errors.Is(err, fs.ErrNotExist))
}

// TestRegistryLoadAdapterFIFO: registry.LoadAdapter reads the config's
// peft_type first; a FIFO there is an error at once too.
func TestRegistryLoadAdapterFIFO(t *testing.T) {
	dir := t.TempDir()
	testfs.Mkfifo(t, filepath.Join(dir, ConfigFile))
	err := testfs.Within(t, func() error { _, err := registry.LoadAdapter(testmodels.BERT(t), dir, ""); return err })
	require.Error(t, err)
	assert.ErrorContains(t, err, "not a regular file")
}

// TestSaveKeepsMountInside: a file system mounted inside the directory
// stays mounted with its files (needs the right to mount; skipped without).
func TestSaveKeepsMountInside(t *testing.T) {
	tm := savedModel(t, 10, 11)
	dir := filepath.Join(t.TempDir(), "adapter")
	mnt := filepath.Join(dir, "mnt")
	require.NoError(t, os.MkdirAll(mnt, 0o755))
	if err := syscall.Mount("none", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	require.NoError(t, os.WriteFile(filepath.Join(mnt, "data"), []byte("on tmpfs"), 0o644))
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))
	perturb(t, tm, "default", 5)
	require.NoError(t, tm.Save(dir, "", SaveOptions{}))

	var outer, inner syscall.Stat_t
	require.NoError(t, syscall.Stat(dir, &outer))
	require.NoError(t, syscall.Stat(mnt, &inner))
	assert.NotEqual(t, outer.Dev, inner.Dev, "still a mount point")
	got, err := os.ReadFile(filepath.Join(mnt, "data"))
	require.NoError(t, err)
	assert.Equal(t, "on tmpfs", string(got))
}
