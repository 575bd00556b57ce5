package testmodels

import "github.com/rs/zerolog"

// quietZerolog raises zerolog's global level to warn, for tests that call
// cybertron's converter in the test process itself (a test binary may change
// its own process state; library code converts in a child process).
func quietZerolog() {
	if zerolog.GlobalLevel() < zerolog.WarnLevel {
		zerolog.SetGlobalLevel(zerolog.WarnLevel)
	}
}
