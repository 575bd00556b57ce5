package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/google/renameio/v2"

	"github.com/gopeft/gopeft/internal/regular"
)

// ErrNotRegular is wrapped by the error for a destination that exists and
// is not a regular file.
var ErrNotRegular = regular.ErrNotRegular

// File is one destination of WriteFiles.
type File struct {
	Name string // base name inside the directory (no separator)
	Data []byte
	// Perm is the permission of a new file (before the umask); a file that
	// already exists keeps its own permission bits.
	Perm fs.FileMode
}

// Options tunes WriteFiles.
type Options struct {
	// AllOrNothing: when a step after the first rename fails, the files
	// already renamed are put back (the previous content, or no file where
	// there was none), so the error leaves every destination as it was.
	// Each existing destination is first hard-linked (or, where links fail,
	// copied) to a temporary name in the directory, removed at the end.
	AllOrNothing bool
	// Hook, when set (by tests), is called at each stage: "write NAME" (with
	// half the data written), "sync", "backup" (AllOrNothing only), "rename
	// NAME" (before that rename) and "sync dir"; an error it returns aborts
	// the call there, as an I/O error would.
	Hook func(stage string) error
}

func (o Options) hook(stage string) error {
	if o.Hook == nil {
		return nil
	}
	if err := o.Hook(stage); err != nil {
		return fmt.Errorf("%s: %w", stage, err)
	}
	return nil
}

// WriteFile writes data to path atomically (see the package comment).
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	dir, name := filepath.Split(path)
	return WriteFiles(dir, []File{{Name: name, Data: data, Perm: perm}}, Options{})
}

// WriteFunc writes path atomically with the content write produces.
func WriteFunc(path string, perm fs.FileMode, write func(io.Writer) error) error {
	if err := checkDest(path); err != nil {
		return err
	}
	pf, err := pending(path, perm)
	if err != nil {
		return err
	}
	defer pf.Cleanup()
	if err := write(pf); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return err
	}
	return SyncDir(dirOf(path))
}

func dirOf(path string) string {
	if d := filepath.Dir(path); d != "" {
		return d
	}
	return "."
}

// pending creates the temporary file for path in path's own directory,
// with the permission bits of an existing regular file at path, or perm
// (before the umask) for a new one. The mode copy is done here rather than
// with renameio's WithExistingPermissions, whose failure path leaves the
// temporary file behind.
func pending(path string, perm fs.FileMode) (*renameio.PendingFile, error) {
	if perm == 0 {
		perm = 0o644
	}
	var keep *fs.FileMode
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		p := fi.Mode().Perm()
		keep, perm = &p, p
	}
	pf, err := renameio.NewPendingFile(path, renameio.WithTempDir(dirOf(path)), renameio.WithPermissions(perm))
	if err != nil {
		return nil, err
	}
	if keep != nil {
		if err := pf.Chmod(*keep); err != nil { // exact bits, whatever the umask
			pf.Cleanup()
			return nil, err
		}
	}
	return pf, nil
}

// checkDest refuses a destination that exists and is not a regular file.
func checkDest(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return &fs.PathError{Op: "replace", Path: path,
			Err: fmt.Errorf("%w: it is a %s; only regular files are replaced", ErrNotRegular, regular.Kind(fi.Mode()))}
	}
	return nil
}

