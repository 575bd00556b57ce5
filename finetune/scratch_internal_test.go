package finetune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/cybertron/pkg/vocabulary"
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/internal/testmodels"
)

func TestSizeClass(t *testing.T) {
	prev := 0
	for n := minScratch; n < 1<<20; n += 1 + n/7 {
		class, c := sizeClass(n)
		assert.GreaterOrEqual(t, c, n, "n %d", n)
		assert.LessOrEqual(t, c, n+n/4+1, "n %d: at most 25%% over", n)
		c2, capacity := sizeClass(c)
		assert.Equal(t, class, c2, "a buffer's capacity is in its own class (n %d)", n)
		assert.Equal(t, c, capacity)
		assert.GreaterOrEqual(t, c, prev)
		prev = c
	}
}

func TestScratchReuse(t *testing.T) {
	var s *scratch[float32]
	assert.Len(t, s.get(5000), 5000, "nil scratch allocates")
	s.put(make([]float32, 5000)) // and keeps nothing

	s = &scratch[float32]{}
	a := s.get(5000)
	a[0] = 3
	s.put(a)
	b := s.get(4900) // same class
	assert.True(t, same(a, b), "reused")
	c := s.zeros(4900)
	assert.False(t, same(b, c), "a buffer is handed out once")
	assert.Equal(t, make([]float32, 4900), c)
	s.put(b, c)
	assert.Len(t, s.free[func() int { k, _ := sizeClass(5000); return k }()], 2)
	s.put(make([]float32, 10))   // too small to keep
	s.put(make([]float32, 5001)) // not a class capacity: not ours
	total := 0
	for _, l := range s.free {
		total += len(l)
	}
	assert.Equal(t, 2, total)
}

// scratchBatch is a masked-LM batch of the tiny BERT large enough that the
// step's buffers go through the scratch (at least minScratch values).
func scratchBatch(t *testing.T) (*bert.ModelForMaskedLM, []MaskedExample, []*nn.Param) {
	m := testmodels.BERT(t)
	require.NoError(t, PrepareLoaded(m))
	for _, p := range AllParams(m) {
		p.SetRequiresGrad(false)
	}
	vocab := m.Bert.Embeddings.Vocab
	words := []string{"the", "cat", "sat", "on", "dog", "table", "box", "a"}
	var batch []MaskedExample
	for i := range 8 {
		tokens := []string{"[CLS]"}
		for j := range 9 + i%3 {
			tokens = append(tokens, words[(i*3+j*5)%len(words)])
		}
		tokens = append(tokens, "[SEP]")
		ex, err := MaskTokens(vocab, tokens, 1+i%4, 2+(i+1)%5)
		require.NoError(t, err)
		batch = append(batch, ex)
	}
	var rows []*nn.Param
	for _, w := range []string{"[MASK]", "the", "sat"} {
		id, ok := vocab.ID(w)
		require.True(t, ok)
		p := m.Bert.Embeddings.Tokens.Weights[id]
		p.SetRequiresGrad(true)
		rows = append(rows, p)
	}
	return m, batch, rows
}

// stepOf runs the loss and its backward and returns the loss and the
// rows' gradients (cleared afterwards).
func stepOf(t *testing.T, m *bert.ModelForMaskedLM, batch []MaskedExample, rows []*nn.Param, c *packCache) (float64, [][]float32) {
	l, err := maskedLMLoss(m, batch, nil, ForwardAuto, c)
	require.NoError(t, err)
	require.NoError(t, ag.Backward(l))
	var grads [][]float32
	for _, p := range rows {
		require.True(t, p.HasGrad())
		grads = append(grads, append([]float32(nil), mat.Data[float32](p.Grad())...))
		p.ZeroGrad()
	}
	return l.Value().Item().F64(), grads
}

