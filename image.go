package style

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // register GIF
	_ "image/jpeg" // register JPEG
	_ "image/png"  // register PNG
	"io"
	"os"
)

// MaxImagePixels is the largest image, in pixels (width x height), that
// DecodeImage and LoadImage accept: 64 megapixels, about 256 MB once
// decoded as RGBA. Larger images are rejected from their header, before any
// pixel is decoded, with an error matching ErrImageTooLarge.
const MaxImagePixels = 64 << 20

// MaxImageBytes is the largest encoded image file DecodeImage reads: 64 MiB.
const MaxImageBytes = 64 << 20

// ErrImageTooLarge is matched by errors.Is when an image exceeds
// MaxImagePixels or MaxImageBytes.
var ErrImageTooLarge = errors.New("style: image too large")

// LoadImage reads and decodes a JPEG, PNG or GIF file. See DecodeImage.
func LoadImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("style: %w", err)
	}
	defer f.Close()
	return DecodeImage(f, path)
}

// DecodeImage decodes a JPEG, PNG or GIF image from r. name is used in error
// messages only (a file name or URL). The image dimensions are checked
// against MaxImagePixels before decoding, and at most MaxImageBytes are
// read, so a hostile header cannot make it allocate gigabytes. Corrupt or
// truncated data gives a *FormatError.
func DecodeImage(r io.Reader, name string) (image.Image, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("style: read %s: %w", name, err)
	}
	if len(data) > MaxImageBytes {
		return nil, fmt.Errorf("style: %s: more than %d bytes: %w", name, MaxImageBytes, ErrImageTooLarge)
	}
	return decodeImageBytes(data, name)
}

func decodeImageBytes(data []byte, name string) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, &FormatError{Path: name, Offset: -1, Msg: "cannot decode image header", Err: err}
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, &FormatError{Path: name, Offset: -1, Msg: fmt.Sprintf("%s image has empty size %dx%d", format, cfg.Width, cfg.Height)}
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return nil, fmt.Errorf("style: %s: %s image of %dx%d pixels exceeds the limit of %d pixels: %w",
			name, format, cfg.Width, cfg.Height, MaxImagePixels, ErrImageTooLarge)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, &FormatError{Path: name, Offset: -1, Msg: "cannot decode " + format + " image", Err: err}
	}
	return img, nil
}
