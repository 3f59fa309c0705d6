package picture

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestThumbnailSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		w, h := 1+rng.IntN(3000), 1+rng.IntN(3000)
		mw, mh := 1+rng.IntN(400), 1+rng.IntN(400)
		tw, th := thumbnailSize(w, h, mw, mh)
		if tw < 1 || th < 1 || tw > mw || th > mh {
			t.Fatalf("%dx%d in %dx%d: %dx%d does not fit", w, h, mw, mh, tw, th)
		}
		if tw != mw && th != mh {
			t.Fatalf("%dx%d in %dx%d: %dx%d fills neither side", w, h, mw, mh, tw, th)
		}
		// The free side is the exact proportional size rounded to the
		// nearest pixel (half a pixel of error), or clamped to 1 pixel.
		okW := tw == mw && (th == 1 || math.Abs(float64(th)-float64(h)*float64(mw)/float64(w)) <= 0.5+1e-9)
		okH := th == mh && (tw == 1 || math.Abs(float64(tw)-float64(w)*float64(mh)/float64(h)) <= 0.5+1e-9)
		if !okW && !okH {
			t.Fatalf("%dx%d in %dx%d: %dx%d is not proportional", w, h, mw, mh, tw, th)
		}
	}
}

// halves returns a w x h image, red on the left half and blue on the
// right, with bounds starting at (x0, y0).
func halves(x0, y0, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(x0, y0, x0+w, y0+h))
	for y := y0; y < y0+h; y++ {
		for x := x0; x < x0+w; x++ {
			c := color.RGBA{255, 0, 0, 255}
			if x-x0 >= w/2 {
				c = color.RGBA{0, 0, 255, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func TestThumbnail(t *testing.T) {
	src := halves(10, 20, 400, 200)
	th := Thumbnail(src, 100, 100)
	require.Equal(t, image.Rect(0, 0, 100, 50), th.Bounds(), "100x50 at the origin")
	// Away from the seam the colours are kept (Lanczos rings only near
	// the edge between the halves).
	r, _, b, _ := th.At(10, 25).RGBA()
	if r>>8 < 250 || b>>8 > 5 {
		t.Errorf("left side is %v, want red", th.At(10, 25))
	}
	r, _, b, _ = th.At(90, 25).RGBA()
	if b>>8 < 250 || r>>8 > 5 {
		t.Errorf("right side is %v, want blue", th.At(90, 25))
	}
	// Tall image: height constrains.
	assert.Equal(t, image.Pt(12, 160), Thumbnail(halves(0, 0, 60, 800), 160, 160).Bounds().Size(), "60x800 in 160x160")
	// Never enlarged: a small image comes back unchanged.
	small := halves(0, 0, 60, 80)
	if got := Thumbnail(small, 160, 160); got != image.Image(small) {
		t.Error("an image that fits was not returned unchanged")
	}
	assert.Equal(t, image.Pt(10, 1), Thumbnail(halves(0, 0, 1000, 1), 10, 10).Bounds().Size(), "1000x1 in 10x10")
	mustPanic(t, "box size", func() { Thumbnail(small, 0, 10) })
}

func BenchmarkThumbnail(b *testing.B) {
	src := halves(0, 0, 1000, 1300)
	b.ReportAllocs()
	for b.Loop() {
		Thumbnail(src, 160, 160)
	}
}
