package untrained

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
)

// table returns n rows of dim N(0,1) values (norms close to sqrt(dim)).
func table(n, dim int, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, dim)
		for j := range out[i] {
			out[i][j] = rng.NormFloat64()
		}
	}
	return out
}

func scale(r []float64, f float64) {
	for j := range r {
		r[j] *= f
	}
}

func detect(t *testing.T, rs [][]float64, rule *Rule) *Result {
	t.Helper()
	res, err := DetectRows(len(rs), func(i int) []float64 { return rs[i] }, rule)
	require.NoError(t, err)
	return res
}

func TestDetectRowsFindsZeroAndTinyRows(t *testing.T) {
	rs := table(200, 16, 1)
	for j := range rs[7] {
		rs[7][j] = 0
	}
	scale(rs[50], 1e-3) // left near a tiny initialisation
	scale(rs[51], 0.02)
	scale(rs[90], 0.6) // shorter than most, still trained-looking
	scale(rs[91], 3)   // long rows are never reported
	res := detect(t, rs, nil)
	assert.Equal(t, []int{7, 50, 51}, res.IDs())
	assert.Equal(t, ReasonZero, res.Untrained[0].Reason)
	assert.True(t, math.IsInf(res.Untrained[0].Z, -1))
	assert.Equal(t, ReasonLowNorm, res.Untrained[1].Reason)
	assert.Less(t, res.Untrained[1].Z, -DefaultMaxZ)
	assert.Equal(t, 1, res.Zero)
	assert.Equal(t, 200, res.Rows)
	assert.InDelta(t, 4, res.MedianNorm, 0.5) // sqrt(16)
	assert.True(t, res.Contains(50))
	assert.False(t, res.Contains(90))
	assert.Equal(t, DefaultMaxZ, res.Rule.MaxZ)
	assert.Contains(t, res.String(), "3 of 200 rows look untrained (1 zero")
}

func TestDetectRowsBothConditionsNeeded(t *testing.T) {
	// A row far below the others in z-score but above MaxRatio × median
	// (a heavily trained, short special-token row) is not reported.
	rs := table(300, 32, 2)
	for i := range rs { // norms tightly around 1
		n := 0.0
		for _, x := range rs[i] {
			n += x * x
		}
		scale(rs[i], 1/math.Sqrt(n))
	}
	scale(rs[4], 0.36)
	res := detect(t, rs, nil)
	assert.Empty(t, res.IDs())
	// A lower ratio threshold is stricter, a higher one reports it.
	res = detect(t, rs, &Rule{MaxRatio: 0.5})
	assert.Equal(t, []int{4}, res.IDs())
	// NoLowNorm: zero rows only.
	res = detect(t, rs, &Rule{MaxRatio: 0.5, NoLowNorm: true})
	assert.Empty(t, res.IDs())
}

func TestDetectRowsZeroTolerance(t *testing.T) {
	rs := table(20, 4, 3)
	rs[3] = []float64{1e-20, -1e-18, 0, 0}
	res := detect(t, rs, &Rule{NoLowNorm: true})
	assert.Empty(t, res.IDs(), "exactly zero by default")
	res = detect(t, rs, &Rule{ZeroTolerance: 1e-16, NoLowNorm: true})
	assert.Equal(t, []int{3}, res.IDs())
}

// NaN and Inf rows are reported as non-finite and kept out of the
// statistics, which the other rows still get right.
func TestDetectRowsNonFinite(t *testing.T) {
	rs := table(50, 8, 5)
	rs[3][2] = math.NaN()
	rs[9][0] = math.Inf(-1)
	scale(rs[20], 1e-4)
	res := detect(t, rs, nil)
	assert.Equal(t, []int{3, 9, 20}, res.IDs())
	assert.Equal(t, ReasonNonFinite, res.Untrained[0].Reason)
	assert.True(t, math.IsNaN(res.Untrained[0].Norm))
	assert.Equal(t, ReasonLowNorm, res.Untrained[2].Reason)
	assert.Equal(t, 2, res.NonFinite)
	assert.False(t, math.IsNaN(res.MedianNorm))
}

