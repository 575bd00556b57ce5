package trainabletokens

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/nlpodyssey/spago/optimizers"
	"github.com/nlpodyssey/spago/optimizers/adam"
	"github.com/nlpodyssey/spago/optimizers/sgd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/rows"
	"github.com/gopeft/gopeft/internal/walk"
)

// paramsOf lists what spago's own traversal yields for m.
func paramsOf(m nn.Model) []*nn.Param {
	var out []*nn.Param
	nn.ForEachParam(m, func(p *nn.Param) { out = append(out, p) })
	return out
}

// spago's traversal over the adapter model yields exactly the rows of the
// active, unmerged adapters: no frozen base parameter, no inactive adapter.
func TestSpagoTraversalYieldsLiveRows(t *testing.T) {
	m := loadedBERT(t)
	tm, err := New(m, Config{TokenIndices: []int{5, 100}}, "a")
	require.NoError(t, err)
	require.NoError(t, tm.AddAdapter("b", Config{TokenIndices: []int{7}}))
	a, err := tm.Rows("a", "")
	require.NoError(t, err)
	b, err := tm.Rows("b", "")
	require.NoError(t, err)

	var viaChannel []*nn.Param
	for p := range nn.Parameters(tm)(t.Context()) {
		viaChannel = append(viaChannel, p)
	}
	assert.Equal(t, a, paramsOf(tm))
	assert.Equal(t, a, viaChannel)
	// They are the only parameters of the base that train.
	walk.WalkAll(m, func(n walk.Node) {
		if p, ok := n.Value.(*nn.Param); ok && p.RequiresGrad() {
			assert.Contains(t, a, p, n.Path)
		}
	})
	require.NoError(t, tm.SetActive("b"))
	assert.Equal(t, b, paramsOf(tm))
	require.NoError(t, tm.SetActive("a", "b"))
	assert.Equal(t, append(append([]*nn.Param{}, a...), b...), paramsOf(tm))
	require.NoError(t, tm.Merge(false, "b"))
	assert.Equal(t, a, paramsOf(tm), "a merged adapter does not train")
	require.NoError(t, tm.Disable())
	assert.Empty(t, paramsOf(tm))
	require.NoError(t, tm.Enable())
	_, err = tm.Unload()
	require.NoError(t, err)
	assert.Empty(t, paramsOf(tm))
}

// waitStrategy counts the OptimizeParams calls spago's Optimizer makes,
// so that the test can wait for the goroutines Optimize leaves running.
type waitStrategy struct {
	optimizers.OptimizationStrategy
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []*nn.Param
}

func (w *waitStrategy) OptimizeParams(p *nn.Param) error {
	defer w.wg.Done()
	w.mu.Lock()
	w.seen = append(w.seen, p)
	w.mu.Unlock()
	return w.OptimizationStrategy.OptimizeParams(p)
}

