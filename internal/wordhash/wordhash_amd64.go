//go:build amd64 && !purego

package wordhash

import "golang.org/x/sys/cpu"

func supported() []*impl {
	var s []*impl
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		s = append(s, &impl{name: "avx512", blocks: func(h *[lanes]uint64, b []byte) {
			if len(b) >= block {
				blocks512(h, &b[0], len(b)/block)
			}
		}})
	}
	if cpu.X86.HasAVX2 {
		s = append(s, &impl{name: "avx2", blocks: func(h *[lanes]uint64, b []byte) {
			if len(b) >= block {
				blocks256(h, &b[0], len(b)/block)
			}
		}})
	}
	return append(s, goImpl)
}

// blocks512 steps the lanes h over n blocks of 512 bytes at p.
//
//go:noescape
func blocks512(h *[lanes]uint64, p *byte, n int)

// blocks256 is blocks512 with AVX2 (no 64-bit multiply: three 32-bit
// ones).
//
//go:noescape
func blocks256(h *[lanes]uint64, p *byte, n int)
