package trainabletokens

import (
	"math"
	"testing"
	"time"

	"github.com/nlpodyssey/cybertron/pkg/models/bert"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn/embedding"
	"github.com/nlpodyssey/spago/nn/linear"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gopeft/gopeft/finetune"
	"github.com/gopeft/gopeft/internal/rows"
)

// perturb moves every row of an adapter by a pattern of its own, so that
// adapters on the same ids give different logits.
func perturbMixed(t *testing.T, tm *Model, name string, seed float64) {
	t.Helper()
	ps, err := tm.Rows(name, "")
	require.NoError(t, err)
	for k, p := range ps {
		m := p.Value().(mat.Matrix)
		vals := rows.Get(m, 0, m.Size())
		for i := range vals {
			vals[i] += 0.3 * math.Sin(seed+float64(k*7+i))
		}
		require.NoError(t, rows.Set(m, 0, vals))
	}
}

// alone activates one adapter ("" disables them all) for a reference run.
func alone(t *testing.T, tm *Model, name string) {
	t.Helper()
	if name == "" {
		require.NoError(t, tm.Disable())
		return
	}
	require.NoError(t, tm.Enable())
	require.NoError(t, tm.SetActive(name))
}

func requireSameLogits(t *testing.T, want, got mat.Matrix, msg string, args ...any) {
	t.Helper()
	require.Equal(t, want.Shape(), got.Shape(), msg)
	a, b := rows.Get(want, 0, want.Size()), rows.Get(got, 0, got.Size())
	diffs, worst := 0, 0.0
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			diffs++
			worst = math.Max(worst, math.Abs(a[i]-b[i]))
		}
	}
	require.Zerof(t, diffs, msg+": %d values differ, largest by %g", append(args, diffs, worst)...)
}

// setupMixedBERT has three adapters on the tiny BERT, "a" and "b"
// overlapping in ids, each with rows of its own, and "a" active.
func setupMixedBERT(t *testing.T) (*bert.ModelForMaskedLM, *Model, []finetune.MaskedInput) {
	m := loadedBERT(t)
	v := m.Bert.Embeddings.Vocab
	red, the, is, apple := v.MustID("red"), v.MustID("the"), v.MustID("is"), v.MustID("apple")
	tm, err := New(m, Config{TokenIndices: []int{red, the}}, "a")
	require.NoError(t, err)
	require.NoError(t, tm.AddAdapter("b", Config{TokenIndices: []int{the, is, apple}}))
	require.NoError(t, tm.AddAdapter("c", Config{TokenIndices: []int{300}}))
	for i, n := range []string{"a", "b", "c"} {
		perturbMixed(t, tm, n, float64(i+1))
	}
	require.NoError(t, tm.Sync())
	batch := []finetune.MaskedInput{
		{Tokens: []string{"[CLS]", "the", "apple", "is", "[MASK]", "[SEP]"}, Positions: []int{4, 1}},
		{Tokens: []string{"[CLS]", "the", "red", "[MASK]", "is", "red", "[SEP]"}, Positions: []int{3}},
		{Tokens: []string{"[CLS]", "[MASK]", "is", "the", "apple", "[SEP]"}, Positions: []int{1, 3, 4}},
		{Tokens: []string{"[CLS]", "red", "[MASK]", "[SEP]"}, Positions: []int{2}},
		{Tokens: []string{"[CLS]", "the", "[MASK]", "[SEP]"}, Positions: []int{2, 1}},
	}
	return m, tm, batch
}

