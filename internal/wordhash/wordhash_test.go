package wordhash

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eachPath runs f under every implementation this machine supports.
func eachPath(t *testing.T, f func(t *testing.T)) {
	saved := active
	defer func() { active = saved }()
	for _, p := range supported() {
		active = p
		t.Run(p.name, f)
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// refStep is the package comment's lane step.
func refStep(h, w uint64) uint64 {
	x := h ^ h>>29 ^ w
	x *= 0x9e3779b97f4a7c15
	x ^= x >> 32
	return x * 0xff51afd7ed558ccd
}

// reference is the package comment's definition, word by word.
func reference(b []byte) uint64 {
	var h [64]uint64
	for j := range h {
		h[j] = uint64(j+1) * 0xff51afd7ed558ccd
	}
	padded := append(append([]byte(nil), b...), make([]byte, 7)...)
	for i := 0; 8*i < len(b); i++ {
		w := binary.LittleEndian.Uint64(padded[8*i:])
		h[i%64] = refStep(h[i%64], w)
	}
	out := uint64(len(b))
	for _, x := range h {
		out = refStep(out, x)
	}
	out = refStep(out, 0)
	return out ^ out>>29
}

// A difference d in what a lane's step multiplies (h ^ (h >> 29) ^ w)
// cancels against the lane's next word only if the step carries it to
// that word's difference: carry(x, d) = G(x) ^ G(x ^ d), G(x) = y ^ (y >>
// 29) for y the step's output. For every d of one or two bits (a flipped
// sign, say) and many x, no carried difference has fewer than 10 bits set
// (so flipping a few bits of the next word, such as a neighbouring value's
// sign, never cancels it) and none repeats more than twice in 1024.
func TestStepDifferentials(t *testing.T) {
	G := func(x uint64) uint64 {
		y := refStep(0, x)
		return y ^ y>>29
	}
	r := rand.New(rand.NewPCG(9, 9))
	xs := make([]uint64, 1024)
	for i := range xs {
		xs[i] = r.Uint64()
	}
	count := map[uint64]int{}
	for i := range 64 {
		for j := i; j < 64; j++ {
			d := uint64(1)<<i | uint64(1)<<j
			clear(count)
			for _, x := range xs {
				o := G(x) ^ G(x^d)
				if bits.OnesCount64(o) < 10 {
					t.Fatalf("input difference %#x gives %#x", d, o)
				}
				count[o]++
				if count[o] > 2 {
					t.Fatalf("input difference %#x gives %#x %d times in %d", d, o, count[o], len(xs))
				}
			}
		}
	}
	// The first version's step, rotl64((h ^ w)·m, 29), fails this: a
	// flipped top bit always comes out as bit 28 alone.
	old := func(x uint64) uint64 { return bits.RotateLeft64(x*0x9e3779b97f4a7c15, 29) }
	for _, x := range xs {
		require.Equal(t, uint64(1<<28), old(x)^old(x^1<<63))
	}
}

// Every path computes the documented function: lengths 0 to 100 words
// and every tail of 0 to 7 bytes, at every alignment, and large slices.
func TestSum64MatchesDefinition(t *testing.T) {
	data := randomBytes(1<<20+300, 1)
	eachPath(t, func(t *testing.T) {
		for off := range 8 {
			for n := 0; n <= 100*8+7; n++ {
				b := data[off : off+n]
				require.Equal(t, reference(b), Sum64(b), "offset %d length %d", off, n)
			}
		}
		for _, n := range []int{4096, 4096 + 3, 1<<20 - 1, 1 << 20, 1<<20 + 255} {
			b := data[1 : 1+n]
			require.Equal(t, reference(b), Sum64(b), "length %d", n)
		}
	})
}

// The hash depends on the data only: the same bytes at another address
// or alignment, hashed again, give the same value.
func TestSum64Deterministic(t *testing.T) {
	data := randomBytes(5000, 2)
	eachPath(t, func(t *testing.T) {
		h := Sum64(data)
		assert.Equal(t, h, Sum64(data))
		for off := 1; off < 8; off++ {
			buf := make([]byte, len(data)+off)
			copy(buf[off:], data)
			assert.Equal(t, h, Sum64(buf[off:]), "offset %d", off)
		}
		assert.Equal(t, Sum64(nil), Sum64([]byte{}))
	})
}

// A single flipped bit anywhere in a 1 KiB slice changes the hash, and
// no two flips collide; so at every length up to 300 bytes (tails that
// are not whole words included).
func TestSum64BitFlips(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		b := randomBytes(1024, 3)
		seen := map[uint64]int{Sum64(b): -1}
		for bit := range 8 * len(b) {
			b[bit/8] ^= 1 << (bit % 8)
			h := Sum64(b)
			b[bit/8] ^= 1 << (bit % 8)
			prev, dup := seen[h]
			require.False(t, dup, "flipping bit %d gives the hash of flip %d", bit, prev)
			seen[h] = bit
		}
		for n := 1; n <= 300; n++ {
			b := randomBytes(n, uint64(n))
			h := Sum64(b)
			for bit := range 8 * n {
				b[bit/8] ^= 1 << (bit % 8)
				require.NotEqual(t, h, Sum64(b), "length %d bit %d", n, bit)
				b[bit/8] ^= 1 << (bit % 8)
			}
		}
		// All-zero data: a single set bit, anywhere, changes it too.
		z := make([]byte, 1024)
		hz := Sum64(z)
		for bit := range 8 * len(z) {
			z[bit/8] = 1 << (bit % 8)
			require.NotEqual(t, hz, Sum64(z), "bit %d", bit)
			z[bit/8] = 0
		}
	})
}

