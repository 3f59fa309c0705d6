package picture

import (
	"image"

	"github.com/nfnt/resize"
)

// Thumbnail returns img scaled down to fit within maxW x maxH pixels,
// preserving its aspect ratio, with a Lanczos-3 filter
// (github.com/nfnt/resize). The longer side, relative to the box, fills
// the box; the other side is rounded to the nearest pixel and is at least
// one pixel.
//
// Thumbnail never enlarges: an image that already fits (including an empty
// one) is returned unchanged, not copied, so callers must not modify the
// result unless they own img. Otherwise the result is a new image whose
// bounds start at (0, 0). Thumbnail is safe for concurrent use.
//
// Thumbnail panics if maxW or maxH is not positive.
func Thumbnail(img image.Image, maxW, maxH int) image.Image {
	if maxW <= 0 || maxH <= 0 {
		panic("picture: Thumbnail: non-positive box size")
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= maxW && h <= maxH {
		return img
	}
	tw, th := thumbnailSize(w, h, maxW, maxH)
	return resize.Resize(uint(tw), uint(th), img, resize.Lanczos3)
}

// thumbnailSize returns the size of a w x h image scaled by the largest
// factor that fits it within maxW x maxH, rounded to whole pixels (at least
// one). It computes in integers so that the constraining side is exact.
func thumbnailSize(w, h, maxW, maxH int) (tw, th int) {
	// Compare the ratios w/maxW and h/maxH without division.
	if int64(w)*int64(maxH) >= int64(h)*int64(maxW) {
		// Width constrains: tw = maxW, th = round(h * maxW / w).
		tw = maxW
		th = int((2*int64(h)*int64(maxW) + int64(w)) / (2 * int64(w)))
	} else {
		th = maxH
		tw = int((2*int64(w)*int64(maxH) + int64(h)) / (2 * int64(h)))
	}
	tw = max(1, min(tw, maxW))
	th = max(1, min(th, maxH))
	return tw, th
}