func TestMixedMaskedLMLogitsEqualsEachAdapterAlone(t *testing.T) {
	m, tm, batch := setupMixedBERT(t)
	names := []string{"b", "a", "", "c", "b"}
	got, err := tm.MixedMaskedLMLogits(batch, names)
	require.NoError(t, err)
	require.Len(t, got, len(batch))
	assert.Equal(t, []string{"a"}, tm.Active(), "the call leaves the model's state alone")

	out := m.Layers[3].(*linear.Model)
	for s, ex := range batch {
		alone(t, tm, names[s])
		want, err := finetune.MaskedLMLogits(m, ex.Tokens, ex.Positions, tm.LogitsFunc(out))
		require.NoError(t, err)
		requireSameLogits(t, want.Value().(mat.Matrix), got[s], "sample %d (adapter %q) vs alone with LogitsFunc", s, names[s])
		plain, err := finetune.MaskedLMLogits(m, ex.Tokens, ex.Positions, nil)
		require.NoError(t, err)
		requireSameLogits(t, plain.Value().(mat.Matrix), got[s], "sample %d (adapter %q) vs alone with the model's projection", s, names[s])
	}
	// The samples really differ by adapter: the same sentence under "a" and
	// "b" gives different logits.
	two, err := tm.MixedMaskedLMLogits([]finetune.MaskedInput{batch[0], batch[0]}, []string{"a", "b"})
	require.NoError(t, err)
	assert.NotEqual(t, rows.Get(two[0], 0, two[0].Size()), rows.Get(two[1], 0, two[1].Size()))
}

func TestMixedWithMergedAdapter(t *testing.T) {
	m, tm, batch := setupMixedBERT(t)
	require.NoError(t, tm.Merge(false, "c"))
	names := []string{"", "a", "b", "", "a"}
	got, err := tm.MixedMaskedLMLogits(batch, names)
	require.NoError(t, err)
	out := m.Layers[3].(*linear.Model)
	for s, ex := range batch {
		alone(t, tm, names[s])
		want, err := finetune.MaskedLMLogits(m, ex.Tokens, ex.Positions, tm.LogitsFunc(out))
		require.NoError(t, err)
		requireSameLogits(t, want.Value().(mat.Matrix), got[s], "sample %d (adapter %q), c merged", s, names[s])
	}
}

func TestMixedConditionalGenerationEqualsEachAdapterAlone(t *testing.T) {
	m := loadedBART(t)
	tm, err := New(m, Config{TokenIndices: []int{50, 60, 70}}, "x")
	require.NoError(t, err)
	require.NoError(t, tm.AddAdapter("y", Config{TokenIndices: []int{60, 80}}))
	perturbMixed(t, tm, "x", 1)
	perturbMixed(t, tm, "y", 2)
	require.NoError(t, tm.Sync())
	start := m.Bart.Config.DecoderStartTokenID
	sources := [][]int{{0, 50, 60, 9, 2}, {0, 80, 11, 2}, {0, 70, 60, 80, 5, 2}, {0, 12, 2}}
	decs := [][]int{{start, 0, 60}, {start, 0, 80, 50}, {start, 70}, {start, 0, 60, 80, 2}}
	names := []string{"y", "x", "", "y"}
	got, err := tm.MixedConditionalGenerationLogits(sources, decs, names)
	require.NoError(t, err)
	for s := range sources {
		alone(t, tm, names[s])
		want, err := finetune.ConditionalGenerationLogits(m, sources[s], decs[s], tm.LogitsFunc(m.Projection))
		require.NoError(t, err)
		requireSameLogits(t, want.Value().(mat.Matrix), got[s], "sample %d (adapter %q)", s, names[s])
	}
}

