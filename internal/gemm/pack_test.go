package gemm

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// asmPackers returns the supported paths with assembly packing, each with
// its portable twin (the same tile, Go packing only).
func asmPackers(t *testing.T) [][2]*path {
	var out [][2]*path
	for _, p := range supported() {
		if p.packA == nil && p.packBT == nil {
			continue
		}
		g := *p
		g.packA, g.packBT = nil, nil
		out = append(out, [2]*path{p, &g})
	}
	if len(out) == 0 {
		t.Skipf("no assembly packing on this build (paths %v)", names(supported()))
	}
	return out
}

// The assembly packing moves the same values to the same places as the Go
// loops, on ragged blocks: rows not a multiple of mr, odd depths, depths
// not a multiple of 16, a leading dimension larger than the block.
func TestPackAAssemblyEqualsGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, pp := range asmPackers(t) {
		asm, goP := pp[0], pp[1]
		for _, mb := range []int{1, 11, 12, 13, 25, 96} {
			for _, kb := range []int{1, 15, 16, 17, 33, 255, 256} {
				for _, extra := range []int{0, 3, 1000} {
					for _, trans := range []bool{false, true} {
						i0, p0 := 5, 7
						rows, lda := i0+mb, p0+kb+extra
						if trans {
							rows, lda = p0+kb, i0+mb+extra
						}
						a := randSlice[float32](rng, (rows-1)*lda+lda-extra)
						panels := (mb + asm.mr - 1) / asm.mr
						want := make([]float32, panels*asm.mr*kb)
						got := make([]float32, len(want))
						for i := range want {
							want[i], got[i] = -7, -7
						}
						packA(goP, trans, a, lda, i0, p0, mb, kb, want)
						packA(asm, trans, a, lda, i0, p0, mb, kb, got)
						require.Equal(t, want, got, "%s mb %d kb %d lda %d trans %v", asm.name, mb, kb, lda, trans)
					}
				}
			}
		}
	}
}

func TestPackBAssemblyEqualsGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	for _, pp := range asmPackers(t) {
		asm, goP := pp[0], pp[1]
		for _, nb := range []int{1, 31, 32, 33, 70, 1024} {
			for _, kb := range []int{1, 15, 16, 17, 33, 255, 256} {
				for _, extra := range []int{0, 5, 1000} {
					for _, trans := range []bool{false, true} {
						j0, p0 := 3, 9
						rows, ldb := p0+kb, j0+nb+extra
						if trans {
							rows, ldb = j0+nb, p0+kb+extra
						}
						b := randSlice[float32](rng, (rows-1)*ldb+ldb-extra)
						panels := (nb + asm.nr - 1) / asm.nr
						want := make([]float32, panels*asm.nr*kb)
						got := make([]float32, len(want))
						for i := range want {
							want[i], got[i] = -7, -7
						}
						packB(goP, trans, b, ldb, p0, j0, kb, nb, want)
						packB(asm, trans, b, ldb, p0, j0, kb, nb, got)
						require.Equal(t, want, got, "%s nb %d kb %d ldb %d trans %v", asm.name, nb, kb, ldb, trans)
					}
				}
			}
		}
	}
}
