package picture

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/image/font"

	"github.com/stylespace/style"
)

func solid(w, h int, c color.Color) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		r, g, b, a := c.RGBA()
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = uint8(r>>8), uint8(g>>8), uint8(b>>8), uint8(a>>8)
	}
	return img
}

func TestContactSheetLayout(t *testing.T) {
	red := color.RGBA{220, 0, 0, 255}
	green := color.RGBA{0, 200, 0, 255}
	query := solid(300, 600, red) // tall: fitted to 50x100 in a 100x100 box
	matches := []image.Image{solid(100, 50, green), nil, solid(40, 40, green)}
	labels := []string{"query", "a\nd=0.12", "missing\nd=0.50", "éé long caption that is cut"}
	sheet := ContactSheet(query, matches, labels, &SheetOptions{ThumbWidth: 100, ThumbHeight: 100, Columns: 2, Padding: 10})
	// 2 columns x 2 rows; cells 100 wide, 100 + 7 + 2 lines * 15 high.
	require.Equal(t, image.Pt(10+2*110, 10+2*(137+10)), sheet.Bounds().Size(), "sheet size")
	at := func(x, y int) color.RGBA { return sheet.RGBAAt(x, y) }
	// The query is centred in its box: red in the middle, white at the
	// sides of the box (the 50-pixel-wide thumbnail leaves 25 on each side).
	assert.Equal(t, red, at(60, 60), "query centre")
	assert.Equal(t, color.RGBA{255, 255, 255, 255}, at(20, 60), "query box side: the background")
	// The query's frame, 4 pixels outside its box, in the highlight colour.
	assert.Equal(t, color.RGBA{0, 114, 178, 255}, at(7, 60), "frame")
	// The first match (100x50, fits) centred in the second cell; the
	// missing picture drawn as a grey box in the first cell of row 2.
	assert.Equal(t, green, at(120+50, 10+50), "match centre")
	assert.Equal(t, color.RGBA{225, 225, 225, 255}, at(10+50, 10+147+20), "missing picture")
	// Captions leave ink below each box.
	for _, cell := range []image.Point{{10, 10}, {120, 10}, {10, 157}, {120, 157}} {
		ink := 0
		for y := cell.Y + 100; y < cell.Y+137; y++ {
			for x := cell.X; x < cell.X+100; x++ {
				if c := at(x, y); c.R < 100 && c.G < 100 && c.B < 100 {
					ink++
				}
			}
		}
		assert.GreaterOrEqual(t, ink, 15, "dark pixels of the caption of the cell at %v", cell)
	}
	// A caption wider than the cell is cut with "…" to fit its 100
	// pixels; the font draws accented letters, and shows what it lacks
	// (Japanese) as "?".
	face, _ := captionFaces()
	cut := captionLines(face, "éé long caption that is cut", 100)
	require.Len(t, cut, 1)
	assert.True(t, strings.HasPrefix(cut[0], "éé long cap"), "cut caption %q", cut[0])
	assert.True(t, strings.HasSuffix(cut[0], "…"), "cut caption %q", cut[0])
	assert.LessOrEqual(t, font.MeasureString(face, cut[0]).Ceil(), 100, "width of the cut caption %q", cut[0])
	assert.Empty(t, captionLines(face, "", 100), "no caption")
	assert.Equal(t, []string{"?? shirt", "b", "c"}, captionLines(face, "日本 shirt\nb\nc\nd", 100), "three lines at most")
	// No labels: no caption space.
	assert.Equal(t, image.Pt(12+4*112, 12+100+12), ContactSheet(query, matches, nil, &SheetOptions{ThumbWidth: 100, ThumbHeight: 100}).Bounds().Size(),
		"captionless one-row sheet")
	// Enlarge: the 40x40 match fills its 100x100 box; without it, it stays
	// 40x40 in the middle (white at 20 pixels from the box's corner).
	small := []image.Image{solid(40, 40, green)}
	assert.Equal(t, green, ContactSheet(query, small, nil, &SheetOptions{ThumbWidth: 100, ThumbHeight: 100, Enlarge: true}).RGBAAt(12+112+20, 12+20),
		"enlarged match at its box corner")
	assert.Equal(t, color.RGBA{255, 255, 255, 255}, ContactSheet(query, small, nil, &SheetOptions{ThumbWidth: 100, ThumbHeight: 100}).RGBAAt(12+112+20, 12+20),
		"small match, not enlarged, at its box corner")
	mustPanic(t, "labels", func() { ContactSheet(query, matches, labels[:2], nil) })
	mustPanic(t, "negative", func() { ContactSheet(query, matches, nil, &SheetOptions{Padding: -1}) })
	mustPanic(t, "64 megapixels", func() {
		ContactSheet(query, matches, nil, &SheetOptions{ThumbWidth: 1 << 15, ThumbHeight: 1 << 15})
	})
}

