//go:build !linux

package trainabletokens

// renameExchange has no atomic implementation on this platform; the caller
// falls back to two renames with rollback.
func renameExchange(a, b string) error { return errExchangeUnsupported }
