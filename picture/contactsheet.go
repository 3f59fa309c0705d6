package picture

import (
	"cmp"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"strings"

	"github.com/nfnt/resize"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// SheetOptions sets the layout of a contact sheet. A nil
// *SheetOptions means the zero value.
type SheetOptions struct {
	// ThumbWidth and ThumbHeight are the box each picture is fitted into
	// (aspect ratio kept, never enlarged); 0 means 160.
	ThumbWidth, ThumbHeight int
	// Columns is the number of cells per row, the query's included; 0
	// means all cells in one row, up to 8 per row.
	Columns int
	// Padding is the space in pixels around and between cells; 0 means
	// 12.
	Padding int
	// Background is the sheet's colour; nil means white.
	Background color.Color
	// Highlight is the colour of the frame around the query; nil means
	// blue.
	Highlight color.Color
	// Enlarge scales pictures smaller than the box up to fit it (aspect
	// ratio kept, Lanczos-3), useful for small catalogue photos; false
	// draws them at their own size.
	Enlarge bool
}

const (
	sheetMaxCaptionLines = 3
	sheetLineHeight      = 15 // basicfont.Face7x13 plus 2 pixels of leading
	sheetCaptionGap      = 7  // between a picture's box and its caption, clear of the query's frame
)

// ContactSheet draws the query picture and its matches in a grid, the query
// first in a coloured frame, each picture scaled down to fit its box with
// Thumbnail (or enlarged to fit, if asked) and centred, with an optional caption under each cell (for
// example the item ID and its distance) in a 7x13 pixel bitmap font.
// labels is either empty (no captions) or holds one caption for the query
// followed by one per match; a caption may hold up to three lines separated
// by "\n", each cut to the cell width with "...", and characters outside
// printable ASCII are shown as "?". A nil picture (one that could not be
// loaded) is drawn as a grey box. The result is safe to modify.
//
// ContactSheet panics if labels is not empty and len(labels) !=
// 1+len(matches), if an option is negative, or if the sheet would exceed
// 64 megapixels (the largest image style.DecodeImage accepts).
func ContactSheet(query image.Image, matches []image.Image, labels []string, opts *SheetOptions) *image.RGBA {
	var o SheetOptions
	if opts != nil {
		o = *opts
	}
	if len(labels) != 0 && len(labels) != 1+len(matches) {
		panic(fmt.Sprintf("picture: ContactSheet: %d labels for %d pictures", len(labels), 1+len(matches)))
	}
	if o.ThumbWidth < 0 || o.ThumbHeight < 0 || o.Columns < 0 || o.Padding < 0 {
		panic("picture: ContactSheet: negative option")
	}
	tw, th, pad := cmp.Or(o.ThumbWidth, 160), cmp.Or(o.ThumbHeight, 160), cmp.Or(o.Padding, 12)
	bg, hl := o.Background, o.Highlight
	if bg == nil {
		bg = color.White
	}
	if hl == nil {
		hl = color.RGBA{0, 114, 178, 255}
	}
	pics := append([]image.Image{query}, matches...)
	cols := o.Columns
	if cols == 0 {
		cols = min(len(pics), 8)
	}
	cols = min(cols, len(pics))
	rows := (len(pics) + cols - 1) / cols

	// Caption lines, prepared once to size the cells.
	lines := make([][]string, len(pics))
	nlines := 0
	for i := range labels {
		lines[i] = captionLines(labels[i], tw)
		nlines = max(nlines, len(lines[i]))
	}
	capH := 0
	if nlines > 0 {
		capH = sheetCaptionGap + nlines*sheetLineHeight
	}
	cellW, cellH := tw, th+capH
	w := int64(pad) + int64(cols)*int64(cellW+pad)
	h := int64(pad) + int64(rows)*int64(cellH+pad)
	if w*h > maxPixels {
		panic(fmt.Sprintf("picture: ContactSheet: sheet of %dx%d pixels exceeds 64 megapixels", w, h))
	}
	sheet := image.NewRGBA(image.Rect(0, 0, int(w), int(h)))
	draw.Draw(sheet, sheet.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)

	ink := image.NewUniform(color.Black)
	for i, pic := range pics {
		x0 := pad + (i%cols)*(cellW+pad)
		y0 := pad + (i/cols)*(cellH+pad)
		box := image.Rect(x0, y0, x0+tw, y0+th)
		if pic == nil || pic.Bounds().Empty() {
			draw.Draw(sheet, box, image.NewUniform(color.Gray{225}), image.Point{}, draw.Src)
			drawCaption(sheet, "(no image)", box.Min.X, box.Max.X, (box.Min.Y+box.Max.Y)/2, image.NewUniform(color.Gray{90}))
		} else {
			t := Thumbnail(pic, tw, th)
			if b := pic.Bounds(); o.Enlarge && b.Dx() < tw && b.Dy() < th {
				ew, eh := thumbnailSize(b.Dx(), b.Dy(), tw, th)
				t = resize.Resize(uint(ew), uint(eh), pic, resize.Lanczos3)
			}
			tb := t.Bounds()
			r := image.Rect(0, 0, tb.Dx(), tb.Dy()).Add(image.Pt(x0+(tw-tb.Dx())/2, y0+(th-tb.Dy())/2))
			draw.Draw(sheet, r, t, tb.Min, draw.Over)
		}
		if i == 0 { // frame the query, 3 pixels outside its box
			frame := image.NewUniform(hl)
			fr := box.Inset(-4)
			for _, e := range []image.Rectangle{
				image.Rect(fr.Min.X, fr.Min.Y, fr.Max.X, fr.Min.Y+3),
				image.Rect(fr.Min.X, fr.Max.Y-3, fr.Max.X, fr.Max.Y),
				image.Rect(fr.Min.X, fr.Min.Y, fr.Min.X+3, fr.Max.Y),
				image.Rect(fr.Max.X-3, fr.Min.Y, fr.Max.X, fr.Max.Y),
			} {
				draw.Draw(sheet, e.Intersect(sheet.Bounds()), frame, image.Point{}, draw.Src)
			}
		}
		for j, s := range lines[i] {
			base := y0 + th + sheetCaptionGap + (j+1)*sheetLineHeight - 4
			drawCaption(sheet, s, x0, x0+cellW, base, ink)
		}
	}
	return sheet
}

// WriteContactSheet draws a contact sheet as ContactSheet does and writes it
// to path as a PNG file, atomically. A contact sheet is a raster image:
// path must end in .png (in any letter case), else WriteContactSheet
// returns an error before drawing. It panics as ContactSheet does.
func WriteContactSheet(path string, query image.Image, matches []image.Image, labels []string, opts *SheetOptions) error {
	if err := checkRasterPath("WriteContactSheet", path); err != nil {
		return err
	}
	return writePNG(path, ContactSheet(query, matches, labels, opts), png.DefaultCompression)
}

// captionLines splits a caption into at most sheetMaxCaptionLines lines,
// replaces what the bitmap font cannot draw and cuts each line to width
// pixels.
func captionLines(s string, width int) []string {
	if s == "" {
		return nil
	}
	adv := basicfont.Face7x13.Advance
	maxRunes := max(1, width/adv)
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if len(out) == sheetMaxCaptionLines {
			break
		}
		r := []rune(strings.Map(func(c rune) rune {
			if c < 0x20 || c > 0x7e {
				return '?'
			}
			return c
		}, line))
		if len(r) > maxRunes {
			if maxRunes > 3 {
				r = append(r[:maxRunes-3], '.', '.', '.')
			} else {
				r = r[:maxRunes]
			}
		}
		out = append(out, string(r))
	}
	return out
}

// drawCaption draws s centred between x0 and x1 with its baseline at y.
func drawCaption(dst draw.Image, s string, x0, x1, y int, ink image.Image) {
	d := font.Drawer{Dst: dst, Src: ink, Face: basicfont.Face7x13}
	w := d.MeasureString(s).Ceil()
	d.Dot = fixed.P(x0+max(0, (x1-x0-w)/2), y)
	d.DrawString(s)
}
