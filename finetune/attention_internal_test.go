package finetune

import (
	"math"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// attentionPair returns the same random attention (h heads of dh, model
// width d) in float64 and float32, the float32 one on a poisoning scratch.
func attentionPair(rng *rand.Rand, h, dh, d int, causal bool) (*fAttention[float64], *fAttention[float32]) {
	a64 := &fAttention[float64]{dh: dh}
	a32 := &fAttention[float32]{dh: dh, sc: &scratch[float32]{poison: true}}
	lin := func(out, in int) (fLinear[float64], fLinear[float32]) {
		l := fLinear[float64]{w: randVec(rng, out*in, 1/math.Sqrt(float64(in))), b: randVec(rng, out, 0.1), out: out, in: in}
		return l, fLinear[float32]{w: to32(l.w), b: to32(l.b), out: out, in: in}
	}
	scale := 1 / math.Sqrt(float64(dh))
	for range h {
		q64, q32 := lin(dh, d)
		k64, k32 := lin(dh, d)
		v64, v32 := lin(dh, d)
		a64.heads = append(a64.heads, fHead[float64]{q: q64, k: k64, v: v64, scale: scale, causal: causal})
		a32.heads = append(a32.heads, fHead[float32]{q: q32, k: k32, v: v32, scale: float32(scale), causal: causal})
	}
	a64.out, a32.out = lin(d, h*dh)
	return a64, a32
}

func to32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// requireClose checks got against want to tol·(1 + max|want|).
func requireClose(t *testing.T, what string, want []float64, got []float32, tol float64) {
	t.Helper()
	require.Len(t, got, len(want), what)
	var top float64
	for _, w := range want {
		top = max(top, math.Abs(w))
	}
	for i, w := range want {
		require.InDelta(t, w, float64(got[i]), tol*(1+top), "%s element %d", what, i)
	}
}

// The float32 attention (products by gemm.Small, softmax by vmath, at
// sequence lengths that take every path of both: full and ragged row and
// column panels, rows shorter than a panel) matches the float64 one in
// value and gradients, for self-, causal self- and cross-attention, on one
// goroutine and on several with the same bits.
func TestAttentionFloat32MatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	const h, dh, d = 3, 40, 48
	qs := []span{{0, 64}, {64, 40}, {104, 13}, {117, 5}, {122, 1}, {123, 33}}
	ms := []span{{0, 37}, {37, 64}, {101, 12}, {113, 2}, {115, 70}, {185, 1}}
	nq, nm := rowsOf(qs), rowsOf(ms)
	for _, c := range []struct {
		name          string
		causal, cross bool
	}{{"self", false, false}, {"causal", true, false}, {"cross", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			a64, a32 := attentionPair(rng, h, dh, d, c.causal)
			x, gy := randVec(rng, nq*d, 1), randVec(rng, nq*d, 1)
			m, mss := x, qs
			if c.cross {
				m, mss = randVec(rng, nm*d, 1), ms
			}
			rows := rowsOf(mss)
			y64, back64 := a64.forward(x, qs, m, mss, true)
			gx64, gm64 := make([]float64, nq*d), make([]float64, rows*d)
			if !c.cross {
				gm64 = gx64
			}
			back64(gy, gx64, gm64)
			var first [][]float32
			for _, procs := range []int{1, 2, 3} {
				old := runtime.GOMAXPROCS(procs)
				x32, m32 := to32(x), to32(m)
				if !c.cross {
					m32 = x32
				}
				y32, back32 := a32.forward(x32, qs, m32, mss, true)
				y32 = append([]float32(nil), y32...)
				gx32, gm32 := make([]float32, nq*d), make([]float32, rows*d)
				if !c.cross {
					gm32 = gx32
				}
				back32(to32(gy), gx32, gm32)
				runtime.GOMAXPROCS(old)
				requireClose(t, "output", y64, y32, 1e-5)
				requireClose(t, "input gradient", gx64, gx32, 1e-5)
				requireClose(t, "memory gradient", gm64, gm32, 1e-5)
				got := [][]float32{y32, gx32, gm32}
				if first == nil {
					first = got
					continue
				}
				for i := range got {
					for j := range got[i] {
						require.Equal(t, math.Float32bits(first[i][j]), math.Float32bits(got[i][j]), "%d goroutines: result %d element %d", procs, i, j)
					}
				}
			}
		})
	}
}

// BenchmarkAttentionCore times the fused attention of BERT-S (4 heads of
// 64, hidden 256, 8 sequences of 64 tokens) and BERT-base (12 heads of 64,
// hidden 768), float32: forward alone (inference) and forward with
// backward (training), in CPU µs per op:
//
//	GOMAXPROCS=1 flock /work/bench.lock go test -run XXX -bench AttentionCore ./finetune
func BenchmarkAttentionCore(b *testing.B) {
	for _, s := range []struct {
		name string
		h    int
	}{{"bert-s", 4}, {"bert-base", 12}} {
		rng := rand.New(rand.NewPCG(53, 54))
		const dh, seqs, l = 64, 8, 64
		d := s.h * dh
		_, a := attentionPair(rng, s.h, dh, d, false)
		a.sc.poison = false
		// The stacked, packed projections of a Task's step.
		usePacks(newPackCache(), []fBlock[float32]{{att: a}})
		var qs []span
		for i := range seqs {
			qs = append(qs, span{i * l, l})
		}
		n := seqs * l
		x, gy := to32(randVec(rng, n*d, 1)), to32(randVec(rng, n*d, 1))
		gx := make([]float32, n*d)
		for _, train := range []bool{false, true} {
			name := s.name + "/forward"
			if train {
				name = s.name + "/train"
			}
			b.Run(name, func(b *testing.B) {
				cpu := cpuNow()
				for b.Loop() {
					y, back := a.forward(x, qs, x, qs, train)
					if train {
						back(gy, gx, gx)
					}
					a.sc.put(y)
				}
				b.ReportMetric(float64((cpuNow()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}

// cpuNow is the process's CPU time (user and system).
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
