// Package regular opens and reads files that must be regular files
// (configs, vocabularies, adapter weights, models) without ever blocking on
// a special file: a FIFO, socket, device or directory given where a file is
// expected is an error at once, wrapping ErrNotRegular. The check is made
// before opening (Stat) and again on the opened descriptor (f.Stat), and the
// open itself is non-blocking, so a file swapped for a FIFO in between
// cannot hang the caller either. ReadFile refuses files above a caller's
// size cap before reading them whole.
//
// It owns how gopeft opens files for reading. It must not know what the
// files hold.
package regular
