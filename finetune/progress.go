package finetune

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress draws a one-line progress bar, redrawn in place, on a terminal.
type progress struct {
	w       io.Writer
	total   int
	start   time.Time
	drawn   time.Time
	enabled bool
}

// newProgress returns a bar writing to w (os.Stderr if nil), enabled only
// when w is a terminal and quiet is false.
func newProgress(w io.Writer, quiet bool, total int) *progress {
	if w == nil {
		w = os.Stderr
	}
	return &progress{w: w, total: total, start: time.Now(), enabled: !quiet && isTerminal(w)}
}

// isTerminal reports whether w is a character device (a terminal), without
// the ioctl of golang.org/x/term.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// update redraws the bar after step done (1-based), at most ten times a
// second and always at the last step.
func (p *progress) update(done int, loss float64) {
	if !p.enabled {
		return
	}
	now := time.Now()
	if done < p.total && now.Sub(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn = now
	fmt.Fprint(p.w, "\r"+renderProgress(done, p.total, loss, now.Sub(p.start)))
}

// finish ends the bar's line.
func (p *progress) finish() {
	if p.enabled && !p.drawn.IsZero() {
		fmt.Fprintln(p.w)
	}
}

// renderProgress formats the bar, e.g.
// "train  12/40 [=======>                ] loss 2.3456  0.41s/step  eta 11s".
func renderProgress(done, total int, loss float64, elapsed time.Duration) string {
	const width = 24
	filled := 0
	if total > 0 {
		filled = min(width, done*width/total)
	}
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	per := elapsed / time.Duration(max(done, 1))
	eta := per * time.Duration(max(total-done, 0))
	digits := len(fmt.Sprint(total))
	return fmt.Sprintf("train %*d/%d [%s] loss %.4f  %.2fs/step  eta %s ",
		digits, done, total, bar, loss, per.Seconds(), eta.Round(time.Second))
}
