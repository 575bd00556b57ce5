package notebookutil

import (
	"bytes"
	"image/png"
	"math"
	"testing"
)

func TestLossCurvePNG(t *testing.T) {
	losses := []float64{7.2, 6.1, 5.5, 4.0, 3.1, 2.2, 1.9, 1.2}
	b, err := LossCurvePNG(losses, 480, 240)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Size(); got.X != 480 || got.Y != 240 {
		t.Fatalf("size %v, want 480×240", got)
	}
	// The curve's colour must be there.
	found := false
	for y := 0; y < 240 && !found; y++ {
		for x := 0; x < 480; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r>>8 == 31 && g>>8 == 119 && b>>8 == 180 {
				found = true
				break
			}
		}
	}
	if !found {
		t.Fatal("no curve drawn")
	}
	// One loss and a constant series plot too.
	for _, l := range [][]float64{{3}, {2, 2, 2}, {-1, 1}} {
		if _, err := LossCurvePNG(l, 120, 80); err != nil {
			t.Errorf("%v: %v", l, err)
		}
	}
}

func TestLossCurvePNGErrors(t *testing.T) {
	for _, c := range []struct {
		losses []float64
		w, h   int
	}{
		{nil, 480, 240},
		{[]float64{1, math.NaN()}, 480, 240},
		{[]float64{1, math.Inf(1)}, 480, 240},
		{[]float64{1, 2}, 100, 240},
		{[]float64{1, 2}, 480, 50},
	} {
		if _, err := LossCurvePNG(c.losses, c.w, c.h); err == nil {
			t.Errorf("%v %d×%d: no error", c.losses, c.w, c.h)
		}
	}
}

// TestLossCurvePNGFallingToZero: a run whose loss reaches 0 (log scale
// with a floor) still draws, at the requested size.
func TestLossCurvePNGFallingToZero(t *testing.T) {
	losses := []float64{15, 9, 3, 0.5, 0.01, 1e-5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	b, err := LossCurvePNG(losses, 640, 360)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Size(); got.X != 640 || got.Y != 360 {
		t.Fatalf("size %v, want 640×360", got)
	}
}