func TestDetectRowsEdgeCases(t *testing.T) {
	// No rows, all rows zero, all rows equal (MAD 0).
	res := detect(t, nil, nil)
	assert.Empty(t, res.IDs())
	assert.Equal(t, 0, res.Rows)
	res = detect(t, [][]float64{{0, 0}, {0, 0}}, nil)
	assert.Equal(t, []int{0, 1}, res.IDs())
	res = detect(t, [][]float64{{1, 1}, {1, 1}, {1, 1}, {0.001, 0}}, nil)
	assert.Equal(t, []int{3}, res.IDs(), "MAD 0: any shorter row is infinitely far")
	// Huge and tiny values do not overflow the norm.
	res = detect(t, [][]float64{{1e300, 1e300}, {1e300, 1e300}, {1e-300, 0}}, nil)
	assert.Equal(t, []int{2}, res.IDs())
	assert.False(t, math.IsInf(res.Untrained[0].Norm, 0))

	var nilRes *Result
	assert.Nil(t, nilRes.IDs())
	assert.False(t, nilRes.Contains(1))
	assert.Equal(t, "<nil>", nilRes.String())
}

func TestDetectRowsRejectsBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		rows [][]float64
		rule *Rule
		msg  string
	}{
		"ragged":       {[][]float64{{1, 2}, {1}}, nil, "row 1 has 1 values, row 0 has 2"},
		"empty row":    {[][]float64{{}}, nil, "row 0 is empty"},
		"negative z":   {nil, &Rule{MaxZ: -1}, "Rule.MaxZ = -1"},
		"NaN tol":      {nil, &Rule{ZeroTolerance: math.NaN()}, "Rule.ZeroTolerance = NaN"},
		"ratio over 1": {nil, &Rule{MaxRatio: 2}, "Rule.MaxRatio = 2"},
		"inf ratio":    {nil, &Rule{MaxRatio: math.Inf(1)}, "Rule.MaxRatio = +Inf"},
	} {
		t.Run(name, func(t *testing.T) {
			rs := tc.rows
			_, err := DetectRows(len(rs), func(i int) []float64 { return rs[i] }, tc.rule)
			require.ErrorIs(t, err, ErrInvalid)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err := DetectRows(-1, nil, nil)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = DetectRows(2, nil, nil)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = Detect(nil, nil)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = DetectMatrix(nil, nil)
	assert.ErrorIs(t, err, ErrInvalid)
	var nilDense *mat.Dense[float32]
	_, err = DetectMatrix(nilDense, nil)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = DetectModel(nil, nil)
	assert.Error(t, err)
	e := embedding.New[float32](3, 2)
	e.Weights[1] = nil
	_, err = Detect(e, nil)
	assert.ErrorContains(t, err, "row 1 is nil")
}

func TestDetectTableAndMatrixAgree(t *testing.T) {
	rs := table(40, 8, 4)
	for j := range rs[39] {
		rs[39][j] = 0
	}
	scale(rs[10], 1e-4)
	e := embedding.New[float32](40, 8)
	flat := make([]float32, 0, 40*8)
	for i, r := range rs {
		v := make([]float32, 8)
		for j, x := range r {
			v[j] = float32(x)
		}
		flat = append(flat, v...)
		e.Weights[i] = nn.NewParam(mat.NewDense[float32](mat.WithShape(8, 1), mat.WithBacking(v)))
	}
	a, err := Detect(e, nil)
	require.NoError(t, err)
	b, err := DetectMatrix(mat.NewDense[float32](mat.WithShape(40, 8), mat.WithBacking(flat)), nil)
	require.NoError(t, err)
	assert.Equal(t, []int{10, 39}, a.IDs())
	assert.Equal(t, a, b)
}

// The tiny testdata models: cybertron's BERT converter leaves the last row
// ([unused_last]) zero, and nothing else is reported — not even [MASK],
// whose row is much shorter than the rest (robust z far below -5) but not
// small (over a third of the median norm).
func TestDetectModelTinyBERTAndBART(t *testing.T) {
	bertModel := testmodels.BERT(t)
	res, err := DetectModel(bertModel, nil)
	require.NoError(t, err)
	var input *TableResult
	for i := range res {
		if res[i].Input {
			input = &res[i]
		}
	}
	require.NotNil(t, input)
	assert.Equal(t, "bert.embeddings.word_embeddings", input.HFPath)
	v := len(bertModel.Bert.Embeddings.Tokens.Weights)
	assert.Equal(t, []int{v - 1}, input.IDs())
	mask := -1
	for i, term := range bertModel.Bert.Embeddings.Vocab.Items() {
		if term == "[MASK]" {
			mask = i
		}
	}
	require.GreaterOrEqual(t, mask, 0)
	all, err := Detect(bertModel.Bert.Embeddings.Tokens, &Rule{MaxRatio: 1})
	require.NoError(t, err)
	assert.True(t, all.Contains(mask), "[MASK] is a z-score outlier: %v", all)

	bartModel := testmodels.BART(t)
	res, err = DetectModel(bartModel, nil)
	require.NoError(t, err)
	require.NotEmpty(t, res)
	for _, r := range res {
		assert.Empty(t, r.IDs(), r.HFPath)
	}
}
