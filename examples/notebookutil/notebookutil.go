// Package notebookutil draws the pictures of the example notebooks with the
// standard library only (image, image/png): a loss curve as PNG bytes, which
// a notebook shows inline (gophernotes: display.PNG(b); GoNB:
// gonbui.DisplayPNG(b)). It is presentational: nothing in it touches a model.
//
// Its API is not generic, so that gophernotes, which cannot call generic
// functions, can use it.
package notebookutil

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"strconv"
)

// Colours of the plot.
var (
	background = color.RGBA{255, 255, 255, 255}
	axis       = color.RGBA{60, 60, 60, 255}
	grid       = color.RGBA{225, 225, 225, 255}
	line       = color.RGBA{31, 119, 180, 255} // matplotlib's first colour
)

// LossCurvePNG plots losses (one value per training step) against the step
// number and returns the picture as PNG bytes, width × height pixels. The
// y axis runs from 0 (or the smallest loss, if negative) to the largest
// loss; both ends are labelled, as is the last step. It fails on an empty
// slice, a NaN or infinite loss, or a picture smaller than 120 × 80.
func LossCurvePNG(losses []float64, width, height int) ([]byte, error) {
	if len(losses) == 0 {
		return nil, errors.New("notebookutil: no losses to plot")
	}
	if width < 120 || height < 80 {
		return nil, fmt.Errorf("notebookutil: picture %d×%d is smaller than 120×80", width, height)
	}
	lo, hi := 0.0, losses[0]
	for i, v := range losses {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("notebookutil: loss %d is %v", i, v)
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi == lo {
		hi = lo + 1
	}

	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, img.Bounds(), background)

	const scale = 2 // glyph pixel size
	top, bottom := 14, 22
	left := 12 + scale*4*len(label(hi))
	if l := 12 + scale*4*len(label(lo)); l > left {
		left = l
	}
	right := 14
	plot := image.Rect(left, top, width-right, height-bottom)

	// Grid: four horizontal lines.
	for k := 1; k < 4; k++ {
		y := plot.Max.Y - k*plot.Dy()/4
		fill(img, image.Rect(plot.Min.X, y, plot.Max.X, y+1), grid)
	}
	// Axes.
	fill(img, image.Rect(plot.Min.X-1, plot.Min.Y, plot.Min.X, plot.Max.Y+1), axis)
	fill(img, image.Rect(plot.Min.X-1, plot.Max.Y, plot.Max.X, plot.Max.Y+1), axis)

	// The curve.
	px := func(i int) float64 {
		if len(losses) == 1 {
			return float64(plot.Min.X)
		}
		return float64(plot.Min.X) + float64(i)*float64(plot.Dx()-1)/float64(len(losses)-1)
	}
	py := func(v float64) float64 {
		return float64(plot.Max.Y-1) - (v-lo)/(hi-lo)*float64(plot.Dy()-1)
	}
	for i := range losses {
		x0, y0 := px(i), py(losses[i])
		x1, y1 := x0, y0
		if i+1 < len(losses) {
			x1, y1 = px(i+1), py(losses[i+1])
		}
		segment(img, x0, y0, x1, y1, line)
	}

	// Labels: the y range on the left, the first and last step below.
	text(img, plot.Min.X-6-scale*4*len(label(hi))+scale, plot.Min.Y-scale*2, label(hi), scale)
	text(img, plot.Min.X-6-scale*4*len(label(lo))+scale, plot.Max.Y-scale*5, label(lo), scale)
	text(img, plot.Min.X, plot.Max.Y+6, "1", scale)
	last := strconv.Itoa(len(losses))
	text(img, plot.Max.X-scale*4*len(last)+scale, plot.Max.Y+6, last, scale)
	text(img, plot.Min.X+plot.Dx()/2-scale*8, plot.Max.Y+6, "step", scale)
	text(img, plot.Min.X+6, 2, "loss", scale)

	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// label formats an axis value with three significant digits.
func label(v float64) string {
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// segment draws a 2-pixel-wide line from (x0, y0) to (x1, y1).
func segment(img *image.RGBA, x0, y0, x1, y1 float64, c color.RGBA) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	for k := 0; k <= n; k++ {
		t := float64(k) / float64(n)
		x := int(math.Round(x0 + t*(x1-x0)))
		y := int(math.Round(y0 + t*(y1-y0)))
		fill(img, image.Rect(x, y, x+2, y+2), c)
	}
}

// glyphs is a 3×5 pixel font for the characters the labels use; each row is
// three bits, the most significant on the left.
var glyphs = map[rune][5]uint8{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7},
	'3': {7, 1, 7, 1, 7}, '4': {5, 5, 7, 1, 1}, '5': {7, 4, 7, 1, 7},
	'6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 1, 1}, '8': {7, 5, 7, 5, 7},
	'9': {7, 5, 7, 1, 7}, '.': {0, 0, 0, 0, 2}, '-': {0, 0, 7, 0, 0},
	'+': {0, 2, 7, 2, 0}, 'e': {0, 7, 7, 4, 7}, 's': {0, 7, 4, 1, 7},
	't': {2, 7, 2, 2, 3}, 'p': {0, 7, 5, 7, 4}, 'l': {6, 2, 2, 2, 7},
	'o': {0, 7, 5, 5, 7},
}

// text draws s with its top-left corner at (x, y), each font pixel a
// scale × scale square. Unknown characters are left blank.
func text(img *image.RGBA, x, y int, s string, scale int) {
	for _, r := range s {
		g := glyphs[r]
		for row := 0; row < 5; row++ {
			for col := 0; col < 3; col++ {
				if g[row]&(4>>col) != 0 {
					fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), axis)
				}
			}
		}
		x += 4 * scale
	}
}
