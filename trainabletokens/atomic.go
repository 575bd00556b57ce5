package trainabletokens

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// saveHook, when set (by tests), is called at each stage of writeDirAtomic;
// an error it returns aborts the save there, as a crash or I/O error would.
var saveHook func(stage string) error

func hook(stage string) error {
	if saveHook == nil {
		return nil
	}
	if err := saveHook(stage); err != nil {
		return fmt.Errorf("%s: %w", stage, err)
	}
	return nil
}

// writeDirAtomic makes dir hold exactly files (name → content) plus the
// entries of an existing dir that files does not name, in one atomic
// directory replacement:
//
//  1. a temporary directory is created next to dir (same file system);
//  2. the other entries of the existing dir are hard-linked (or copied)
//     into it, so nothing the user kept there is lost;
//  3. each file is written and fsynced, then the directory is fsynced;
//  4. the temporary directory replaces dir: on Linux with renameat2
//     RENAME_EXCHANGE (atomic even across a crash), elsewhere, or where the
//     file system lacks it, with two renames that are rolled back on error;
//  5. the old directory (now under the temporary name) is removed.
//
// On any error before step 4 dir is untouched and the temporary directory
// is removed.
func writeDirAtomic(dir string, files map[string][]byte) (err error) {
	dir = filepath.Clean(dir)
	if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// Replace the directory the link points to, keep the link.
		if dir, err = filepath.EvalSymlinks(dir); err != nil {
			return fmt.Errorf("trainabletokens: save: %w", err)
		}
	}
	old, statErr := os.Stat(dir)
	exists := statErr == nil
	switch {
	case exists && !old.IsDir():
		return fmt.Errorf("trainabletokens: save: %s exists and is not a directory", dir)
	case statErr != nil && !errors.Is(statErr, fs.ErrNotExist):
		return fmt.Errorf("trainabletokens: save: %w", statErr)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("trainabletokens: save: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("trainabletokens: save: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			err = fmt.Errorf("trainabletokens: save %s: %w", dir, err)
		}
	}()
	mode := fs.FileMode(0o755)
	if exists {
		mode = old.Mode().Perm()
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	if exists {
		if err := hook("carry over"); err != nil {
			return err
		}
		if err := carryOver(dir, tmp, files); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := writeFileSynced(filepath.Join(tmp, n), files[n], n); err != nil {
			return err
		}
	}
	if err := hook("sync"); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if err := hook("replace"); err != nil {
		return err
	}
	if !exists {
		if err := os.Rename(tmp, dir); err != nil {
			return err
		}
		return syncDir(parent)
	}
	if err := exchange(tmp, dir); err != nil {
		return err
	}
	// tmp now holds the old directory; the new one is in place.
	_ = syncDir(parent)
	if rerr := os.RemoveAll(tmp); rerr != nil {
		return nil // the new adapter is saved; a stale temp dir is harmless
	}
	return nil
}

// exchangeImpl is the atomic exchange; tests replace it to exercise the
// fallback.
var exchangeImpl = renameExchange

// exchange swaps directories a and b, atomically where the platform can.
// Without an atomic exchange it moves b aside, renames a to b and moves the
// old b to a; if the middle rename fails, b is moved back.
func exchange(a, b string) error {
	if err := exchangeImpl(a, b); err == nil {
		return nil
	} else if !errors.Is(err, errExchangeUnsupported) {
		return err
	}
	side, err := os.MkdirTemp(filepath.Dir(b), "."+filepath.Base(b)+".old-")
	if err != nil {
		return err
	}
	if err := os.Remove(side); err != nil {
		return err
	}
	if err := os.Rename(b, side); err != nil {
		return err
	}
	err = hook("replace: old directory moved aside")
	if err == nil {
		err = os.Rename(a, b)
	}
	if err != nil {
		if rerr := os.Rename(side, b); rerr != nil {
			return fmt.Errorf("%w; restoring the previous directory from %s also failed: %v", err, side, rerr)
		}
		return err
	}
	if err := os.Rename(side, a); err != nil {
		os.RemoveAll(side) // the new directory is in place; drop the old one here
	}
	return nil
}

// errExchangeUnsupported is returned by renameExchange where the platform
// or file system has no atomic exchange.
var errExchangeUnsupported = errors.New("atomic directory exchange unsupported")

func writeFileSynced(path string, data []byte, name string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	half := len(data) / 2
	if _, err := f.Write(data[:half]); err != nil {
		f.Close()
		return err
	}
	if err := hook("write " + name); err != nil { // half written
		f.Close()
		return err
	}
	if _, err := f.Write(data[half:]); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}

// carryOver links (or copies) every entry of src but the ones in skip into dst.
func carryOver(src, dst string, skip map[string][]byte) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, ours := skip[e.Name()]; ours {
			continue
		}
		if err := linkTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// linkTree recreates src at dst: directories are created, files
// hard-linked (copied when linking fails), symlinks re-created.
func linkTree(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case fi.IsDir():
		if err := os.Mkdir(dst, fi.Mode().Perm()); err != nil {
			return err
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := linkTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
		return nil
	case fi.Mode().IsRegular():
		if os.Link(src, dst) == nil {
			return nil
		}
		return copyFile(src, dst, fi.Mode().Perm())
	}
	return fmt.Errorf("cannot carry over %s: unsupported file type %v", src, fi.Mode().Type())
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
