package tying_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/testmodels"
	"github.com/gopeft/gopeft/registry"
	"github.com/gopeft/gopeft/tying"
)

func TestDetect(t *testing.T) {
	t.Run("bert decoder is a copy, last row skipped", func(t *testing.T) {
		l, err := registry.Describe(testmodels.BERT(t))
		require.NoError(t, err)
		gs, err := tying.Detect(l)
		require.NoError(t, err)
		words := gs[0]
		require.Equal(t, "bert.embeddings.word_embeddings", words.Table.HFPath)
		require.Len(t, words.Copies, 1)
		assert.Equal(t, "cls.predictions.decoder", words.Copies[0].Output.HFPath)
		assert.Equal(t, []int{1037}, words.Copies[0].SkippedRows, "cybertron's BERT converter leaves the last row zero")
		assert.Equal(t, 0.0, words.Copies[0].MaxAbsDiff)
		for _, g := range gs[1:] {
			assert.Empty(t, g.Copies, g.Table.HFPath)
		}
	})
	t.Run("bart shared table: three slots and lm_head", func(t *testing.T) {
		m := testmodels.BART(t)
		l, err := registry.Describe(m)
		require.NoError(t, err)
		gs, err := tying.Detect(l)
		require.NoError(t, err)
		g := gs[0]
		assert.Equal(t, []string{"Bart.Encoder.Embeddings.SharedEmbeddings", "Bart.Decoder.Embeddings.SharedEmbeddings", "Bart.Embeddings"}, g.Aliases)
		require.Len(t, g.Copies, 1)
		assert.Empty(t, g.Copies[0].SkippedRows)
		assert.Contains(t, g.String(), "tied copy: lm_head")
	})
	t.Run("a projection that differs is not tied", func(t *testing.T) {
		m := testmodels.BART(t)
		w := m.Projection.W.Value().(mat.Matrix)
		v := rows.Get(w, 7, 32)
		v[4] += 1e-3
		require.NoError(t, rows.Set(w, 7, v))
		l, err := registry.Describe(m)
		require.NoError(t, err)
		gs, err := tying.Detect(l)
		require.NoError(t, err)
		assert.Empty(t, gs[0].Copies)
		require.Len(t, gs[0].Untied, 1)
		assert.Contains(t, gs[0].Untied[0].Reason, "row 7 differs")
		assert.Contains(t, gs[0].String(), "NOT tied: lm_head")
	})
	t.Run("within tolerance is tied", func(t *testing.T) {
		m := testmodels.BART(t)
		w := m.Projection.W.Value().(mat.Matrix)
		v := rows.Get(w, 7, 32)
		v[4] += math.Abs(v[4]) * 1e-7
		require.NoError(t, rows.Set(w, 7, v))
		l, _ := registry.Describe(m)
		gs, err := tying.Detect(l)
		require.NoError(t, err)
		require.Len(t, gs[0].Copies, 1)
	})
}

// TestLogitsGradients checks the op against central finite differences,
// with one and with several columns, in float64.
func TestLogitsGradients(t *testing.T) {
	for _, n := range []int{1, 3} {
		const vocab, dim = 7, 4
		rng := rand.New(rand.NewPCG(5, uint64(n)))
		randm := func(r, c int) *mat.Dense[float64] {
			d := make([]float64, r*c)
			for i := range d {
				d[i] = rng.NormFloat64()
			}
			return mat.NewDense[float64](mat.WithShape(r, c), mat.WithBacking(d))
		}
		lin := linear.New[float64](dim, vocab)
		lin.W.ReplaceValue(randm(vocab, dim))
		lin.B.ReplaceValue(randm(vocab, 1))
		ids := []int{2, 5}
		rowsP := []*nn.Param{nn.NewParam(randm(dim, 1)), nn.NewParam(randm(dim, 1))}
		h := nn.NewParam(randm(dim, n))
		weights := randm(vocab, n) // loss = Σ weights ⊙ logits² / 2 (non-linear in the inputs)
		loss := func() mat.Tensor {
			y, err := tying.Logits(lin, h, ids, []mat.Tensor{rowsP[0], rowsP[1]})
			require.NoError(t, err)
			// Σ via two products: spago's ReduceSum backward flattens matrices.
			onesRow := mat.NewDense[float64](mat.WithShape(1, vocab), mat.WithBacking(mat.CreateInitializedSlice(vocab, 1.0)))
			onesCol := mat.NewDense[float64](mat.WithShape(n, 1), mat.WithBacking(mat.CreateInitializedSlice(n, 1.0)))
			return ag.Mul(ag.Mul(onesRow, ag.Prod(ag.Square(y), weights)), onesCol)
		}
		l := loss()
		require.NoError(t, ag.Backward(l))
		check := func(name string, p *nn.Param) {
			data := mat.Data[float64](p.Value().(mat.Matrix))
			grad := mat.Data[float64](p.Grad().(mat.Matrix))
			for i := range data {
				old := data[i]
				const eps = 1e-6
				data[i] = old + eps
				up := loss().Value().Item().F64()
				data[i] = old - eps
				down := loss().Value().Item().F64()
				data[i] = old
				assert.InDelta(t, (up-down)/(2*eps), grad[i], 1e-5, "%s[%d] n=%d", name, i, n)
			}
		}
		check("row0", rowsP[0])
		check("row1", rowsP[1])
		check("h", h)
		assert.False(t, lin.W.HasGrad(), "no weight gradient for the frozen projection")
	}
}

func TestLogitsForward(t *testing.T) {
	m := testmodels.BART(t)
	for _, p := range []*nn.Param{m.Projection.W, m.Projection.B} {
		p.SetRequiresGrad(false)
	}
	h := m.Bart.Embeddings.Weights[11].Value().(mat.Matrix).Clone()
	plain := m.Projection.Forward(h)[0].Value().(mat.Matrix)
	row := nn.NewParam(m.Bart.Embeddings.Weights[9].Value().(mat.Matrix).Clone())
	y, err := tying.Logits(m.Projection, h, []int{9}, []mat.Tensor{row})
	require.NoError(t, err)
	// Unchanged row: identical logits (up to summation order) everywhere.
	for v := 0; v < plain.Shape()[0]; v++ {
		assert.InDelta(t, plain.ScalarAt(v, 0).F64(), y.Value().(mat.Matrix).ScalarAt(v, 0).F64(), 1e-6)
	}
	t.Run("validation", func(t *testing.T) {
		_, err := tying.Logits(m.Projection, h, []int{9, 9}, []mat.Tensor{row, row})
		assert.ErrorContains(t, err, "token id 9 given twice")
		_, err = tying.Logits(m.Projection, h, []int{100000}, []mat.Tensor{row})
		assert.ErrorContains(t, err, "out of range")
		_, err = tying.Logits(m.Projection, h.Reshape(16, 2), []int{9}, []mat.Tensor{row})
		assert.ErrorContains(t, err, "hidden state shape")
		m.Projection.W.SetRequiresGrad(true)
		_, err = tying.Logits(m.Projection, h, []int{9}, []mat.Tensor{row})
		assert.ErrorContains(t, err, "freeze it")
	})
}
