package style

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeImageLimits(t *testing.T) {
	// A valid PNG header claiming 60,000 x 60,000 pixels must be rejected
	// before decoding.
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, image.NewGray(image.Rect(0, 0, 2, 2))))
	b := buf.Bytes()
	// IHDR width and height sit at bytes 16..24, followed by the chunk
	// CRC over bytes 12..29.
	binary.BigEndian.PutUint32(b[16:], 60000)
	binary.BigEndian.PutUint32(b[20:], 60000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	_, err := DecodeImage(bytes.NewReader(b), "huge.png")
	require.ErrorIs(t, err, ErrImageTooLarge, "huge image")
	assert.ErrorContains(t, err, "exceeds the limit of 67108864 pixels")

	_, err = DecodeImage(bytes.NewReader([]byte("not an image at all")), "junk.jpg")
	require.ErrorIs(t, err, ErrFormat, "junk")

	// A truncated real PNG.
	buf.Reset()
	img := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	require.NoError(t, png.Encode(&buf, img))
	_, err = DecodeImage(bytes.NewReader(buf.Bytes()[:buf.Len()/2]), "trunc.png")
	require.ErrorIs(t, err, ErrFormat, "truncated")
	got, err := DecodeImage(bytes.NewReader(buf.Bytes()), "ok.png")
	require.NoError(t, err)
	assert.Equal(t, 32, got.Bounds().Dx(), "decoded image")
	assert.Equal(t, color.Color(img.At(3, 4)), got.At(3, 4), "decoded image")

	// More than 64 MiB of encoded data is refused without decoding.
	_, err = DecodeImage(io.MultiReader(bytes.NewReader(buf.Bytes()), bytes.NewReader(make([]byte, maxImageBytes))), "long.png")
	require.ErrorIs(t, err, ErrImageTooLarge, "long file")
	assert.ErrorContains(t, err, "more than 67108864 bytes")
}

