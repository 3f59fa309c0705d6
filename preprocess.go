package style

import (
	"errors"
	"fmt"
	"image"
	"image/color"

	"github.com/nfnt/resize"
)

// ResizeFilter selects how an image is resized to the network input size.
type ResizeFilter int

const (
	// FilterNearest is nearest-neighbour sampling exactly as PIL's
	// Image.NEAREST, which Keras' load_img(target_size=...) uses: per
	// axis, destination pixel d of D samples source pixel
	// floor((d + 0.5) * S / D) of S, computed with PIL's float64
	// accumulation so that exact ties round as PIL rounds them (for
	// sizes that are multiples of 64, such as 640, the exact formula
	// differs from PIL at a few pixels). It is the default, and the only
	// filter that reproduces Keras features.
	FilterNearest ResizeFilter = iota
	// FilterBilinear is bilinear interpolation (github.com/nfnt/resize).
	FilterBilinear
	// FilterLanczos3 is Lanczos resampling with a = 3
	// (github.com/nfnt/resize).
	FilterLanczos3
)

// String returns the filter's name.
func (f ResizeFilter) String() string {
	switch f {
	case FilterNearest:
		return "nearest"
	case FilterBilinear:
		return "bilinear"
	case FilterLanczos3:
		return "lanczos3"
	}
	return fmt.Sprintf("ResizeFilter(%d)", int(f))
}

// pilNearestIndex fills tab with the source index that PIL's
// nearest-neighbour resize (Image.NEAREST, used by Keras' load_img) samples
// for each of the len(tab) destination pixels of an axis of src pixels.
// Mathematically that is floor((d + 0.5) * src / dst), but PIL
// (ImagingScaleAffine) computes it by accumulating the float64 step
// src/dst, which lands just below the integer at exact ties: for example
// for 640 -> 224 pixels, destination 17 samples 49, not 50. This function
// repeats PIL's arithmetic operation for operation, so it agrees with PIL
// for every size, ties included (checked against Pillow in the tests).
func pilNearestIndex(tab []int, src int) {
	step := float64(src) / float64(len(tab))
	pos := step * 0.5
	for d := range tab {
		i := int(pos) // pos >= 0: truncation is floor, as PIL's COORD
		tab[d] = min(i, src-1)
		pos += step
	}
}

// preprocessImageTo resizes img to InputSize x InputSize with filter,
// composites translucent pixels over matte unless it is nil, applies the
// normalisation mode and writes the 3 x 224 x 224 float32 tensor, in C,H,W
// order, into dst (see Network.Features). It returns an error for a nil
// or empty image, or an unknown mode or filter. It panics if dst does not
// have length 3 x 224 x 224 = 150,528.
func preprocessImageTo(dst []float32, img image.Image, mode Preprocess, filter ResizeFilter, matteColor color.Color) error {
	const n = InputSize
	if len(dst) != 3*n*n {
		panic(fmt.Sprintf("style: preprocessImageTo: destination has %d values, want %d", len(dst), 3*n*n))
	}
	if img == nil {
		return errors.New("nil image")
	}
	if b := img.Bounds(); b.Empty() {
		return fmt.Errorf("empty image of %dx%d pixels", b.Dx(), b.Dy())
	}
	var scale, mean, std [3]float64 // per output channel
	var srcChan [3]int              // output channel -> R, G, B index
	switch mode {
	case PreprocessCaffe:
		srcChan = [3]int{2, 1, 0}
		mean = [3]float64{103.939, 116.779, 123.68}
		scale = [3]float64{1, 1, 1}
		std = [3]float64{1, 1, 1}
	case PreprocessTorch:
		srcChan = [3]int{0, 1, 2}
		mean = [3]float64{0.485, 0.456, 0.406}
		scale = [3]float64{1.0 / 255, 1.0 / 255, 1.0 / 255}
		std = [3]float64{0.229, 0.224, 0.225}
	default:
		return fmt.Errorf("unknown preprocessing %q (want %q or %q)", mode, PreprocessCaffe, PreprocessTorch)
	}
	switch filter {
	case FilterNearest:
	case FilterBilinear:
		img = resize.Resize(n, n, img, resize.Bilinear)
	case FilterLanczos3:
		img = resize.Resize(n, n, img, resize.Lanczos3)
	default:
		return fmt.Errorf("unknown resize filter %v", filter)
	}
	// Lookup tables: the normalised value of each 8-bit level per channel.
	var lut [3][256]float32
	for c := range 3 {
		for v := range 256 {
			if mode == PreprocessCaffe {
				lut[c][v] = float32(float64(v) - mean[c])
			} else {
				lut[c][v] = float32((float64(v)*scale[c] - mean[c]) / std[c])
			}
		}
	}
	var mr, mg, mb uint32
	matte := matteColor != nil
	if matte {
		c := color.NRGBAModel.Convert(matteColor).(color.NRGBA)
		mr, mg, mb = uint32(c.R), uint32(c.G), uint32(c.B)
	}
	s := newPixelSampler(img)
	b := img.Bounds()
	var xs, ys [n]int
	pilNearestIndex(xs[:], b.Dx())
	pilNearestIndex(ys[:], b.Dy())
	plane := n * n
	for y := range n {
		sy := b.Min.Y + ys[y]
		for x, sx := range xs {
			r, g, bl, a := s.at(b.Min.X+sx, sy)
			rgb := [3]uint8{r, g, bl}
			if matte && a != 255 {
				// Composite over the matte, rounding to the nearest level.
				aa := uint32(a)
				rgb[0] = uint8((uint32(r)*aa + mr*(255-aa) + 127) / 255)
				rgb[1] = uint8((uint32(g)*aa + mg*(255-aa) + 127) / 255)
				rgb[2] = uint8((uint32(bl)*aa + mb*(255-aa) + 127) / 255)
			}
			i := y*n + x
			dst[i] = lut[0][rgb[srcChan[0]]]
			dst[plane+i] = lut[1][rgb[srcChan[1]]]
			dst[2*plane+i] = lut[2][rgb[srcChan[2]]]
		}
	}
	return nil
}