func TestMixedRejectsBadInput(t *testing.T) {
	m, tm, batch := setupMixedBERT(t)
	_, err := tm.MixedMaskedLMLogits(batch, []string{"a"})
	assert.ErrorContains(t, err, "5 samples but 1 adapter names")
	_, err = tm.MixedMaskedLMLogits(batch[:1], []string{"nope"})
	assert.ErrorIs(t, err, ErrUnknownAdapter)
	assert.ErrorContains(t, err, `"nope" (sample 0)`)
	_, err = tm.MixedMaskedLMLogits(nil, nil)
	assert.ErrorIs(t, err, finetune.ErrInvalidInput)
	bad := []finetune.MaskedInput{{Tokens: []string{"[CLS]", "zzzz-not-a-term"}, Positions: []int{1}}}
	_, err = tm.MixedMaskedLMLogits(bad, []string{"a"})
	assert.ErrorContains(t, err, "zzzz-not-a-term")
	bad = []finetune.MaskedInput{{Tokens: []string{"[CLS]", "the"}, Positions: []int{2}}}
	_, err = tm.MixedMaskedLMLogits(bad, []string{"a"})
	assert.ErrorContains(t, err, "position 2 out of range [0, 2)")
	_, err = tm.MixedConditionalGenerationLogits([][]int{{1}}, [][]int{{1}}, []string{""})
	assert.ErrorContains(t, err, "needs a *bart.ModelForConditionalGeneration base")

	// Bad rows given to finetune directly.
	e := m.Bert.Embeddings.Tokens
	short := mat.NewDense[float32](mat.WithShape(3, 1))
	_, err = finetune.MixedMaskedLMLogits(m, batch[:1], []finetune.SampleRows{{Input: map[*embedding.Model]map[int]mat.Matrix{e: {5: short}}}})
	assert.ErrorContains(t, err, "input row 5: has 3 values, expected 32")
	_, err = finetune.MixedMaskedLMLogits(m, batch[:1], []finetune.SampleRows{{Output: map[int]mat.Matrix{5000: short}}})
	assert.ErrorContains(t, err, "output row id 5000 out of range")
	wrong := mat.NewDense[float64](mat.WithShape(32, 1))
	_, err = finetune.MixedMaskedLMLogits(m, batch[:1], []finetune.SampleRows{{Output: map[int]mat.Matrix{5: wrong}}})
	assert.ErrorContains(t, err, "expected *mat.Dense[float32]")
	_, err = finetune.MixedMaskedLMLogits(m, batch, []finetune.SampleRows{{}})
	assert.ErrorContains(t, err, "5 samples but 1 SampleRows")

	_, err = tm.Unload()
	require.NoError(t, err)
	_, err = tm.MixedMaskedLMLogits(batch, []string{"a", "a", "a", "a", "a"})
	assert.ErrorIs(t, err, ErrUnloaded)
}

// Mixed calls run concurrently with each other and with SetActive (which
// waits for them): every result is still the sample's own.
func TestMixedConcurrent(t *testing.T) {
	_, tm, batch := setupMixedBERT(t)
	names := []string{"b", "a", "", "c", "b"}
	want, err := tm.MixedMaskedLMLogits(batch, names)
	require.NoError(t, err)
	errs := make(chan error, 6)
	results := make(chan []mat.Matrix, 4)
	for range 4 {
		go func() {
			got, err := tm.MixedMaskedLMLogits(batch, names)
			errs <- err
			results <- got
		}()
	}
	for _, n := range []string{"b", "c"} {
		go func() { errs <- tm.SetActive(n) }()
	}
	for range 6 {
		require.NoError(t, <-errs)
	}
	for range 4 {
		got := <-results
		for s := range want {
			requireSameLogits(t, want[s], got[s], "concurrent call, sample %d", s)
		}
	}
}

// Batched greedy generation with one adapter per source gives the ids each
// source gets alone with its adapter active.
func TestMixedGenerateBARTEqualsEachAdapterAlone(t *testing.T) {
	m := loadedBART(t)
	tm, err := New(m, Config{TokenIndices: []int{50, 60, 70, 264, 265}}, "x")
	require.NoError(t, err)
	require.NoError(t, tm.AddAdapter("y", Config{TokenIndices: []int{60, 80, 265, 275}}))
	for i, n := range []string{"x", "y"} {
		ps, err := tm.Rows(n, "")
		require.NoError(t, err)
		for k, p := range ps { // large moves: generation must change
			vals := rows.Get(p.Value().(mat.Matrix), 0, 32)
			for j := range vals {
				vals[j] += 2 * math.Sin(float64(i*31+k*7+j))
			}
			require.NoError(t, rows.Set(p.Value().(mat.Matrix), 0, vals))
		}
	}
	require.NoError(t, tm.Sync())
	sources := [][]int{{0, 265, 60, 264, 2}, {0, 80, 275, 11, 2}, {0, 70, 60, 80, 5, 2}, {0, 265, 275, 2}}
	names := []string{"y", "x", "", "y"}
	opts := finetune.GenerateOptions{MaxLength: 12}
	got, err := tm.MixedGenerateBART(sources, names, opts)
	require.NoError(t, err)
	require.Len(t, got, len(sources))
	differ := false
	for s := range sources {
		var want [][]int
		alone(t, tm, names[s])
		require.NoError(t, tm.Do(func() error {
			var err error
			want, err = finetune.GenerateBART(m, []finetune.Seq2SeqInput{{Source: sources[s]}}, opts)
			return err
		}))
		assert.Equal(t, want[0], got[s], "source %d (adapter %q)", s, names[s])
		for _, other := range []string{"", "x", "y"} {
			if other == names[s] {
				continue
			}
			o, err := tm.MixedGenerateBART(sources[s:s+1], []string{other}, opts)
			require.NoError(t, err)
			differ = differ || !assert.ObjectsAreEqual(o[0], got[s])
		}
	}
	assert.True(t, differ, "the adapters change what is generated")
	_, err = tm.MixedGenerateBART(sources, names[:1], opts)
	assert.ErrorContains(t, err, "4 sources but 1 adapter names")
}

