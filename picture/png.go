package picture

import (
	"fmt"
	"image"
	"image/png"
	"io"

	"github.com/stylespace/style/internal/atomicfile"
)

// writePNG encodes img as PNG at the given compression level and writes it
// to path atomically.
func writePNG(path string, img image.Image, level png.CompressionLevel) error {
	enc := png.Encoder{CompressionLevel: level}
	err := atomicfile.Write(path, func(w io.Writer) error { return enc.Encode(w, img) })
	if err != nil {
		return fmt.Errorf("picture: %w", err)
	}
	return nil
}