func TestLoadImageMissing(t *testing.T) {
	_, err := LoadImage(context.Background(), filepath.Join(t.TempDir(), "nope.jpg"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// The progressive JPEGs in testdata were made from a synthetic pattern
// with libjpeg-turbo: cjpeg (-sample 1x1 for 4:4:4, -grayscale for grey)
// piped to jpegtran -progressive. Go cannot write progressive JPEGs.
var progressiveJPEGs = []string{"testdata/progressive_420.jpg", "testdata/progressive_444.jpg", "testdata/progressive_grey.jpg"}

// TestDecodeImageTruncatedProgressive: a progressive JPEG cut anywhere is
// a *FormatError, also with an end-of-image marker appended, which Go's
// decoder alone accepts at scan boundaries, returning a partial image.
func TestDecodeImageTruncatedProgressive(t *testing.T) {
	for _, name := range progressiveJPEGs {
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		img, err := DecodeImage(bytes.NewReader(data), name)
		require.NoError(t, err)
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
		require.NoError(t, err)
		assert.Equal(t, image.Pt(cfg.Width, cfg.Height), img.Bounds().Size())

		// Cut at the headers, around every scan boundary (where Go's
		// decoder returns a partial image) and at 30 more places.
		cuts := []int{2, 20, 100, 200}
		partial := 0
		for i := 2; i+1 < len(data); i++ {
			if data[i] == 0xff && data[i+1] == 0xda && i > bytes.Index(data, []byte{0xff, 0xda}) {
				partial++
				_, err := jpeg.Decode(bytes.NewReader(append(data[:i:i], 0xff, 0xd9)))
				require.NoError(t, err, "%s cut at %d: Go's decoder no longer accepts a partial image; the test needs updating", name, i)
				cuts = append(cuts, i-1, i, i+1, i+4)
			}
		}
		for i := 1; i <= 30; i++ {
			cuts = append(cuts, i*(len(data)-3)/30)
		}
		for _, cut := range cuts {
			for _, tail := range [][]byte{nil, {0xff, 0xd9}} {
				d := append(data[:cut:cut], tail...)
				_, err := DecodeImage(bytes.NewReader(d), name)
				require.ErrorIs(t, err, ErrFormat, "%s cut at %d of %d, tail %x", name, cut, len(data), tail)
			}
		}
		require.Greater(t, partial, 3, name)
		cut := bytes.LastIndex(data, []byte{0xff, 0xda})
		_, err = DecodeImage(bytes.NewReader(append(data[:cut:cut], 0xff, 0xd9)), name)
		assert.ErrorContains(t, err, "truncated progressive JPEG", name)
	}
}

// encoded returns img encoded by enc.
func encoded(t *testing.T, img image.Image, enc func(io.Writer, image.Image) error) []byte {
	var b bytes.Buffer
	require.NoError(t, enc(&b, img))
	return b.Bytes()
}

func encodePNG(w io.Writer, m image.Image) error  { return png.Encode(w, m) }
func encodeJPEG(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, nil) }
func encodeGIF(w io.Writer, m image.Image) error  { return gif.Encode(w, m, nil) }

// pattern fills the pixels of an image with a deterministic pattern.
func pattern(pix []uint8) {
	for i := range pix {
		pix[i] = uint8(i * 7 / 3)
	}
}

// decodeCost returns imageDecodeCost for an encoded image.
func decodeCost(data []byte) (int64, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	cost, _, _ := imageDecodeCost(data, cfg, format)
	return cost, nil
}

// TestDecodeImageCost checks the memory model against Go's decoders: for
// each kind of image, what decoding allocates lies between the model's
// estimate less its 1 MiB allowance for decoder state and the estimate.
func TestDecodeImageCost(t *testing.T) {
	rgba := image.NewNRGBA(image.Rect(0, 0, 1024, 768))
	pattern(rgba.Pix)
	rgba64 := image.NewNRGBA64(image.Rect(0, 0, 1024, 768))
	pattern(rgba64.Pix)
	gray := image.NewGray(image.Rect(0, 0, 1024, 768))
	pattern(gray.Pix)
	pal := image.NewPaletted(image.Rect(0, 0, 1024, 768), palette.Plan9)
	pattern(pal.Pix)
	files := map[string][]byte{
		"baseline_420.jpg":  encoded(t, rgba, encodeJPEG),
		"baseline_grey.jpg": encoded(t, gray, encodeJPEG),
		"rgba8.png":         encoded(t, rgba, encodePNG),
		"rgba16.png":        encoded(t, rgba64, encodePNG),
		"grey8.png":         encoded(t, gray, encodePNG),
		"paletted.gif":      encoded(t, pal, encodeGIF),
	}
	for _, name := range progressiveJPEGs {
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		files[name] = data
	}
	for name, data := range files {
		est, err := decodeCost(data)
		require.NoError(t, err, name)
		var img image.Image
		n := allocated(func() { img, err = decodeImageBytes(data, name) })
		require.NoError(t, err, name)
		require.NotNil(t, img)
		assert.LessOrEqual(t, n, uint64(est), "%s: allocated %d, estimated %d", name, n, est)
		assert.GreaterOrEqual(t, n, uint64(est-1<<20), "%s: allocated %d, estimated %d", name, n, est)
	}
}

// TestDecodeImageDecodeBudget: headers of images within the 64 megapixels
// whose decoding would take more than the 264 MiB are refused
// before decoding, with ErrImageTooLarge and next to no allocation; those
// within it are estimated within the limit.
func TestDecodeImageDecodeBudget(t *testing.T) {
	prog, err := os.ReadFile("testdata/progressive_420.jpg")
	require.NoError(t, err)
	small := image.NewNRGBA(image.Rect(0, 0, 16, 16))
	pattern(small.Pix)
	small64 := image.NewNRGBA64(image.Rect(0, 0, 16, 16))
	pattern(small64.Pix)
	smallGray := image.NewGray(image.Rect(0, 0, 16, 16))
	pal := image.NewPaletted(image.Rect(0, 0, 16, 16), palette.Plan9)
	type tc struct {
		name     string
		data     []byte
		tooLarge bool
	}
	var cases []tc
	jpegSize := func(data []byte, w, h int) []byte {
		d := slices.Clone(data)
		for i := 2; i+8 < len(d); i++ {
			if d[i] == 0xff && (d[i+1] == 0xc0 || d[i+1] == 0xc2) {
				binary.BigEndian.PutUint16(d[i+5:], uint16(h))
				binary.BigEndian.PutUint16(d[i+7:], uint16(w))
				return d
			}
		}
		t.Fatal("no SOF marker")
		return nil
	}
	pngSize := func(data []byte, w, h int, interlace byte) []byte {
		d := slices.Clone(data)
		binary.BigEndian.PutUint32(d[16:], uint32(w))
		binary.BigEndian.PutUint32(d[20:], uint32(h))
		d[28] = interlace
		binary.BigEndian.PutUint32(d[29:], crc32.ChecksumIEEE(d[12:29]))
		return d
	}
	cases = append(cases,
		tc{"progressive 4:2:0 JPEG, 64 MP", jpegSize(prog, 8192, 8192), true},
		tc{"progressive 4:2:0 JPEG, 36 MP", jpegSize(prog, 6000, 6000), false},
		tc{"baseline 4:2:0 JPEG, 64 MP", jpegSize(encoded(t, small, encodeJPEG), 8192, 8192), false},
		tc{"8-bit RGBA PNG, 64 MP", pngSize(encoded(t, small, encodePNG), 8192, 8192, 0), false},
		tc{"16-bit RGBA PNG, 64 MP", pngSize(encoded(t, small64, encodePNG), 8192, 8192, 0), true},
		tc{"16-bit RGBA PNG, 32 MP", pngSize(encoded(t, small64, encodePNG), 8192, 4096, 0), false},
		tc{"interlaced 8-bit RGBA PNG, 64 MP", pngSize(encoded(t, small, encodePNG), 8192, 8192, 1), true},
		tc{"interlaced 8-bit grey PNG, 64 MP", pngSize(encoded(t, smallGray, encodePNG), 8192, 8192, 1), false},
		tc{"16-bit RGBA PNG, one row of 32 M pixels", pngSize(encoded(t, small64, encodePNG), 32<<20, 1, 0), true},
	)
	g := encoded(t, pal, encodeGIF)
	binary.LittleEndian.PutUint16(g[6:], 8192) // logical screen
	binary.LittleEndian.PutUint16(g[8:], 8192)
	cases = append(cases, tc{"GIF, 64 MP", g, false})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.tooLarge {
				var err error
				n := allocated(func() { _, err = DecodeImage(bytes.NewReader(c.data), "x") })
				require.ErrorIs(t, err, ErrImageTooLarge)
				assert.Contains(t, err.Error(), "to decode")
				assert.Less(t, n, uint64(1<<20))
			} else {
				// Decoding would allocate up to the limit: check the
				// estimate only.
				cost, err := decodeCost(c.data)
				require.NoError(t, err)
				assert.LessOrEqual(t, cost, int64(maxImageDecodeBytes))
			}
		})
	}
}

