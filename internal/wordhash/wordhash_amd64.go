//go:build amd64 && !purego

package wordhash

import "golang.org/x/sys/cpu"

func supported() []*impl {
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		return []*impl{{name: "avx512", blocks: func(h *[lanes]uint64, b []byte) {
			if len(b) >= block {
				blocks512(h, &b[0], len(b)/block)
			}
		}}, goImpl}
	}
	return []*impl{goImpl}
}

// blocks512 steps the lanes h over n blocks of 512 bytes at p.
//
//go:noescape
func blocks512(h *[lanes]uint64, p *byte, n int)
