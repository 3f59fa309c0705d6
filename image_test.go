package style

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestDecodeImageLimits(t *testing.T) {
	// A valid PNG header claiming 60,000 x 60,000 pixels must be rejected
	// before decoding.
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// IHDR width and height sit at bytes 16..24, followed by the chunk
	// CRC over bytes 12..29.
	binary.BigEndian.PutUint32(b[16:], 60000)
	binary.BigEndian.PutUint32(b[20:], 60000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	_, err := DecodeImage(bytes.NewReader(b), "huge.png")
	if !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("huge image: got %v, want ErrImageTooLarge", err)
	}

	_, err = DecodeImage(bytes.NewReader([]byte("not an image at all")), "junk.jpg")
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("junk: got %v, want ErrFormat", err)
	}

	// A truncated real PNG.
	buf.Reset()
	img := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	_, err = DecodeImage(bytes.NewReader(buf.Bytes()[:buf.Len()/2]), "trunc.png")
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("truncated: got %v, want ErrFormat", err)
	}
	got, err := DecodeImage(bytes.NewReader(buf.Bytes()), "ok.png")
	if err != nil {
		t.Fatal(err)
	}
	if got.Bounds().Dx() != 32 || got.At(3, 4) != color.Color(img.At(3, 4)) {
		t.Fatalf("decoded image differs")
	}
}

func TestLoadImageMissing(t *testing.T) {
	_, err := LoadImage(filepath.Join(t.TempDir(), "nope.jpg"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
}
