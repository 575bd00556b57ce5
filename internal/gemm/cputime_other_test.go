//go:build !unix

package gemm

import "time"

func cpuTime() (time.Duration, bool) { return 0, false }