// A spago user's own training loop on the tiny BERT, both ways: Step (the
// synchronous helper), and spago's optimizers.New(nn.Parameters(tm), …)
// followed by a wait for its goroutines.
func TestHandWrittenTrainingLoop(t *testing.T) {
	for _, way := range []string{"Step", "spago Optimizer"} {
		t.Run(way, func(t *testing.T) {
			m := loadedBERT(t)
			before := snapshot(m)
			ids := []int{5, 100, 200}
			tm, err := New(m, Config{TokenIndices: ids}, "")
			require.NoError(t, err)
			head := m.Layers[3].(*linear.Model)
			input, target := []int{ids[0], ids[1], 7, ids[2]}, []int{ids[1], ids[2], ids[0], 8}
			strategy := adam.New(adam.NewConfig(0.05, 0.9, 0.999, 1e-8))
			var first, last float64
			for step := 0; step < 15; step++ {
				loss := lmLoss(t, tm, m.Bert.Embeddings.Tokens, head, input, target)
				require.NoError(t, ag.Backward(loss))
				if step == 0 {
					first = loss.Value().Item().F64()
				}
				last = loss.Value().Item().F64()
				if way == "Step" {
					n, err := tm.Step(strategy)
					require.NoError(t, err)
					require.Equal(t, 3, n)
					continue
				}
				w := &waitStrategy{OptimizationStrategy: strategy}
				w.wg.Add(len(tm.TrainableParams())) // every live row has a gradient here
				require.NoError(t, optimizers.New(nn.Parameters(tm), w).Optimize())
				done := make(chan struct{})
				go func() { w.wg.Wait(); close(done) }()
				select {
				case <-done: // Optimize returned; its updates are finished only now
				case <-time.After(10 * time.Second):
					t.Fatal("the optimizer's goroutines did not finish")
				}
				assert.ElementsMatch(t, tm.TrainableParams(), w.seen, "the optimizer saw exactly the live rows")
				strategy.IncExample()
				m.Bert.Embeddings.Tokens.ZeroGrad()
				require.NoError(t, tm.Sync())
			}
			assert.Less(t, last, first*0.8, "loss falls: %.4f -> %.4f", first, last)
			walk.WalkAll(m, func(n walk.Node) {
				if p, ok := n.Value.(*nn.Param); ok {
					assert.False(t, p.HasGrad(), "no gradient left on %s", n.Path)
				}
			})
			trainable := tm.TrainableParams()
			for k, id := range ids {
				assert.Equal(t, 0.0, rows.MaxAbsDiff(head.W.Value().(mat.Matrix), id, trainable[k].Value().(mat.Matrix), 0, head.W.Value().Shape()[1]),
					"the tied decoder follows row %d", id)
			}
			_, err = tm.Unload()
			require.NoError(t, err)
			requireSame(t, before, m)
		})
	}
}

// A non-finite gradient or update stops Step with an error naming the
// adapter, the table and the token id; the rows keep their values from the
// last finite step.
func TestStepRefusesNonFinite(t *testing.T) {
	m := loadedBERT(t)
	tm, err := New(m, Config{TokenIndices: []int{5, 100}}, "")
	require.NoError(t, err)
	head := m.Layers[3].(*linear.Model)
	loss := func() mat.Tensor { return lmLoss(t, tm, m.Bert.Embeddings.Tokens, head, []int{5, 100}, []int{100, 5}) }
	rowsNow := func() [][]float64 {
		var out [][]float64
		for _, p := range tm.TrainableParams() {
			v := p.Value().(mat.Matrix)
			out = append(out, rows.Get(v, 0, v.Size()))
		}
		return out
	}
	require.NoError(t, ag.Backward(loss()))
	_, err = tm.Step(sgd.New[float32](sgd.NewConfig(0.1, 0, false)))
	require.NoError(t, err)
	good := rowsNow()

	for _, lr := range []float64{math.Inf(1), math.NaN(), math.Inf(-1)} {
		require.NoError(t, ag.Backward(loss()))
		_, err = tm.Step(sgd.New[float32](sgd.NewConfig(lr, 0, false)))
		require.ErrorIs(t, err, ErrNotFinite, "lr %v", lr)
		assert.ErrorContains(t, err, "of bert.embeddings.word_embeddings")
		assert.ErrorContains(t, err, "token id 5")
		assert.Equal(t, good, rowsNow(), "rows keep their last finite values (lr %v)", lr)
	}
	// A non-finite gradient: nothing is stepped.
	require.NoError(t, ag.Backward(loss()))
	p := tm.TrainableParams()[1]
	g := p.Grad().(mat.Matrix)
	g.SetScalar(g.NewScalar(math.NaN()).Item(), 3, 0)
	_, err = tm.Step(adam.New(adam.NewDefaultConfig()))
	require.ErrorIs(t, err, ErrNotFinite)
	assert.ErrorContains(t, err, "the gradient of adapter \"default\", token id 100 of bert.embeddings.word_embeddings has a NaN or Inf at column 3")
	assert.Equal(t, good, rowsNow())
	// Nothing non-finite reached the tied decoder either.
	for k, id := range []int{5, 100} {
		assert.Equal(t, 0.0, rows.MaxAbsDiff(head.W.Value().(mat.Matrix), id, tm.TrainableParams()[k].Value().(mat.Matrix), 0, 32))
	}
	_, err = tm.Step(nil)
	assert.Error(t, err)
}