// TestContactSheetCutoff checks the marks of the matches within the
// cutoff: a green frame, a check-mark badge on the picture's corner and a
// longer caption ("distance ...", "goes together"), and none on the match
// beyond it.
func TestContactSheetCutoff(t *testing.T) {
	grey := color.RGBA{200, 200, 200, 255}
	pic := solid(100, 100, grey)
	labels := []string{"query", "item 1", "item 2", "item 3"}
	opts := &SheetOptions{ThumbWidth: 100, ThumbHeight: 100, Padding: 10, Distances: []float64{0.2, 0.6, 0.9}, Cutoff: 0.6}
	sheet := ContactSheet(pic, []image.Image{pic, pic, pic}, labels, opts)
	// One row of 4 cells; the captions of the matches within the cutoff
	// have three lines (label, distance, "goes together").
	require.Equal(t, image.Pt(10+4*110, 10+100+7+3*15+10), sheet.Bounds().Size(), "sheet size")
	for i, within := range []bool{true, true, false} {
		box := image.Rect(10+110*(i+1), 10, 10+110*(i+1)+100, 110)
		frame := sheet.RGBAAt(box.Min.X-3, box.Min.Y+50)
		badge := 0 // green pixels in the badge's corner of the picture
		for y := box.Min.Y; y < box.Min.Y+26; y++ {
			for x := box.Max.X - 26; x < box.Max.X; x++ {
				if sheet.RGBAAt(x, y) == sheetMatchColor {
					badge++
				}
			}
		}
		green := 0 // green pixels of the caption ("goes together")
		for y := box.Max.Y; y < sheet.Bounds().Max.Y; y++ {
			for x := box.Min.X; x < box.Max.X; x++ {
				if c := sheet.RGBAAt(x, y); int(c.G) > int(c.R)+60 && int(c.G) > int(c.B)+20 {
					green++
				}
			}
		}
		if within {
			assert.Equal(t, sheetMatchColor, frame, "match %d: frame", i)
			assert.Greater(t, badge, 150, "match %d: check-mark badge", i)
			assert.Greater(t, green, 40, "match %d: \"goes together\"", i)
		} else {
			assert.Equal(t, color.RGBA{255, 255, 255, 255}, frame, "match %d: no frame", i)
			assert.Zero(t, badge, "match %d: no badge", i)
			assert.Zero(t, green, "match %d: no green caption", i)
		}
		// The check inside the badge is white.
		if within {
			white := 0
			for y := box.Min.Y + 4; y < box.Min.Y+22; y++ {
				for x := box.Max.X - 22; x < box.Max.X-4; x++ {
					if c := sheet.RGBAAt(x, y); c.R > 240 && c.G > 240 && c.B > 240 {
						white++
					}
				}
			}
			assert.Greater(t, white, 15, "match %d: the check mark", i)
		}
	}
	// Distances without a cutoff: one more caption line, no marks.
	plain := ContactSheet(pic, []image.Image{pic}, labels[:2], &SheetOptions{ThumbWidth: 100, ThumbHeight: 100, Padding: 10, Distances: []float64{0.2}})
	assert.Equal(t, image.Pt(10+2*110, 10+100+7+2*15+10), plain.Bounds().Size(), "sheet with distances, no cutoff")
	assert.Equal(t, color.RGBA{255, 255, 255, 255}, plain.RGBAAt(120-3, 60), "no frame without a cutoff")
	mustPanic(t, "distances", func() { ContactSheet(pic, []image.Image{pic}, nil, &SheetOptions{Distances: []float64{1, 2}}) })
	if *plotDir != "" {
		require.NoError(t, WriteContactSheet(filepath.Join(*plotDir, "sheet_cutoff.png"), pic, []image.Image{pic, pic, pic}, labels, opts))
	}
}

func TestWriteContactSheet(t *testing.T) {
	// Real product photos if the shared reference data is present.
	dir := filepath.Join("..", "..", "shared", "images")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference photos not available (%v); the layout test covers the drawing", err)
	}
	names := []string{"matching_1", "matching_2", "pos_example_1_img2", "not_matching_2", "neg_example_1_img2"}
	var pics []image.Image
	var labels []string
	for i, n := range names {
		img, err := style.LoadImage(context.Background(), filepath.Join(dir, n+".jpg"))
		require.NoError(t, err)
		pics = append(pics, img)
		if i == 0 {
			labels = append(labels, "query\n"+n)
		} else {
			labels = append(labels, fmt.Sprintf("%s\nd = %.3f", n, 0.1*float64(i)))
		}
	}
	out := filepath.Join(t.TempDir(), "sheet.png")
	if p := *plotDir; p != "" {
		out = filepath.Join(p, "sheet.png")
	}
	require.NoError(t, WriteContactSheet(out, pics[0], pics[1:], labels, nil))
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	assert.Equal(t, image.Pt(12+5*172, 12+160+7+2*15+12), img.Bounds().Size(), "sheet size")
	// Every thumbnail keeps its photo's aspect ratio (within a pixel of
	// rounding).
	for i, p := range pics {
		b, tb := p.Bounds(), Thumbnail(p, 160, 160).Bounds()
		if d := float64(tb.Dx())/float64(tb.Dy()) - float64(b.Dx())/float64(b.Dy()); d*float64(tb.Dy()) > 1 || d*float64(tb.Dy()) < -1 {
			t.Errorf("photo %d: thumbnail %v of %v distorts", i, tb, b)
		}
	}
	assert.Error(t, WriteContactSheet(filepath.Join(t.TempDir(), "no", "sheet.png"), pics[0], nil, nil, nil), "saving into a missing directory")
}
