// Package wordhash is a fast 64-bit hash of a byte slice for noticing
// that data changed in place (finetune's pack cache hashes every frozen
// weight at every use). It is not a cryptographic hash and not stable
// across processes or versions: only equal for equal data within one
// process.
//
// The hash runs 64 independent lanes over the 8-byte little-endian words
// of the data: word i goes into lane i mod 64, and each lane steps as
//
//	x = h ^ (h >> 29) ^ w;  x ·= m1;  x ^= x >> 32;  h = x · m2
//
// (m1, m2 odd), a bijection of h for a fixed w and of w for a fixed h. So two
// inputs of the same length that differ in the words of one lane only
// through a single word — any single flipped bit, any one changed value —
// always hash differently: that lane's state differs from that step on,
// and the final mix (the same step over the lanes' states, in order,
// seeded with the length) is a bijection of each lane's state for fixed
// other lanes. The final 0 to 7 bytes are read as one zero-padded word.
//
// Other changes (swapped words, several changed words, a different
// length) change the hash unless a coincidence cancels them. The step has
// two multiplies so that no difference of a lane's state is carried to
// the next step in a form a small change of the lane's next word cancels:
// a single multiply carries a flipped top bit unchanged every time (the
// first version of this hash, rotl64((h ^ w)·m, 29), collided whenever the
// top bits of two successive words of a lane flipped: negated floats).
// Here a one- or two-bit difference comes out as one of many differences
// of 10 bits or more, the likeliest with probability about 2⁻¹¹
// (TestStepDifferentials); changes that are not crafted against the
// multipliers collide with probability about 2⁻⁶⁴.
//
// On amd64 (chosen at run time; not with -tags purego) with AVX-512 the
// lanes are eight ZMM registers, eight independent chains reading 512
// bytes per step at memory speed (about 4 times the speed of DRAM from
// L2); with AVX2 only, sixteen YMM steps per block (64-bit multiplies
// from 32-bit ones); elsewhere a Go loop computes the same function.
package wordhash

import "encoding/binary"

const (
	lanes = 64
	block = lanes * 8 // bytes per step of all lanes

	m1 = 0x9e3779b97f4a7c15 // the step's first multiplier (odd)
	m2 = 0xff51afd7ed558ccd // the step's second multiplier (odd)
)

// impl is one implementation of the block loop.
type impl struct {
	name string
	// blocks steps the lanes h over b (len(b) a multiple of block).
	blocks func(h *[lanes]uint64, b []byte)
}

var goImpl = &impl{name: "go", blocks: blocksGo}

// active is the best implementation this CPU supports; tests switch it.
var active = supported()[0]

// Path names the implementation in use ("avx512", "avx2" or "go").
func Path() string { return active.name }

// Sum64 is the 64-bit hash of b (see the package comment).
func Sum64(b []byte) uint64 {
	var h [lanes]uint64
	for j := range h {
		h[j] = uint64(j+1) * m2
	}
	n := len(b) &^ (block - 1)
	if n > 0 {
		active.blocks(&h, b[:n])
	}
	// Fewer than 64 whole words left: lanes 0, 1, …; then the last 0 to 7
	// bytes, zero-padded, in the next lane (at most 63 words precede it).
	rest := b[n:]
	j := 0
	for ; len(rest) >= 8; j++ {
		h[j] = step(h[j], binary.LittleEndian.Uint64(rest))
		rest = rest[8:]
	}
	if len(rest) > 0 {
		var pad [8]byte
		copy(pad[:], rest)
		h[j] = step(h[j], binary.LittleEndian.Uint64(pad[:]))
	}
	out := uint64(len(b))
	for _, x := range h {
		out = step(out, x)
	}
	out = step(out, 0)
	return out ^ out>>29
}

// step is one lane's step on word w.
func step(h, w uint64) uint64 {
	x := (h ^ h>>29 ^ w) * m1
	x ^= x >> 32
	return x * m2
}

// blocksGo is the block loop in Go, eight lanes at a time.
func blocksGo(h *[lanes]uint64, b []byte) {
	for ; len(b) >= block; b = b[block:] {
		for j := 0; j < lanes; j += 8 {
			w := b[8*j : 8*j+64]
			l := h[j : j+8 : j+8]
			l[0] = step(l[0], binary.LittleEndian.Uint64(w[0:]))
			l[1] = step(l[1], binary.LittleEndian.Uint64(w[8:]))
			l[2] = step(l[2], binary.LittleEndian.Uint64(w[16:]))
			l[3] = step(l[3], binary.LittleEndian.Uint64(w[24:]))
			l[4] = step(l[4], binary.LittleEndian.Uint64(w[32:]))
			l[5] = step(l[5], binary.LittleEndian.Uint64(w[40:]))
			l[6] = step(l[6], binary.LittleEndian.Uint64(w[48:]))
			l[7] = step(l[7], binary.LittleEndian.Uint64(w[56:]))
		}
	}
}