// FuzzDecodeImage checks that no input makes DecodeImage panic, that every
// failure is a *FormatError or ErrImageTooLarge, and that decoding
// allocates no more than the memory model's estimate plus the input read
// (three times its size, with io.ReadAll's growth) and 256 KiB. Images
// estimated above 2 MiB are only estimated: decoding them would slow the
// fuzzer to a crawl (TestDecodeImageDecodeBudget covers them).
func FuzzDecodeImage(f *testing.F) {
	for _, name := range progressiveJPEGs {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	small := image.NewNRGBA(image.Rect(0, 0, 24, 16))
	pattern(small.Pix)
	for _, enc := range []func(io.Writer, image.Image) error{encodeJPEG, encodePNG, encodeGIF} {
		var b bytes.Buffer
		if err := enc(&b, small); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cost, err := decodeCost(data)
		if err == nil && cost > 2<<20 {
			return
		}
		var img image.Image
		n := allocated(func() { img, err = DecodeImage(bytes.NewReader(data), "fuzz") })
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) && !errors.Is(err, ErrImageTooLarge) {
				t.Fatalf("error %v is neither a *FormatError nor ErrImageTooLarge", err)
			}
		} else if img.Bounds().Empty() {
			t.Fatal("empty image without an error")
		}
		if limit := uint64(cost) + 3*uint64(len(data)) + 256<<10; n > limit {
			t.Fatalf("allocated %d bytes, more than the %d estimated", n, limit)
		}
	})
}
