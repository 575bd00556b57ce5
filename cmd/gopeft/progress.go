package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/gopeft/gopeft/finetune"
)

// progress reports training steps on stderr: a bar (rate, elapsed time,
// ETA, last loss, measured time per step) when stderr is a terminal, a
// plain line every tenth of the run otherwise, nothing with --quiet.
type progress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	total int
	start time.Time
	every int
}

func (a *app) newProgress(total int) *progress {
	p := &progress{total: total, start: time.Now(), every: max(total/10, 1)}
	if a.quiet {
		return p
	}
	p.w = a.stderr
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(a.stderr),
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
	return p
}

// step is a recipes.TrainOptions.OnStep callback.
func (p *progress) step(s finetune.StepInfo) error {
	if p.w == nil {
		return nil
	}
	per := time.Since(p.start) / time.Duration(s.Step)
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("loss %.4f, %s/step", s.Loss, per.Round(time.Millisecond)))
		return p.bar.Set(s.Step)
	}
	if s.Step%p.every == 0 || s.Step == p.total {
		fmt.Fprintf(p.w, "step %d/%d  epoch %d  loss %.4f  %s/step\n", s.Step, p.total, s.Epoch+1, s.Loss, per.Round(time.Millisecond))
	}
	return nil
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}
