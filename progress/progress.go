// Package progress shows training progress for programs: a progress bar
// (github.com/schollz/progressbar/v3: rate, elapsed time, ETA, the last
// loss and the measured time per step) when the writer is a terminal, and
// a plain line every tenth of the run otherwise. Attach it to a training
// run through its OnStep callback:
//
//	bar := progress.New(os.Stderr, steps)
//	losses, err := recipes.TrainMLM(m, tm, examples, recipes.TrainOptions{OnStep: bar.Step})
//	bar.Finish()
//
// The library packages never write to the terminal themselves. This one is
// separate from them on purpose: gophernotes links an older
// github.com/rivo/uniseg than progressbar needs, and a notebook that
// imports a package linking progressbar fails to load ("plugin was built
// with a different version of package github.com/rivo/uniseg"), so
// finetune and recipes, which the notebooks import, must not depend on it.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/gopeft/gopeft/finetune"
)

// Bar reports the steps of one training run. A nil *Bar reports nothing.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	bar   *progressbar.ProgressBar
	total int
	start time.Time
	every int
	done  bool
}

// New returns a Bar for a run of total steps writing to w (os.Stderr when
// nil): a progress bar when w is a terminal, plain lines otherwise.
func New(w io.Writer, total int) *Bar {
	if w == nil {
		w = os.Stderr
	}
	total = max(total, 1)
	b := &Bar{w: w, total: total, start: time.Now(), every: max(total/10, 1)}
	if IsTerminal(w) {
		b.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("train"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("steps"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetWidth(24),
		)
	}
	return b
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Step reports a finished step; it has the signature of the OnStep
// callbacks of finetune.Config and recipes.TrainOptions. The time per step
// is the wall time since New divided by the steps done, everything the
// run does between steps included.
func (b *Bar) Step(s finetune.StepInfo) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	per := time.Since(b.start) / time.Duration(max(s.Step, 1))
	if b.bar != nil {
		b.bar.Describe(fmt.Sprintf("loss %.4f, %s/step", s.Loss, per.Round(time.Millisecond)))
		return b.bar.Set(min(s.Step, b.total))
	}
	if s.Step%b.every == 0 || s.Step == b.total {
		_, err := fmt.Fprintf(b.w, "step %d/%d  epoch %d  loss %.4f  %s/step\n", s.Step, b.total, s.Epoch+1, s.Loss, per.Round(time.Millisecond))
		return err
	}
	return nil
}

// Finish ends the bar's line; further steps are not reported.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintln(b.w)
	}
}
