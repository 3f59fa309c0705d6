package picture

import (
	"cmp"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"strings"
	"sync"

	"codeberg.org/go-fonts/liberation/liberationsansbold"
	"codeberg.org/go-fonts/liberation/liberationsansregular"
	"github.com/nfnt/resize"
	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
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
	// Distances, if not nil, holds the distance of each match to the
	// query (one per match), printed as a last caption line under the
	// match's own label.
	Distances []float64
	// Cutoff, if positive, marks the matches whose distance is at most
	// Cutoff (those style.SiameseHead.Verdict calls compatible) with a
	// green frame, a check mark and the words "goes together". It needs
	// Distances.
	Cutoff float64
}

const (
	sheetMaxCaptionLines = 3
	sheetFontSize        = 12 // caption font size in pixels
	sheetLineHeight      = 15 // sheetFontSize plus leading
	sheetCaptionGap      = 7  // between a picture's box and its caption, clear of the frames
)

// The colours of the marks of matches within the cutoff.
var (
	sheetMatchColor = color.RGBA{0, 140, 100, 255} // green, dark enough for text
	sheetTextColor  = color.RGBA{20, 20, 20, 255}
	sheetDimColor   = color.RGBA{90, 90, 90, 255}
)

// captionFont is Liberation Sans (regular and bold), parsed once; faces
// made from it are not safe for concurrent use, so each sheet makes its
// own.
var captionFont = sync.OnceValue(func() [2]*opentype.Font {
	var fs [2]*opentype.Font
	for i, ttf := range [][]byte{liberationsansregular.TTF, liberationsansbold.TTF} {
		f, err := opentype.Parse(ttf)
		if err != nil {
			panic("picture: parsing the embedded Liberation Sans font: " + err.Error())
		}
		fs[i] = f
	}
	return fs
})

// captionFaces returns new regular and bold caption faces.
func captionFaces() (regular, bold font.Face) {
	fs := captionFont()
	var faces [2]font.Face
	for i, f := range fs {
		face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: sheetFontSize, DPI: 72, Hinting: font.HintingFull})
		if err != nil {
			panic("picture: caption font face: " + err.Error())
		}
		faces[i] = face
	}
	return faces[0], faces[1]
}

// captionLine is one line of a cell's caption.
type captionLine struct {
	text string
	bold bool
	ink  color.Color
}