// Swapping two distinct chunks changes the hash: words in the same lane
// or in different lanes, whole vectors, whole blocks, halves.
func TestSum64Swaps(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		b := randomBytes(8192+40, 4)
		h := Sum64(b)
		swap := func(i, j, size int) {
			for k := range size {
				b[i+k], b[j+k] = b[j+k], b[i+k]
			}
		}
		for _, c := range []struct{ i, j, size int }{
			{0, 8, 8},         // neighbouring words, neighbouring lanes
			{0, 512, 8},       // same lane, next block
			{8, 8192 + 16, 8}, // a block word and a tail word
			{8192, 8192 + 8, 8},
			{8192 + 32, 8192 + 36, 4}, // within the ragged tail
			{0, 64, 64},               // two lane vectors
			{0, 256, 256},             // two half blocks
			{0, 512, 512},             // two blocks
			{512, 7680, 512},
			{0, 4096, 4096},   // halves
			{3, 4099, 1000},   // unaligned
			{0, 1, 1},         // two bytes
			{100, 8000, 8},    // unaligned words
			{4000, 4096, 96},  // across a block edge
			{0, 8192 + 8, 32}, // into the tail
		} {
			swap(c.i, c.j, c.size)
			assert.NotEqual(t, h, Sum64(b), "swap %d and %d (%d bytes)", c.i, c.j, c.size)
			swap(c.i, c.j, c.size)
			require.Equal(t, h, Sum64(b))
		}
		// Every pair of distinct words in the first 3 KiB, swapped.
		w := randomBytes(3072, 5)
		hw := Sum64(w)
		for i := 0; i < 384; i++ {
			for j := i + 1; j < 384; j++ {
				a, c := w[8*i:8*i+8], w[8*j:8*j+8]
				var tmp [8]byte
				copy(tmp[:], a)
				copy(a, c)
				copy(c, tmp[:])
				require.NotEqual(t, hw, Sum64(w), "swap words %d and %d", i, j)
				copy(c, a)
				copy(a, tmp[:])
			}
		}
		require.Equal(t, hw, Sum64(w))
	})
}

// Every length of the same (zero) content hashes differently: appended
// zero bytes, which fill a tail word with zeros, still count.
func TestSum64Lengths(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		z := make([]byte, 3000)
		seen := map[uint64]int{}
		for n := 0; n <= len(z); n++ {
			h := Sum64(z[:n])
			prev, dup := seen[h]
			require.False(t, dup, "length %d hashes like length %d", n, prev)
			seen[h] = n
		}
		b := randomBytes(1000, 6)
		assert.NotEqual(t, Sum64(b), Sum64(append(b, 0)))
		assert.NotEqual(t, Sum64(b), Sum64(b[:999]))
	})
}

func TestPath(t *testing.T) {
	assert.Equal(t, supported()[0].name, Path())
	assert.Contains(t, []string{"avx512", "avx2", "go"}, Path())
}

var sink uint64

// BenchmarkSum64 is one core's speed on every path: 1 MiB (cache), 31 MB
// (BERT-S's vocabulary projection) and 256 MB (vocabulary 250,000). Goal:
// memory speed on the larger two.
func BenchmarkSum64(b *testing.B) {
	data := randomBytes(256<<20, 8)
	saved := active
	defer func() { active = saved }()
	for _, p := range supported() {
		for _, n := range []int{1 << 20, 31 << 20, 256 << 20} {
			b.Run(fmt.Sprintf("%s/%dMB", p.name, n>>20), func(b *testing.B) {
				active = p
				s := data[:n]
				b.SetBytes(int64(n))
				var h uint64
				for b.Loop() {
					h ^= Sum64(s)
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				sink = h
			})
		}
	}
}
