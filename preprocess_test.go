package style

import (
	"errors"
	"image"
	"image/color"
	"image/draw"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// goldenImageNames are the eight photos of ../shared/images.
var goldenImageNames = []string{
	"matching_1", "matching_2", "neg_example_1_img1", "neg_example_1_img2",
	"not_matching_1", "not_matching_2", "pos_example_1_img1", "pos_example_1_img2",
}

// sharedDir returns ../shared, skipping the test when it is absent.
func sharedDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join("..", "shared")
	if _, err := os.Stat(filepath.Join(dir, "golden")); err != nil {
		t.Skipf("reference data %s not present: %v", dir, err)
	}
	return dir
}

func loadTestImage(t testing.TB, path string) image.Image {
	t.Helper()
	img, err := LoadImage(path)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestResizeNearestGolden checks that our resize of PIL's decoded image
// equals PIL's nearest-neighbour 224x224 resize pixel for pixel.
func TestResizeNearestGolden(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "golden", "images")
	for _, name := range goldenImageNames {
		src := loadTestImage(t, filepath.Join(dir, name+".decoded.png"))
		want := loadTestImage(t, filepath.Join(dir, name+".nearest224.png"))
		got := ResizeNearest(src, 224, 224)
		diff := 0
		for y := range 224 {
			for x := range 224 {
				w := color.NRGBAModel.Convert(want.At(want.Bounds().Min.X+x, want.Bounds().Min.Y+y)).(color.NRGBA)
				if g := got.NRGBAAt(x, y); g != w {
					diff++
				}
			}
		}
		if diff != 0 {
			t.Errorf("%s (%v): %d of %d pixels differ from PIL", name, src.Bounds().Size(), diff, 224*224)
		}
	}
}

// TestPreprocessGolden checks the caffe and torch tensors of a golden
// image against the formulas applied to PIL's resized pixels.
func TestPreprocessGolden(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "golden", "images")
	src := loadTestImage(t, filepath.Join(dir, "matching_1.decoded.png"))
	ref := loadTestImage(t, filepath.Join(dir, "matching_1.nearest224.png"))
	caffe := make([]float32, 3*224*224)
	torch := make([]float32, 3*224*224)
	if _, err := PreprocessImageTo(caffe, src, PreprocessCaffe, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := PreprocessImageTo(torch, src, PreprocessTorch, nil); err != nil {
		t.Fatal(err)
	}
	const p = 224 * 224
	for y := range 224 {
		for x := range 224 {
			c := color.NRGBAModel.Convert(ref.At(x, y)).(color.NRGBA)
			r, g, b := float64(c.R), float64(c.G), float64(c.B)
			i := y*224 + x
			// Values are rounded once from float64: exact to float32.
			wantCaffe := [3]float32{float32(b - 103.939), float32(g - 116.779), float32(r - 123.68)}
			wantTorch := [3]float32{float32((r/255 - 0.485) / 0.229), float32((g/255 - 0.456) / 0.224), float32((b/255 - 0.406) / 0.225)}
			for ch := range 3 {
				if caffe[ch*p+i] != wantCaffe[ch] {
					t.Fatalf("caffe channel %d at (%d,%d) = %v, want %v", ch, x, y, caffe[ch*p+i], wantCaffe[ch])
				}
				if torch[ch*p+i] != wantTorch[ch] {
					t.Fatalf("torch channel %d at (%d,%d) = %v, want %v", ch, x, y, torch[ch*p+i], wantTorch[ch])
				}
			}
		}
	}
}

// TestNearestIndexFormula checks the integer formula against float64
// floor((d+0.5)*src/dst) away from exact ties, and at sizes where they tie.
func TestNearestIndexFormula(t *testing.T) {
	for _, src := range []int{1, 2, 3, 7, 223, 224, 225, 395, 448, 480, 692, 1000, 4001} {
		for d := range 224 {
			got := nearestIndex(d, src, 224)
			want := int(math.Floor((float64(d) + 0.5) * float64(src) / 224))
			if got != want {
				t.Errorf("src %d, d %d: index %d, want %d", src, d, got, want)
			}
			if got < 0 || got >= src {
				t.Errorf("src %d, d %d: index %d out of range", src, d, got)
			}
		}
	}
	// Identity when the size does not change.
	for d := range 224 {
		if got := nearestIndex(d, 224, 224); got != d {
			t.Fatalf("identity resize: %d -> %d", d, got)
		}
	}
}

