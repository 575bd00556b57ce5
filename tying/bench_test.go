package tying_test

import (
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/tying"
)

// BenchmarkLogits is the tied head of a training step at BERT-base's
// vocabulary: vocab 30,522, dim 256, 80 positions, 10 trainable rows;
// forward and backward (the gradient of h and of the rows). B/op shows that
// nothing vocab×dim is allocated: the logits and their gradient are
// vocab×80.
func BenchmarkLogits(b *testing.B) {
	const vocab, dim, n, k = 30522, 256, 80, 10
	rng := rand.New(rand.NewPCG(1, 2))
	randm := func(r, c int) *mat.Dense[float32] {
		d := make([]float32, r*c)
		for i := range d {
			d[i] = float32(0.1 * rng.NormFloat64())
		}
		return mat.NewDense[float32](mat.WithShape(r, c), mat.WithBacking(d))
	}
	lin := linear.New[float32](dim, vocab)
	lin.W.ReplaceValue(randm(vocab, dim))
	lin.B.ReplaceValue(randm(vocab, 1))
	ids := make([]int, k)
	rows := make([]mat.Tensor, k)
	for i := range ids {
		ids[i] = vocab - k + i
		rows[i] = nn.NewParam(randm(dim, 1))
	}
	h := nn.NewParam(randm(dim, n))
	g := randm(vocab, n)
	b.ReportAllocs()
	for b.Loop() {
		y, err := tying.Logits(lin, h, ids, rows)
		require.NoError(b, err)
		y.AccGrad(g)
		require.NoError(b, ag.Backward(y))
		h.ZeroGrad()
		for _, r := range rows {
			r.(*nn.Param).ZeroGrad()
		}
	}
}