// The fused step with a Task's scratch gives the loss and row gradients of
// the step without it bit for bit, step after step, with every buffer
// poisoned (NaN) when given back: no buffer is read after its release.
// A forward without backward (buffers never given back) changes nothing.
func TestScratchStepsBitIdentical(t *testing.T) {
	m, batch, rows := scratchBatch(t)
	want, wantGrads := stepOf(t, m, batch, rows, nil)
	require.False(t, math.IsNaN(want))
	c := newPackCache()
	c.bufs32.poison = true
	for step := range 4 {
		if step == 2 {
			_, err := maskedLMLoss(m, batch, nil, ForwardAuto, c) // forward only
			require.NoError(t, err)
		}
		got, grads := stepOf(t, m, batch, rows, c)
		assert.Equal(t, want, got, "step %d", step)
		assert.Equal(t, wantGrads, grads, "step %d", step)
	}
	kept := 0
	for _, l := range c.bufs32.free {
		kept += len(l)
	}
	assert.Positive(t, kept, "the scratch was used")
}

// Concurrent steps on one Task's scratch (the model's rows get both
// gradients: only the losses are compared) never share a buffer.
func TestScratchConcurrentSteps(t *testing.T) {
	m, batch, rows := scratchBatch(t)
	want, _ := stepOf(t, m, batch, rows, nil)
	c := newPackCache()
	c.bufs32.poison = true
	var wg sync.WaitGroup
	losses := make([][]float64, 3)
	for g := range losses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				l, err := maskedLMLoss(m, batch, nil, ForwardAuto, c)
				if err != nil {
					t.Error(err)
					return
				}
				if err := ag.Backward(l); err != nil {
					t.Error(err)
					return
				}
				losses[g] = append(losses[g], l.Value().Item().F64())
			}
		}()
	}
	wg.Wait()
	for _, p := range rows {
		p.ZeroGrad()
	}
	for g, ls := range losses {
		assert.Equal(t, []float64{want, want, want}, ls, "goroutine %d", g)
	}
}

// CrossEntropy hands its gradient buffer to the logits (no vocabulary-sized
// copy), and a second gradient still accumulates into it.
func TestCrossEntropyHandsOverGradient(t *testing.T) {
	const v, n = 50000, 4
	vals := make([]float32, v*n)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i)))
	}
	logits := mat.NewDense[float32](mat.WithShape(v, n), mat.WithBacking(vals), mat.WithGrad(true))
	targets := []int{3, 77, 49999, 0}
	l1, err := CrossEntropy(logits, targets)
	require.NoError(t, err)
	l1.Value()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	require.NoError(t, ag.Backward(l1))
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(v*n*4/2), "no copy of the gradient")
	once := append([]float32(nil), mat.Data[float32](logits.Grad())...)

	l2, err := CrossEntropy(logits, targets)
	require.NoError(t, err)
	require.NoError(t, ag.Backward(l2))
	twice := mat.Data[float32](logits.Grad())
	for i := range once {
		require.Equal(t, once[i]+once[i], twice[i], "element %d", i)
	}
}

// Trainer steps on a Task whose scratch poisons what it takes back (the
// cross-entropy buffer included, taken back when the step is over) follow
// the steps without a scratch bit for bit: same losses, same trained rows.
// The logits' gradient, which is that buffer, is cleared after the step.
func TestScratchTrainerStepsBitIdentical(t *testing.T) {
	run := func(pooled bool) ([]float64, [][]float32, []mat.Tensor) {
		m, batch, rows := scratchBatch(t)
		var kept []mat.Tensor
		logits := func(h mat.Tensor) mat.Tensor {
			y := moduleLogits(m.Layers[len(m.Layers)-1])(h)
			kept = append(kept, y)
			return y
		}
		var cache *packCache
		if pooled {
			cache = newPackCache()
			cache.bufs32.poison = true
		}
		task := &Task{Size: len(batch), Model: m, Loss: func(b []int) (mat.Tensor, error) {
			return maskedLMLoss(m, pick(batch, b), logits, ForwardAuto, cache)
		}}
		if pooled {
			task.finish = cache.finish
		}
		tr, err := NewTrainer(Config{TokenParams: rows, Quiet: true})
		require.NoError(t, err)
		var losses []float64
		all := []int{0, 1, 2, 3, 4, 5, 6, 7}
		for range 4 {
			info, err := tr.Step(task, all)
			require.NoError(t, err)
			losses = append(losses, info.Loss)
		}
		var vals [][]float32
		for _, p := range rows {
			vals = append(vals, append([]float32(nil), mat.Data[float32](p.Value())...))
		}
		if pooled {
			assert.Empty(t, cache.pending, "every step finished")
			found := false
			for _, l := range cache.bufs32.free {
				for _, b := range l {
					found = found || cap(b) >= len(batch)*2*len(m.Bert.Embeddings.Tokens.Weights)
				}
			}
			assert.True(t, found, "the cross-entropy buffer is back in the scratch")
		}
		return losses, vals, kept
	}
	wantLosses, wantRows, _ := run(false)
	losses, rows, kept := run(true)
	assert.Equal(t, wantLosses, losses)
	assert.Equal(t, wantRows, rows)
	require.Len(t, kept, 4)
	for i, y := range kept {
		assert.False(t, y.HasGrad(), "step %d: the logits' gradient is cleared", i)
	}
}