// WriteFiles writes files into dir (which must exist): every temporary file
// is written and fsynced first, then each is renamed over its destination
// in the given order, then dir is fsynced. See the package comment for the
// guarantees; errors wrap the os error (errors.Is(err, fs.ErrPermission)
// works).
func WriteFiles(dir string, files []File, opts Options) (err error) {
	if dir == "" {
		dir = "."
	}
	seen := map[string]bool{}
	for _, f := range files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." {
			return fmt.Errorf("atomicfile: %q is not a plain file name", f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("atomicfile: %q given twice", f.Name)
		}
		seen[f.Name] = true
		if err := checkDest(filepath.Join(dir, f.Name)); err != nil {
			return err
		}
	}

	pfs := make([]*renameio.PendingFile, len(files))
	defer func() {
		for _, pf := range pfs {
			if pf != nil {
				pf.Cleanup() // no-op once renamed
			}
		}
	}()
	for i, f := range files {
		pf, err := pending(filepath.Join(dir, f.Name), f.Perm)
		if err != nil {
			return err
		}
		pfs[i] = pf
		half := len(f.Data) / 2
		if _, err := pf.Write(f.Data[:half]); err != nil {
			return err
		}
		if err := opts.hook("write " + f.Name); err != nil {
			return err
		}
		if _, err := pf.Write(f.Data[half:]); err != nil {
			return err
		}
	}
	if err := opts.hook("sync"); err != nil {
		return err
	}
	for _, pf := range pfs {
		if err := pf.Sync(); err != nil {
			return err
		}
	}

	var backups []backup
	if opts.AllOrNothing {
		defer func() {
			for _, b := range backups {
				if b.tmp != "" {
					os.Remove(b.tmp) // our own link or copy
				}
			}
		}()
		if err := opts.hook("backup"); err != nil {
			return err
		}
		for _, f := range files {
			b, err := makeBackup(dir, f.Name)
			if err != nil {
				return err
			}
			backups = append(backups, b)
		}
	}
	renamed := 0
	defer func() {
		if err != nil && opts.AllOrNothing && renamed > 0 {
			if rerr := rollBack(dir, files[:renamed], backups); rerr != nil {
				err = fmt.Errorf("%w; putting back the previous files also failed: %v", err, rerr)
			}
		}
	}()
	for i, f := range files {
		if err := opts.hook("rename " + f.Name); err != nil {
			return err
		}
		if err := pfs[i].CloseAtomicallyReplace(); err != nil {
			return err
		}
		renamed++
	}
	if err := opts.hook("sync dir"); err != nil {
		return err
	}
	return SyncDir(dir)
}

// backup is an existing destination kept under a temporary name (tmp) for
// the roll-back; tmp is "" when there was no file.
type backup struct{ tmp string }

// makeBackup hard-links (or copies) dir/name to a fresh temporary name.
func makeBackup(dir, name string) (backup, error) {
	dst := filepath.Join(dir, name)
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		return backup{}, nil
	}
	for attempt := 0; attempt < 100; attempt++ {
		tmp := filepath.Join(dir, "."+name+".old"+strconv.FormatUint(rand.Uint64(), 36))
		err := os.Link(dst, tmp)
		if err == nil {
			return backup{tmp}, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		// No hard links here (some file systems): copy instead.
		return copyBackup(dst, tmp)
	}
	return backup{}, fmt.Errorf("atomicfile: no free temporary name for a backup of %s", dst)
}

func copyBackup(src, tmp string) (b backup, err error) {
	in, fi, err := regular.Open(src)
	if err != nil {
		return backup{}, err
	}
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return backup{}, err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(out, in); err != nil {
		return backup{}, err
	}
	if err = out.Sync(); err != nil {
		return backup{}, err
	}
	if err = out.Close(); err != nil {
		return backup{}, err
	}
	return backup{tmp}, nil
}

// rollBack puts back the previous state of the renamed files.
func rollBack(dir string, renamed []File, backups []backup) error {
	var errs []error
	for i := len(renamed) - 1; i >= 0; i-- {
		dst := filepath.Join(dir, renamed[i].Name)
		if b := backups[i]; b.tmp != "" {
			if err := os.Rename(b.tmp, dst); err != nil {
				errs = append(errs, err)
			} else {
				backups[i].tmp = "" // consumed
			}
		} else if err := os.Remove(dst); err != nil { // the file we created
			errs = append(errs, err)
		}
	}
	if err := SyncDir(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SyncDir fsyncs a directory, so that renames in it survive a crash. File
// systems that cannot sync a directory are not an error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// MkdirAll creates dir and any missing parents (mode 0o755 before the
// umask) and returns a function that removes, deepest first, the
// directories it created, as long as they are still empty: for undoing a
// failed write without touching anything that existed before or that
// someone else put there since.
func MkdirAll(dir string) (undo func(), err error) {
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return func() {}, err
	}
	return func() {
		for _, d := range created {
			os.Remove(d) // fails, harmlessly, on a non-empty directory
		}
	}, nil
}