// TestPreprocessImageTypes runs the same picture through every image type
// and checks that all give the tensor of the NRGBA original (or, for grey,
// CMYK and 16-bit types, of the original converted through that model).
func TestPreprocessImageTypes(t *testing.T) {
	const w, h = 37, 23
	base := image.NewNRGBA(image.Rect(5, -3, 5+w, -3+h)) // non-zero origin
	for y := base.Rect.Min.Y; y < base.Rect.Max.Y; y++ {
		for x := base.Rect.Min.X; x < base.Rect.Max.X; x++ {
			base.SetNRGBA(x, y, color.NRGBA{uint8(7 * x), uint8(11 * y), uint8(x * y), 255})
		}
	}
	tensor := func(img image.Image, opts *PreprocessOptions) []float32 {
		t.Helper()
		out, err := PreprocessImageTo(make([]float32, 3*224*224), img, PreprocessCaffe, opts)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	same := func(name string, got, want []float32) {
		t.Helper()
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: element %d = %v, want %v", name, i, got[i], want[i])
				return
			}
		}
	}
	want := tensor(base, nil)

	rgba := image.NewRGBA(base.Rect)
	draw.Draw(rgba, rgba.Rect, base, base.Rect.Min, draw.Src)
	same("RGBA", tensor(rgba, nil), want)
	rgba64 := image.NewRGBA64(base.Rect)
	draw.Draw(rgba64, rgba64.Rect, base, base.Rect.Min, draw.Src)
	same("RGBA64 (generic path)", tensor(rgba64, nil), want)
	nrgba64 := image.NewNRGBA64(base.Rect)
	draw.Draw(nrgba64, nrgba64.Rect, base, base.Rect.Min, draw.Src)
	same("NRGBA64", tensor(nrgba64, nil), want)

	// Grey: every path must agree with the generic colour model.
	gray := image.NewGray(base.Rect)
	draw.Draw(gray, gray.Rect, base, base.Rect.Min, draw.Src)
	gray16 := image.NewGray16(base.Rect)
	draw.Draw(gray16, gray16.Rect, gray, gray.Rect.Min, draw.Src)
	same("Gray16 vs Gray", tensor(gray16, nil), tensor(gray, nil))
	grayAsRGBA := image.NewRGBA(base.Rect)
	draw.Draw(grayAsRGBA, grayAsRGBA.Rect, gray, gray.Rect.Min, draw.Src)
	same("Gray vs RGBA of grey", tensor(gray, nil), tensor(grayAsRGBA, nil))

	// YCbCr (as JPEG decodes) against its own RGB conversion.
	ycc := image.NewYCbCr(base.Rect, image.YCbCrSubsampleRatio420)
	for y := base.Rect.Min.Y; y < base.Rect.Max.Y; y++ {
		for x := base.Rect.Min.X; x < base.Rect.Max.X; x++ {
			c := base.NRGBAAt(x, y)
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			ycc.Y[ycc.YOffset(x, y)] = yy
			ycc.Cb[ycc.COffset(x, y)] = cb
			ycc.Cr[ycc.COffset(x, y)] = cr
		}
	}
	yccAsRGBA := image.NewRGBA(base.Rect)
	draw.Draw(yccAsRGBA, yccAsRGBA.Rect, ycc, ycc.Rect.Min, draw.Src)
	same("YCbCr", tensor(ycc, nil), tensor(yccAsRGBA, nil))

	cmyk := image.NewCMYK(base.Rect)
	draw.Draw(cmyk, cmyk.Rect, base, base.Rect.Min, draw.Src)
	cmykAsRGBA := image.NewRGBA(base.Rect)
	draw.Draw(cmykAsRGBA, cmykAsRGBA.Rect, cmyk, cmyk.Rect.Min, draw.Src)
	same("CMYK", tensor(cmyk, nil), tensor(cmykAsRGBA, nil))

	pal := image.NewPaletted(base.Rect, color.Palette{color.Black, color.White, color.NRGBA{200, 10, 30, 255}})
	draw.Draw(pal, pal.Rect, base, base.Rect.Min, draw.Src)
	palAsRGBA := image.NewRGBA(base.Rect)
	draw.Draw(palAsRGBA, palAsRGBA.Rect, pal, pal.Rect.Min, draw.Src)
	same("Paletted", tensor(pal, nil), tensor(palAsRGBA, nil))
}