// A Predictor's inference reuses its scratch between calls: with every
// buffer poisoned (NaN) when given back, the predictions equal those of the
// functions (no scratch) call after call, earlier results stay as they
// were (nothing returned to the caller is a scratch buffer), and calls
// from several goroutines at once agree.
func TestPredictorScratch(t *testing.T) {
	m, batch, _ := scratchBatch(t)
	inputs := make([]SequenceInput, len(batch))
	for i, ex := range batch {
		inputs[i] = SequenceInput{Tokens: ex.Tokens}
	}
	want, err := PredictMaskedLM(m, inputs)
	require.NoError(t, err)
	logits := func(ps []MaskedLMPrediction) [][]float64 {
		var out [][]float64
		for _, p := range ps {
			out = append(out, p.Logits.Data().F64())
		}
		return out
	}
	p := NewPredictor()
	p.cache.bufs32.poison = true
	first, err := p.PredictMaskedLM(m, inputs)
	require.NoError(t, err)
	snapshot := logits(first)
	for range 3 {
		got, err := p.PredictMaskedLM(m, inputs)
		require.NoError(t, err)
		assert.Equal(t, logits(want), logits(got))
	}
	assert.Equal(t, snapshot, logits(first), "an earlier result was overwritten")
	kept := 0
	for _, l := range p.cache.bufs32.free {
		kept += len(l)
	}
	assert.Positive(t, kept, "the scratch was used")

	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				got, err := p.PredictMaskedLM(m, inputs)
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, logits(want), logits(got))
			}
		}()
	}
	wg.Wait()
}

// The BART encoder-decoder blocks take their buffers from the scratch too:
// bit-identical steps with every buffer poisoned when given back.
func TestScratchBARTStepsBitIdentical(t *testing.T) {
	m := testmodels.BART(t)
	require.NoError(t, PrepareLoaded(m))
	for _, p := range AllParams(m) {
		p.SetRequiresGrad(false)
	}
	var batch []Seq2SeqExample
	for i := range 6 {
		src := []int{0}
		for j := range 12 + i%3 {
			src = append(src, 5+(i*37+j*11)%400)
		}
		tgt := []int{0}
		for j := range 9 + i%2 {
			tgt = append(tgt, 5+(i*13+j*7)%400)
		}
		batch = append(batch, Seq2SeqExample{Source: append(src, 2), Target: append(tgt, 2)})
	}
	var rows []*nn.Param // rows on both sides: the end token, a source and a target token
	for _, id := range []int{2, batch[0].Source[2], batch[0].Target[2]} {
		p := m.Bart.Embeddings.Weights[id]
		p.SetRequiresGrad(true)
		rows = append(rows, p)
	}
	step := func(c *packCache) (float64, [][]float32) {
		l, err := conditionalGenerationLoss(m, batch, nil, ForwardAuto, c)
		require.NoError(t, err)
		require.NoError(t, ag.Backward(l))
		var grads [][]float32
		for k, p := range rows {
			require.True(t, p.HasGrad(), "row %d", k)
			grads = append(grads, append([]float32(nil), mat.Data[float32](p.Grad())...))
			p.ZeroGrad()
		}
		return l.Value().Item().F64(), grads
	}
	want, wantGrads := step(nil)
	c := newPackCache()
	c.bufs32.poison = true
	for i := range 3 {
		got, grads := step(c)
		assert.Equal(t, want, got, "step %d", i)
		assert.Equal(t, wantGrads, grads, "step %d", i)
	}
	assert.NotEmpty(t, c.bufs32.free, "the scratch was used")
}

