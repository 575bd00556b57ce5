package trainabletokens

import (
	"testing"
	"time"

	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/optimizers/adam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// returnsWithin fails the test when f does not return within a few seconds
// (a deadlock), instead of hanging the test binary.
func returnsWithin(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not return: deadlock", what)
	}
}

// A second injection into a model that carries an adapter (a re-run
// notebook cell) is refused; after Unload the model takes a new adapter.
func TestNewRefusesInjectedModel(t *testing.T) {
	for name, model := range map[string]func(*testing.T) nn.Model{
		"bert": func(t *testing.T) nn.Model { return loadedBERT(t) },
		"bart": func(t *testing.T) nn.Model { return loadedBART(t) },
	} {
		t.Run(name, func(t *testing.T) {
			base := model(t)
			before := snapshot(base)
			tm, err := New(base, Config{TokenIndices: []int{5}}, "")
			require.NoError(t, err)
			_, err = New(base, Config{TokenIndices: []int{6}}, "")
			require.ErrorIs(t, err, ErrAlreadyInjected)
			assert.ErrorContains(t, err, "AddAdapter")
			_, err = Load(base, fixture(map[string]string{"bert": "bert-tiny", "bart": "bart-tiny"}[name]), "")
			require.ErrorIs(t, err, ErrAlreadyInjected)
			_, err = tm.Unload()
			require.NoError(t, err)
			requireSame(t, before, base)
			tm2, err := New(base, Config{TokenIndices: []int{6}}, "")
			require.NoError(t, err)
			_, err = tm2.Unload()
			require.NoError(t, err)
			requireSame(t, before, base)
		})
	}
}

// Adapter changes inside Do are errors, not deadlocks; read-only methods
// and nested Do inside Do return, also while another goroutine waits to
// change adapters.
func TestDoNeverDeadlocks(t *testing.T) {
	m := loadedBERT(t)
	tm, err := New(m, Config{TokenIndices: []int{5, 6}}, "a")
	require.NoError(t, err)
	require.NoError(t, tm.AddAdapter("b", Config{TokenIndices: []int{7}}))
	dir := t.TempDir()
	require.NoError(t, tm.Save(dir, "a", SaveOptions{}))

	changes := map[string]func() error{
		"SetActive":   func() error { return tm.SetActive("b") },
		"AddAdapter":  func() error { return tm.AddAdapter("c", Config{TokenIndices: []int{8}}) },
		"LoadAdapter": func() error { return tm.LoadAdapter(dir, "d") },
		"Delete":      func() error { return tm.Delete("b") },
		"Merge":       func() error { return tm.Merge(false) },
		"Unmerge":     tm.Unmerge,
		"Disable":     tm.Disable,
		"Enable":      tm.Enable,
		"Sync":        tm.Sync,
		"Step":        func() error { _, err := tm.Step(adam.New(adam.NewDefaultConfig())); return err },
		"Unload":      func() error { _, err := tm.Unload(); return err },
		"MergeAndUnload": func() error {
			_, err := tm.MergeAndUnload(false)
			return err
		},
	}
	for name, change := range changes {
		returnsWithin(t, name+" inside Do", func() {
			err := tm.Do(change)
			require.ErrorIs(t, err, ErrInsideDo, name)
			assert.ErrorContains(t, err, name)
		})
	}
	assert.Equal(t, []string{"a", "b"}, tm.Adapters(), "nothing changed")

	waiting := make(chan struct{})
	changed := make(chan error, 1)
	returnsWithin(t, "read-only methods inside Do with a waiting writer", func() {
		require.NoError(t, tm.Do(func() error {
			go func() {
				close(waiting)
				changed <- tm.SetActive("b") // waits for this Do
			}()
			<-waiting
			time.Sleep(50 * time.Millisecond) // let SetActive block on the lock
			assert.Equal(t, []string{"a"}, tm.Active())
			assert.Equal(t, []string{"a", "b"}, tm.Adapters())
			assert.Empty(t, tm.Merged())
			assert.False(t, tm.Disabled())
			_, err := tm.Config("a")
			assert.NoError(t, err)
			_, err = tm.Rows("a", "")
			assert.NoError(t, err)
			assert.Len(t, tm.TrainableParams(), 2)
			_, err = tm.Report()
			assert.NoError(t, err)
			assert.NoError(t, tm.Do(func() error { return nil }), "nested Do")
			_ = predict(m, []string{"[CLS]", "the", "[MASK]", "[SEP]"})
			return nil
		}))
	})
	returnsWithin(t, "the waiting change", func() { require.NoError(t, <-changed) })
	assert.Equal(t, []string{"b"}, tm.Active())
}

// After Unload every method reports the unloaded model.
func TestUnloadedReportsUnloaded(t *testing.T) {
	tm, err := New(loadedBERT(t), Config{TokenIndices: []int{5}}, "")
	require.NoError(t, err)
	_, err = tm.Unload()
	require.NoError(t, err)
	_, err = tm.Config("default")
	assert.ErrorIs(t, err, ErrUnloaded)
	_, err = tm.Rows("default", "")
	assert.ErrorIs(t, err, ErrUnloaded)
	_, err = tm.Report()
	assert.ErrorIs(t, err, ErrUnloaded)
	assert.ErrorIs(t, tm.SetActive("default"), ErrUnloaded)
	assert.ErrorIs(t, tm.Do(func() error { return nil }), ErrUnloaded)
	assert.ErrorIs(t, tm.Save(t.TempDir(), "", SaveOptions{}), ErrUnloaded)
	_, err = tm.Step(adam.New(adam.NewDefaultConfig()))
	assert.ErrorIs(t, err, ErrUnloaded)
	assert.Empty(t, tm.TrainableParams())
}

// Errors never print a whole token list: the count and the first few.
func TestErrorsShortenTokenLists(t *testing.T) {
	ids := make([]int, 300)
	for i := range ids {
		ids[i] = 10 + i
	}
	tm, err := New(loadedBERT(t), Config{TokenIndices: ids}, "a")
	require.NoError(t, err)
	require.NoError(t, tm.AddAdapter("b", Config{TokenIndices: ids[:200]}))
	err = tm.SetActive("a", "b")
	require.ErrorIs(t, err, ErrOverlap)
	assert.Contains(t, err.Error(), "200 ids [10 11 12 13 14 15 16 17]...")
	assert.Less(t, len(err.Error()), 400, "the error stays short: %d bytes", len(err.Error()))
}