// TestPreprocessAlpha checks the documented alpha handling: by default the
// stored colour is used whatever the alpha (as PIL's convert("RGB")); with
// a Matte, pixels are composited over it.
func TestPreprocessAlpha(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 4, 4))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = 200, 100, 50, 0 // fully transparent
	}
	out, err := PreprocessImageTo(make([]float32, 3*224*224), img, PreprocessCaffe, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := float32(50 - 103.939); out[0] != want {
		t.Errorf("alpha ignored: B channel %v, want %v (stored colour kept)", out[0], want)
	}
	out, err = PreprocessImageTo(make([]float32, 3*224*224), img, PreprocessCaffe, &PreprocessOptions{Matte: color.White})
	if err != nil {
		t.Fatal(err)
	}
	if want := float32(255 - 103.939); out[0] != want {
		t.Errorf("white matte: B channel %v, want %v", out[0], want)
	}
	// Half-transparent over white: (50*128 + 255*127 + 127)/255 = 152.
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 128
	}
	out, _ = PreprocessImageTo(make([]float32, 3*224*224), img, PreprocessCaffe, &PreprocessOptions{Matte: color.White})
	if want := float32(152 - 103.939); out[0] != want {
		t.Errorf("half alpha over white: B channel %v, want %v", out[0], want)
	}
	// Premultiplied RGBA with alpha is un-premultiplied first.
	rgba := image.NewRGBA(image.Rect(0, 0, 2, 2))
	draw.Draw(rgba, rgba.Rect, img, image.Point{}, draw.Src)
	outRGBA, _ := PreprocessImageTo(make([]float32, 3*224*224), rgba, PreprocessCaffe, nil)
	if d := math.Abs(float64(outRGBA[0]) - (50 - 103.939)); d > 1.01 {
		t.Errorf("RGBA with alpha: B channel %v, want about %v (one level of premultiplication rounding)", outRGBA[0], 50-103.939)
	}
}

func TestPreprocessErrors(t *testing.T) {
	dst := make([]float32, 3*224*224)
	if _, err := PreprocessImageTo(dst, nil, PreprocessCaffe, nil); !errors.Is(err, ErrEmptyImage) {
		t.Errorf("nil image: %v, want ErrEmptyImage", err)
	}
	if _, err := PreprocessImageTo(dst, image.NewRGBA(image.Rect(3, 3, 3, 10)), PreprocessCaffe, nil); !errors.Is(err, ErrEmptyImage) {
		t.Errorf("zero-width image: %v, want ErrEmptyImage", err)
	}
	img := image.NewGray(image.Rect(0, 0, 2, 2))
	if _, err := PreprocessImageTo(dst, img, "tf", nil); err == nil {
		t.Error("unknown mode: no error")
	}
	if _, err := PreprocessImageTo(dst, img, PreprocessCaffe, &PreprocessOptions{Filter: 99}); err == nil {
		t.Error("unknown filter: no error")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("wrong destination length: no panic")
			}
		}()
		PreprocessImageTo(dst[:10], img, PreprocessCaffe, nil)
	}()
}

// TestPreprocessFilters checks that the optional filters run and give
// values close to nearest sampling on a smooth image (they interpolate).
func TestPreprocessFilters(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 100, 60))
	for y := range 60 {
		for x := range 100 {
			img.SetGray(x, y, color.Gray{uint8(2 * x)})
		}
	}
	near, _ := PreprocessImageTo(make([]float32, 3*224*224), img, PreprocessCaffe, nil)
	for _, f := range []ResizeFilter{FilterBilinear, FilterLanczos3} {
		out, err := PreprocessImageTo(make([]float32, 3*224*224), img, PreprocessCaffe, &PreprocessOptions{Filter: f})
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		// A ramp of 2 levels per source pixel: interpolation moves a
		// value by at most about one source pixel (2 levels) plus rounding,
		// away from the borders where kernels clamp.
		for y := 20; y < 200; y += 17 {
			for x := 20; x < 200; x += 13 {
				i := y*224 + x
				if d := math.Abs(float64(out[i] - near[i])); d > 3 {
					t.Fatalf("%v at (%d,%d): %v, nearest %v", f, x, y, out[i], near[i])
				}
			}
		}
	}
}