// pixelSampler reads single pixels of an image as non-premultiplied 8-bit
// RGBA, with fast paths for the common concrete types.
type pixelSampler struct {
	img     image.Image
	ycbcr   *image.YCbCr
	rgba    *image.RGBA
	nrgba   *image.NRGBA
	gray    *image.Gray
	pal     *image.Paletted
	palette []color.NRGBA
}

func newPixelSampler(img image.Image) *pixelSampler {
	s := &pixelSampler{img: img}
	switch m := img.(type) {
	case *image.YCbCr:
		s.ycbcr = m
	case *image.RGBA:
		s.rgba = m
	case *image.NRGBA:
		s.nrgba = m
	case *image.Gray:
		s.gray = m
	case *image.Paletted:
		s.pal = m
		s.palette = make([]color.NRGBA, 256)
		for i := range s.palette {
			if i < len(m.Palette) {
				s.palette[i] = color.NRGBAModel.Convert(m.Palette[i]).(color.NRGBA)
			} else {
				s.palette[i] = color.NRGBA{A: 255} // out-of-palette index: opaque black, as image.Paletted.At
			}
		}
	}
	return s
}

// at returns the pixel at (x, y), which must be inside the image bounds.
func (s *pixelSampler) at(x, y int) (r, g, b, a uint8) {
	switch {
	case s.ycbcr != nil:
		m := s.ycbcr
		yi, ci := m.YOffset(x, y), m.COffset(x, y)
		r, g, b := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
		return r, g, b, 255
	case s.nrgba != nil:
		p := s.nrgba.Pix[s.nrgba.PixOffset(x, y):]
		return p[0], p[1], p[2], p[3]
	case s.rgba != nil:
		p := s.rgba.Pix[s.rgba.PixOffset(x, y):]
		if p[3] == 255 {
			return p[0], p[1], p[2], 255
		}
		return unpremultiply(p[0], p[1], p[2], p[3])
	case s.gray != nil:
		v := s.gray.Pix[s.gray.PixOffset(x, y)]
		return v, v, v, 255
	case s.pal != nil:
		c := s.palette[s.pal.Pix[s.pal.PixOffset(x, y)]]
		return c.R, c.G, c.B, c.A
	}
	c := color.NRGBA64Model.Convert(s.img.At(x, y)).(color.NRGBA64)
	return uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8), uint8(c.A >> 8)
}

// unpremultiply converts an alpha-premultiplied 8-bit pixel to
// non-premultiplied, with exactly the arithmetic of color.NRGBAModel but
// without its interface conversions, which allocate.
func unpremultiply(r8, g8, b8, a8 uint8) (r, g, b, a uint8) {
	if a8 == 0 {
		return 0, 0, 0, 0
	}
	ca := uint32(a8) * 0x101
	cr := uint32(r8) * 0x101 * 0xffff / ca
	cg := uint32(g8) * 0x101 * 0xffff / ca
	cb := uint32(b8) * 0x101 * 0xffff / ca
	return uint8(cr >> 8), uint8(cg >> 8), uint8(cb >> 8), a8
}