// ContactSheet draws the query picture and its matches in a grid, the query
// first in a blue frame, each picture scaled down to fit its box with
// Thumbnail (or enlarged to fit, if asked) and centred, with an optional
// caption under each cell in Liberation Sans, 12 pixels high. labels is
// either empty (no labels) or holds one label for the query followed by one
// per match, for example the item ID or product name; a label may hold up
// to three lines separated by "\n", each cut to the cell width with "…".
// Characters the font lacks are shown as "?". With opts.Distances each
// match's caption ends with its distance, and with opts.Cutoff the matches
// within the cutoff get a green frame, a check mark and "goes together".
// A nil picture (one that could not be loaded) is drawn as a grey box. The
// result is safe to modify.
//
// ContactSheet panics if labels is not empty and len(labels) !=
// 1+len(matches), if opts.Distances is not nil and its length differs from
// len(matches), if an option is negative, or if the sheet would exceed
// 64 megapixels (the largest image style.DecodeImage accepts).
func ContactSheet(query image.Image, matches []image.Image, labels []string, opts *SheetOptions) *image.RGBA {
	var o SheetOptions
	if opts != nil {
		o = *opts
	}
	if len(labels) != 0 && len(labels) != 1+len(matches) {
		panic(fmt.Sprintf("picture: ContactSheet: %d labels for %d pictures", len(labels), 1+len(matches)))
	}
	if o.Distances != nil && len(o.Distances) != len(matches) {
		panic(fmt.Sprintf("picture: ContactSheet: %d distances for %d matches", len(o.Distances), len(matches)))
	}
	if o.ThumbWidth < 0 || o.ThumbHeight < 0 || o.Columns < 0 || o.Padding < 0 || o.Cutoff < 0 {
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
	regular, bold := captionFaces()
	within := func(i int) bool { // match i-1 is within the cutoff
		return i > 0 && o.Distances != nil && o.Cutoff > 0 && o.Distances[i-1] <= o.Cutoff
	}
	lines := make([][]captionLine, len(pics))
	nlines := 0
	for i := range pics {
		if len(labels) > 0 {
			for _, s := range captionLines(regular, labels[i], tw) {
				lines[i] = append(lines[i], captionLine{s, false, sheetTextColor})
			}
		}
		if i > 0 && o.Distances != nil {
			lines[i] = append(lines[i], captionLine{fitCaption(regular, fmt.Sprintf("distance %.3f", o.Distances[i-1]), tw), false, sheetDimColor})
		}
		if within(i) {
			lines[i] = append(lines[i], captionLine{fitCaption(bold, "goes together", tw), true, sheetMatchColor})
		}
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

	for i, pic := range pics {
		x0 := pad + (i%cols)*(cellW+pad)
		y0 := pad + (i/cols)*(cellH+pad)
		box := image.Rect(x0, y0, x0+tw, y0+th)
		if pic == nil || pic.Bounds().Empty() {
			draw.Draw(sheet, box, image.NewUniform(color.Gray{225}), image.Point{}, draw.Src)
			drawCaption(sheet, regular, "(no image)", box.Min.X, box.Max.X, (box.Min.Y+box.Max.Y)/2, color.Gray{90})
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
		switch {
		case i == 0:
			drawFrame(sheet, box, hl)
		case within(i):
			drawFrame(sheet, box, sheetMatchColor)
			drawCheckBadge(sheet, image.Pt(box.Max.X-13, box.Min.Y+13), 11, sheetMatchColor)
		}
		for j, l := range lines[i] {
			base := y0 + th + sheetCaptionGap + (j+1)*sheetLineHeight - 4
			face := regular
			if l.bold {
				face = bold
			}
			drawCaption(sheet, face, l.text, x0, x0+cellW, base, l.ink)
		}
	}
	return sheet
}

// drawFrame draws a 3-pixel frame in colour c, 4 pixels outside box (so
// that it leaves the picture and the caption below clear).
func drawFrame(dst *image.RGBA, box image.Rectangle, c color.Color) {
	frame := image.NewUniform(c)
	fr := box.Inset(-4)
	for _, e := range []image.Rectangle{
		image.Rect(fr.Min.X, fr.Min.Y, fr.Max.X, fr.Min.Y+3),
		image.Rect(fr.Min.X, fr.Max.Y-3, fr.Max.X, fr.Max.Y),
		image.Rect(fr.Min.X, fr.Min.Y, fr.Min.X+3, fr.Max.Y),
		image.Rect(fr.Max.X-3, fr.Min.Y, fr.Max.X, fr.Max.Y),
	} {
		draw.Draw(dst, e.Intersect(dst.Bounds()), frame, image.Point{}, draw.Src)
	}
}

// drawCheckBadge draws a disc of radius r in colour c centred at ctr, with
// a white check mark, anti-aliased.
func drawCheckBadge(dst *image.RGBA, ctr image.Point, r float32, c color.Color) {
	size := int(2*r) + 2
	origin := image.Pt(ctr.X-size/2, ctr.Y-size/2)
	cx, cy := float32(size)/2, float32(size)/2
	fill := func(src color.Color, path func(z *vector.Rasterizer)) {
		z := vector.NewRasterizer(size, size)
		path(z)
		rect := image.Rectangle{origin, origin.Add(image.Pt(size, size))}
		z.Draw(dst, rect, image.NewUniform(src), image.Point{})
	}
	fill(c, func(z *vector.Rasterizer) { // the disc, as a 32-gon
		for k := 0; k <= 32; k++ {
			a := float64(k) * 2 * math.Pi / 32
			x, y := cx+r*float32(math.Cos(a)), cy+r*float32(math.Sin(a))
			if k == 0 {
				z.MoveTo(x, y)
			} else {
				z.LineTo(x, y)
			}
		}
		z.ClosePath()
	})
	// The check: two strokes, as quadrilaterals of width 0.22 r.
	pts := [3][2]float32{{-0.48, 0.02}, {-0.13, 0.38}, {0.5, -0.34}}
	for s := range 2 {
		ax, ay := cx+r*pts[s][0], cy+r*pts[s][1]
		bx, by := cx+r*pts[s+1][0], cy+r*pts[s+1][1]
		dx, dy := bx-ax, by-ay
		l := float32(math.Hypot(float64(dx), float64(dy)))
		nx, ny := -dy/l*0.11*r, dx/l*0.11*r
		// Extend each stroke by half its width so that they join.
		ex, ey := dx/l*0.11*r, dy/l*0.11*r
		fill(color.White, func(z *vector.Rasterizer) {
			z.MoveTo(ax-ex+nx, ay-ey+ny)
			z.LineTo(bx+ex+nx, by+ey+ny)
			z.LineTo(bx+ex-nx, by+ey-ny)
			z.LineTo(ax-ex-nx, ay-ey-ny)
			z.ClosePath()
		})
	}
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
// replaces what the font cannot draw and cuts each line to width pixels.
func captionLines(face font.Face, s string, width int) []string {
	if s == "" {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if len(out) == sheetMaxCaptionLines {
			break
		}
		out = append(out, fitCaption(face, line, width))
	}
	return out
}

// fitCaption replaces the characters face cannot draw with "?" and cuts s
// with "…" to at most width pixels.
func fitCaption(face font.Face, s string, width int) string {
	r := []rune(strings.Map(func(c rune) rune {
		if _, ok := face.GlyphAdvance(c); !ok || c < 0x20 {
			return '?'
		}
		return c
	}, s))
	limit := fixed.I(width)
	if font.MeasureString(face, string(r)) <= limit {
		return string(r)
	}
	for len(r) > 0 && font.MeasureString(face, string(r)+"…") > limit {
		r = r[:len(r)-1]
	}
	return strings.TrimRight(string(r), " ") + "…"
}

// drawCaption draws s in face centred between x0 and x1 with its baseline
// at y.
func drawCaption(dst draw.Image, face font.Face, s string, x0, x1, y int, ink color.Color) {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(ink), Face: face}
	w := d.MeasureString(s).Ceil()
	d.Dot = fixed.P(x0+max(0, (x1-x0-w)/2), y)
	d.DrawString(s)
}
