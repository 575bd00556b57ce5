//go:build !unix

package regular

// openFlags: no non-blocking open here; the Stat check before opening
// still refuses special files.
const openFlags = 0