// Working sets of changing shapes (sequence lengths, masked positions)
// reuse each other's buffers, and what the scratch keeps stays within
// twice the most it had out at once.
func TestScratchBoundedAcrossShapes(t *testing.T) {
	s := &scratch[float32]{}
	largest := 0
	for step := range 60 {
		n := 1000 + (step*379)%4000
		var bufs [][]float32
		for range 10 {
			bufs = append(bufs, s.get(n))
		}
		_, c := sizeClass(n)
		largest = max(largest, c)
		s.put(bufs...)
		require.LessOrEqual(t, s.kept, 2*s.most, "step %d", step)
	}
	assert.LessOrEqual(t, s.most, 10*largest)
	assert.Zero(t, s.out)

	s = &scratch[float32]{}
	b := s.get(2000)
	s.put(b)
	c := s.get(1500)
	assert.True(t, same(b, c), "a free buffer up to about twice the size serves a request")
	s.put(c)
	d := s.get(700)
	assert.False(t, same(b, d), "but not a larger one")
}

// A Task whose step failed (a non-finite loss: its buffers were taken but
// the backward never ran) goes on with correct steps; and Tasks stepped
// at once from several goroutines (one model each) share nothing.
func TestScratchAfterErrorAndConcurrentTasks(t *testing.T) {
	run := func(fail bool) ([]float64, [][]float32) {
		m, batch, rows := scratchBatch(t)
		task, err := MaskedLMTask(m, batch, nil)
		require.NoError(t, err)
		tr, err := NewTrainer(Config{TokenParams: rows, Quiet: true})
		require.NoError(t, err)
		all := []int{0, 1, 2, 3, 4, 5, 6, 7}
		var losses []float64
		for step := range 4 {
			if fail && step == 1 {
				row := mat.Data[float32](rows[0].Value())
				old := row[0]
				row[0] = float32(math.Inf(1))
				_, err := tr.Step(task, all)
				require.ErrorIs(t, err, ErrNotFinite)
				row[0] = old
			}
			info, err := tr.Step(task, all)
			require.NoError(t, err)
			losses = append(losses, info.Loss)
		}
		var vals [][]float32
		for _, p := range rows {
			vals = append(vals, append([]float32(nil), mat.Data[float32](p.Value())...))
		}
		return losses, vals
	}
	wantLosses, wantRows := run(false)
	losses, rows := run(true)
	assert.Equal(t, wantLosses, losses, "after a failed step")
	assert.Equal(t, wantRows, rows, "after a failed step")

	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			losses, rows := run(g == 1)
			assert.Equal(t, wantLosses, losses, "goroutine %d", g)
			assert.Equal(t, wantRows, rows, "goroutine %d", g)
		}()
	}
	wg.Wait()
}

