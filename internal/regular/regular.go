package regular

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrNotRegular is wrapped by every error about a path that exists but is
// not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by ReadFile's error for a file above its limit.
var ErrTooLarge = errors.New("file too large")

// Kind names the file type of mode for messages ("named pipe (FIFO)",
// "socket", "directory", ...).
func Kind(mode fs.FileMode) string {
	switch t := mode.Type(); {
	case t == 0:
		return "regular file"
	case t&fs.ModeDir != 0:
		return "directory"
	case t&fs.ModeSymlink != 0:
		return "symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeCharDevice != 0:
		return "character device"
	case t&fs.ModeDevice != 0:
		return "device"
	default:
		return "special file (" + t.String() + ")"
	}
}

// notRegular is the error for path of the given mode.
func notRegular(path string, mode fs.FileMode) error {
	return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: it is a %s", ErrNotRegular, Kind(mode))}
}

// Check returns nil when path (following symbolic links) is a regular
// file, an error wrapping ErrNotRegular when it is something else, and the
// os error (fs.ErrNotExist, fs.ErrPermission, ...) when it cannot be
// examined.
func Check(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return notRegular(path, fi.Mode())
	}
	return nil
}

// Open opens path for reading if it is a regular file, with its FileInfo.
// It never blocks: see the package comment. Errors are *fs.PathError
// values wrapping the os error or ErrNotRegular.
func Open(path string) (*os.File, fs.FileInfo, error) {
	if err := Check(path); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() { // replaced between Stat and open
		f.Close()
		return nil, nil, notRegular(path, fi.Mode())
	}
	return f, fi, nil
}

// ReadFile reads the regular file path whole, refusing (with an error
// wrapping ErrTooLarge, before reading) a file larger than limit bytes.
// limit <= 0 means no limit.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, fi, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if limit > 0 && fi.Size() > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrTooLarge, fi.Size(), limit)}
	}
	var r io.Reader = f
	if limit > 0 { // the file may grow while we read
		r = io.LimitReader(f, limit+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	if limit > 0 && int64(len(data)) > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: more than the limit of %d bytes", ErrTooLarge, limit)}
	}
	return data, nil
}