func TestMixedConditionalGenerationRejectsBadInput(t *testing.T) {
	m := loadedBART(t)
	tm, err := New(m, Config{TokenIndices: []int{50}}, "x")
	require.NoError(t, err)
	start := m.Bart.Config.DecoderStartTokenID
	_, err = tm.MixedConditionalGenerationLogits([][]int{{0, 2}}, [][]int{{start}}, []string{"x", "x"})
	assert.ErrorContains(t, err, "1 samples but 2 adapter names")
	_, err = tm.MixedConditionalGenerationLogits([][]int{{0, 2}}, [][]int{{start}}, []string{"nope"})
	assert.ErrorIs(t, err, ErrUnknownAdapter)
	_, err = finetune.MixedConditionalGenerationLogits(m, [][]int{{0, 2}, {0, 2}}, [][]int{{start}}, nil)
	assert.ErrorContains(t, err, "2 sources but 1 decoder inputs")
	_, err = tm.MixedConditionalGenerationLogits([][]int{{0, 99999}}, [][]int{{start}}, []string{"x"})
	assert.ErrorIs(t, err, finetune.ErrInvalidInput)
	assert.ErrorContains(t, err, "99999")
	_, err = tm.MixedConditionalGenerationLogits(nil, nil, nil)
	assert.ErrorIs(t, err, finetune.ErrInvalidInput)
	_, err = tm.MixedGenerateBART([][]int{{0, 2}}, []string{"nope"}, finetune.GenerateOptions{})
	assert.ErrorIs(t, err, ErrUnknownAdapter)
	_, err = tm.MixedMaskedLMLogits(nil, nil)
	assert.ErrorContains(t, err, "needs a *bert.ModelForMaskedLM base")
}

// A mixed call inside Do, while another goroutine waits to change
// adapters, returns the same logits as outside Do (no deadlock: lock.go).
func TestMixedInsideDoWithWaitingWriter(t *testing.T) {
	_, tm, batch := setupMixedBERT(t)
	names := []string{"b", "a", "", "c", "b"}
	want, err := tm.MixedMaskedLMLogits(batch, names)
	require.NoError(t, err)

	waiting := make(chan struct{})
	changed := make(chan error, 1)
	returnsWithin(t, "a mixed call inside Do with a waiting writer", func() {
		require.NoError(t, tm.Do(func() error {
			go func() {
				close(waiting)
				changed <- tm.SetActive("b") // waits for this Do
			}()
			<-waiting
			time.Sleep(50 * time.Millisecond) // let SetActive block on the lock
			got, err := tm.MixedMaskedLMLogits(batch, names)
			require.NoError(t, err)
			require.Len(t, got, len(want))
			for s := range want {
				requireSameLogits(t, want[s], got[s], "sample %d inside Do", s)
			}
			return nil
		}))
	})
	returnsWithin(t, "the waiting change", func() { require.NoError(t, <-changed) })
	assert.Equal(t, []string{"b"}, tm.Active())
}
