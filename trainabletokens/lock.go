package trainabletokens

// The locking rule of Model, in one place.
//
// Two locks, never held while user code runs except as stated:
//
//   - run (sync.RWMutex) is what Do holds shared for as long as its
//     function runs, and what every adapter change (AddAdapter, LoadAdapter,
//     SetActive, Delete, Disable, Enable, Merge, Unmerge, Sync, Step,
//     MergeAndUnload, Unload) holds exclusively while it rewrites rows. So
//     an inference inside Do never sees a half-changed model, and a change
//     waits for the running Do calls to end.
//   - mu (sync.RWMutex) guards the bookkeeping (names, active, merged,
//     rows). Read-only methods (Active, Adapters, Merged, Disabled, Config,
//     Rows, TrainableParams, Report, Save, Logits, spago's traversal) take
//     only mu, for a moment, and never run. Adapter changes take mu after
//     run. So read-only methods and inference (recipes' included) never
//     block on a Do call, also while another goroutine waits to change
//     adapters.
//
// Do is re-entrant on its own goroutine: a Do inside a Do runs at once. An
// adapter change called from inside Do (on the goroutine running it) would
// wait for itself; it returns ErrInsideDo instead. Goroutines are told
// apart by their runtime id, read from runtime.Stack's header: Go has no
// other way to know that a call comes from inside a callback.

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strconv"
)

// ErrInsideDo is returned by an adapter change called from inside Do.
var ErrInsideDo = errors.New("trainabletokens: adapter change called inside Do")

// goid returns the id of the calling goroutine.
func goid() uint64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	b := bytes.TrimPrefix(buf[:n], []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

// insideDo reports whether the calling goroutine is running a Do function.
func (m *Model) insideDo() bool {
	id := goid()
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.doers[id] > 0
}

// lockWrite takes both locks for an adapter change named op; it fails on
// an unloaded model and inside Do. Release with unlockWrite.
func (m *Model) lockWrite(op string) error {
	if m.insideDo() {
		return fmt.Errorf("%w: %s would wait for the Do call it runs in; change adapters after Do returns", ErrInsideDo, op)
	}
	m.run.Lock()
	m.mu.Lock()
	if m.unloaded {
		m.mu.Unlock()
		m.run.Unlock()
		return ErrUnloaded
	}
	return nil
}

func (m *Model) unlockWrite() {
	m.mu.Unlock()
	m.run.Unlock()
}

// lockRead takes the bookkeeping lock for a read-only method; it fails on
// an unloaded model. Release with m.mu.RUnlock.
func (m *Model) lockRead() error {
	m.mu.RLock()
	if m.unloaded {
		m.mu.RUnlock()
		return ErrUnloaded
	}
	return nil
}

// Do runs fn while no adapter change can happen, for inference with the
// current adapters. fn must finish reading every value it needs (spago ops
// may run asynchronously: call Value() on the results) before returning.
// Any number of Do calls may run at once, and fn may call Do and every
// read-only method; adapter changes inside fn return ErrInsideDo (see the
// locking rule in lock.go).
func (m *Model) Do(fn func() error) error {
	if fn == nil {
		return fmt.Errorf("trainabletokens: Do: nil function")
	}
	id := goid()
	m.mu.Lock()
	if m.unloaded {
		m.mu.Unlock()
		return ErrUnloaded
	}
	nested := m.doers[id] > 0
	m.doers[id]++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.doers[id]--; m.doers[id] == 0 {
			delete(m.doers, id)
		}
		m.mu.Unlock()
	}()
	if !nested {
		m.run.RLock()
		defer m.run.RUnlock()
		m.mu.RLock()
		unloaded := m.unloaded
		m.mu.RUnlock()
		if unloaded {
			return ErrUnloaded
		}
	}
	return fn()
}
