//go:build unix

package regular

import "syscall"

// openFlags makes opening a FIFO return at once instead of waiting for a
// writer; regular files ignore it.
const openFlags = syscall.O_NONBLOCK
