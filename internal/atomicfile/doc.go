// Package atomicfile is gopeft's one way of writing files: each file goes
// to a temporary file in its own directory, is fsynced, renamed over the
// destination, and the directory is fsynced (built on
// github.com/google/renameio/v2, which gives the temporary file and the
// rename; this package adds the directory fsync, the special-file refusal,
// several files per call and the optional roll-back).
//
// Guarantees: a reader (or a crash) sees each destination file with its old
// content or its new content, never a partial one; an error leaves no
// temporary file behind; nothing but the destination files is created,
// replaced or removed (the directory itself, its mode and owner, and every
// other entry are left alone); a destination that exists and is not a
// regular file (directory, symbolic link, FIFO, socket, device) is refused
// before anything is written. With Options.AllOrNothing an error also puts
// back the files already renamed, so a failed call leaves every file as it
// was; a crash (power loss, kill -9) between two renames can still leave
// some files new and some old, which callers that need more detect
// themselves (a digest in one file of the others).
//
// It owns how files are written. It must not know what the files hold.
package atomicfile
