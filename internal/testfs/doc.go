// Package testfs holds the file-system helpers that the file-safety tests
// of several packages share: special files (FIFOs, unix sockets on long
// test paths), a guard that fails a test blocked on a special file, and
// snapshots of a directory to compare before and after a call.
//
// It is a test-support package: only _test.go files import it (it imports
// testify and takes a *testing.T). Library code must not.
package testfs
