package picture

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/stylespace/style/internal/atomicfile"
)

// chartFormat is the file format of a chart, chosen by the file name's
// extension.
type chartFormat int

const (
	formatPNG chartFormat = iota
	formatSVG
	formatPDF
)

// chartFormatOf returns the format of a chart written to path: .png, .svg
// or .pdf, in any letter case. Other extensions are an error naming fn.
func chartFormatOf(fn, path string) (chartFormat, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".png":
		return formatPNG, nil
	case ".svg":
		return formatSVG, nil
	case ".pdf":
		return formatPDF, nil
	default:
		return 0, fmt.Errorf("picture: %s: %s: extension %q is not .png, .svg or .pdf", fn, path, ext)
	}
}

// checkRasterPath returns an error naming fn unless path ends in .png (in
// any letter case): maps and contact sheets are raster images.
func checkRasterPath(fn, path string) error {
	if ext := strings.ToLower(filepath.Ext(path)); ext != ".png" {
		return fmt.Errorf("picture: %s: %s: extension %q is not .png (this picture is a raster image, written as PNG only)", fn, path, ext)
	}
	return nil
}

// render draws with drawFn on a white w x h pixel canvas at 96 dpi.
func (f plotFrame) render(drawFn func(dc draw.Canvas)) image.Image {
	// UseImage fixes the size in pixels exactly (the canvas copies the
	// image and fills it with white).
	c := vgimg.NewWith(vgimg.UseImage(image.NewRGBA(image.Rect(0, 0, f.w, f.h))), vgimg.UseDPI(96))
	f.drawOn(c, drawFn)
	return c.Image()
}

// drawOn draws with drawFn on c inside the chart's outer margin.
func (f plotFrame) drawOn(c vg.CanvasSizer, drawFn func(dc draw.Canvas)) {
	m := f.pt(9) // outer margin
	drawFn(draw.Crop(draw.New(c), m, -m, m/2, -m))
}

// writeChart draws a chart with drawFn and writes it to path atomically, as
// PNG, SVG or PDF as f.format says. The vector formats have the size of
// the PNG at 96 dpi (800 pixels are 600 points), a white background, and
// name their fonts (Liberation Serif, metric-compatible with Times New
// Roman) rather than embedding them in SVG; PDF embeds them.
func writeChart(path string, f plotFrame, drawFn func(dc draw.Canvas)) error {
	if f.format == formatPNG {
		return writePNG(path, f.render(drawFn), png.BestSpeed)
	}
	w, h := vg.Length(f.w)*vg.Inch/96, vg.Length(f.h)*vg.Inch/96
	var c vg.CanvasWriterTo
	if f.format == formatSVG {
		c = vgsvg.New(w, h)
	} else {
		c = vgpdf.New(w, h)
	}
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	f.drawOn(c, drawFn)
	err := atomicfile.Write(path, func(wr io.Writer) error {
		_, err := c.WriteTo(wr)
		return err
	})
	if err != nil {
		return fmt.Errorf("picture: %w", err)
	}
	return nil
}
