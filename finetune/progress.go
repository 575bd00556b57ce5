package finetune

import (
	"fmt"
	"io"
	"time"
)

// progress writes a plain line about every tenth of a run (and at its last
// step) to Config.Progress. The trainer writes nothing unless a writer is
// given: a library does not draw on the caller's terminal by itself. For a
// terminal progress bar, programs pass package progress's Bar.Step as
// OnStep (it is kept out of this package, which notebooks import; see
// there).
type progress struct {
	w            io.Writer
	total, every int
	start        time.Time
}

func newProgress(w io.Writer, quiet bool, total int) *progress {
	if w == nil || quiet {
		return &progress{}
	}
	return &progress{w: w, total: total, every: max(total/10, 1), start: time.Now()}
}

// update reports step done (1-based) with its loss.
func (p *progress) update(done int, loss float64) {
	if p.w == nil || (done%p.every != 0 && done != p.total) {
		return
	}
	fmt.Fprintln(p.w, renderProgress(done, p.total, loss, time.Since(p.start)))
}

func (p *progress) finish() {}

// renderProgress formats one line, e.g.
// "train step 12/40  loss 2.3456  410ms/step  eta 11s": the time per step
// is the measured wall time so far divided by the steps done.
func renderProgress(done, total int, loss float64, elapsed time.Duration) string {
	per := elapsed / time.Duration(max(done, 1))
	eta := per * time.Duration(max(total-done, 0))
	return fmt.Sprintf("train step %d/%d  loss %.4f  %s/step  eta %s",
		done, total, loss, per.Round(time.Millisecond), eta.Round(time.Second))
}