// With the model's own projection (nil LogitsFunc) the Task computes the
// logits itself, and their values go back to the scratch after the step as
// well: bit-identical steps with a poisoning scratch, and both
// vocabulary-sized buffers (logits and their gradient) end in the scratch.
func TestScratchTrainerOwnLogits(t *testing.T) {
	run := func(pooled bool) ([]float64, [][]float32, *packCache, int) {
		m, batch, rows := scratchBatch(t)
		var cache *packCache
		if pooled {
			cache = newPackCache()
			cache.bufs32.poison = true
		}
		task := &Task{Size: len(batch), Model: m, Loss: func(b []int) (mat.Tensor, error) {
			return maskedLMLoss(m, pick(batch, b), nil, ForwardAuto, cache)
		}}
		if pooled {
			task.finish = cache.finish
		}
		tr, err := NewTrainer(Config{TokenParams: rows, Quiet: true})
		require.NoError(t, err)
		var losses []float64
		for range 4 {
			info, err := tr.Step(task, []int{0, 1, 2, 3, 4, 5, 6, 7})
			require.NoError(t, err)
			losses = append(losses, info.Loss)
		}
		var vals [][]float32
		for _, p := range rows {
			vals = append(vals, append([]float32(nil), mat.Data[float32](p.Value())...))
		}
		return losses, vals, cache, len(batch) * 2 * len(m.Bert.Embeddings.Tokens.Weights)
	}
	wantLosses, wantRows, _, _ := run(false)
	losses, rows, cache, vm := run(true)
	assert.Equal(t, wantLosses, losses)
	assert.Equal(t, wantRows, rows)
	big := 0
	for _, l := range cache.bufs32.free {
		for _, b := range l {
			if cap(b) >= vm {
				big++
			}
		}
	}
	assert.Equal(t, 2, big, "the logits and their gradient are back in the scratch")
}

// float64 models take their buffers from the float64 scratch: Trainer
// steps with it poisoning equal the steps without it bit for bit.
func TestScratchFloat64Steps(t *testing.T) {
	words := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	for i := len(words); i < 40; i++ {
		words = append(words, fmt.Sprintf("w%d", i))
	}
	run := func(pooled bool) ([]float64, [][]float64, *packCache) {
		m := bert.New[float64](bert.Config{HiddenSize: 16, EmbeddingsSize: 16, IntermediateSize: 32, NumAttentionHeads: 2,
			NumHiddenLayers: 2, MaxPositionEmbeddings: 32, TypeVocabSize: 2, VocabSize: len(words), HiddenAct: "gelu"})
		m.Embeddings.Vocab = vocabulary.New(words)
		mlm := bert.NewModelForMaskedLM[float64](m)
		rng := rand.New(rand.NewPCG(7, 8))
		for _, p := range AllParams(mlm) {
			d := mat.Data[float64](p.Value())
			for i := range d {
				d[i] = rng.NormFloat64() * 0.3
			}
			p.SetRequiresGrad(false)
		}
		var rows []*nn.Param
		for _, id := range []int{4, 7, 9} {
			p := m.Embeddings.Tokens.Weights[id]
			p.SetRequiresGrad(true)
			rows = append(rows, p)
		}
		var batch []MaskedExample
		for i := range 8 {
			tokens := []string{"[CLS]"}
			for j := range 12 + i%4 {
				tokens = append(tokens, words[5+(i*7+j*3)%35])
			}
			ex, err := MaskTokens(m.Embeddings.Vocab, append(tokens, "[SEP]"), 1+i%5, 6+i%3)
			require.NoError(t, err)
			batch = append(batch, ex)
		}
		var cache *packCache
		if pooled {
			cache = newPackCache()
			cache.bufs64.poison = true
		}
		task := &Task{Size: len(batch), Model: mlm, Loss: func(b []int) (mat.Tensor, error) {
			return maskedLMLoss(mlm, pick(batch, b), nil, ForwardAuto, cache)
		}}
		if pooled {
			task.finish = cache.finish
		}
		tr, err := NewTrainer(Config{TokenParams: rows, Quiet: true})
		require.NoError(t, err)
		var losses []float64
		for range 3 {
			info, err := tr.Step(task, []int{0, 1, 2, 3, 4, 5, 6, 7})
			require.NoError(t, err)
			losses = append(losses, info.Loss)
		}
		var vals [][]float64
		for _, p := range rows {
			vals = append(vals, append([]float64(nil), mat.Data[float64](p.Value())...))
		}
		return losses, vals, cache
	}
	wantLosses, wantRows, _ := run(false)
	losses, rows, cache := run(true)
	assert.Equal(t, wantLosses, losses)
	assert.Equal(t, wantRows, rows)
	assert.NotEmpty(t, cache.bufs64.free, "the float64 scratch was used")
	assert.Empty(t, cache.bufs32.free)
}
