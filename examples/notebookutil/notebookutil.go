// Package notebookutil draws the pictures of the examples and notebooks: a
// training-loss curve as PNG bytes, drawn with gonum.org/v1/plot, which a
// notebook shows inline (gophernotes: display.PNG(b); GoNB:
// gonbui.DisplayPNG(b)) and the main job writes to out/loss.png. It is
// presentational: nothing in it touches a model.
//
// Its API is not generic, so that gophernotes, which cannot call generic
// functions, can use it.
package notebookutil

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Colours of the curves (matplotlib's first colour, raw losses lighter).
var (
	rawColour    = color.NRGBA{R: 31, G: 119, B: 180, A: 110}
	smoothColour = color.NRGBA{R: 31, G: 119, B: 180, A: 255}
)

// dpi relates the picture's pixels to gonum/plot's lengths.
const dpi = 96

// LossCurvePNG plots losses (one value per training step) against the step
// and returns the picture as PNG bytes, width × height pixels: the loss of
// every step as a thin line and its moving average (over a twentieth of
// the run) as a thick one, with labelled axes in the Liberation fonts
// gonum/plot embeds. The y axis is logarithmic when no loss is negative,
// since a loss falling toward 0 would otherwise flatten most of the curve;
// it starts at half the smallest positive loss, but at most four decades
// below the largest, and losses below that (0 included) are drawn on it. It fails on an empty slice, a NaN or infinite loss,
// or a picture smaller than 120 × 80.
func LossCurvePNG(losses []float64, width, height int) ([]byte, error) {
	if len(losses) == 0 {
		return nil, errors.New("notebookutil: no losses to plot")
	}
	if width < 120 || height < 80 {
		return nil, fmt.Errorf("notebookutil: picture %d×%d is smaller than 120×80", width, height)
	}
	hi, lo, negative := 0.0, math.Inf(1), false
	for i, v := range losses {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("notebookutil: loss %d is %v", i, v)
		}
		hi = math.Max(hi, v)
		if v > 0 {
			lo = math.Min(lo, v)
		}
		negative = negative || v < 0
	}
	logScale := !negative && hi > 0
	floor := math.Max(lo/2, hi/1e4)
	value := func(v float64) float64 {
		if logScale {
			return math.Max(v, floor)
		}
		return v
	}

	p := plot.New()
	p.Title.Text = "Training loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss"
	if logScale {
		p.Y.Label.Text = "loss (log scale)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		if hi/floor < 30 {
			// Less than a decade and a half: label within the decade.
			p.Y.Tick.Marker = plot.DefaultTicks{}
		}
		p.Y.Min = floor
	}
	p.X.Tick.Marker = integerTicks{}
	p.X.Min = 1
	p.X.Max = math.Max(2, float64(len(losses)))
	p.Add(plotter.NewGrid())

	raw := make(plotter.XYs, len(losses))
	for i, v := range losses {
		raw[i] = plotter.XY{X: float64(i + 1), Y: value(v)}
	}
	window := max(1, len(losses)/20)
	smooth := make(plotter.XYs, len(losses))
	sum := 0.0
	for i, v := range losses {
		sum += v
		if i >= window {
			sum -= losses[i-window]
		}
		smooth[i] = plotter.XY{X: float64(i + 1), Y: value(sum / float64(min(i+1, window)))}
	}
	rawLine, err := plotter.NewLine(raw)
	if err != nil {
		return nil, fmt.Errorf("notebookutil: %w", err)
	}
	rawLine.Color, rawLine.Width = rawColour, vg.Points(1)
	p.Add(rawLine)
	if window > 1 {
		smoothLine, err := plotter.NewLine(smooth)
		if err != nil {
			return nil, fmt.Errorf("notebookutil: %w", err)
		}
		smoothLine.Color, smoothLine.Width = smoothColour, vg.Points(2.5)
		p.Add(smoothLine)
		p.Legend.Add("each step", rawLine)
		p.Legend.Add(fmt.Sprintf("mean of %d steps", window), smoothLine)
		p.Legend.Top = true
	} else {
		rawLine.Color, rawLine.Width = smoothColour, vg.Points(2)
	}

	c := vgimg.NewWith(vgimg.UseWH(vg.Length(width)*vg.Inch/dpi, vg.Length(height)*vg.Inch/dpi), vgimg.UseDPI(dpi))
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("notebookutil: %w", err)
	}
	return buf.Bytes(), nil
}

// integerTicks labels the step axis with whole numbers.
type integerTicks struct{}

func (integerTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = fmt.Sprintf("%.0f", ticks[i].Value)
		}
	}
	return ticks
}
