package style

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
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
	sheet := ContactSheet(query, matches, labels, &ContactSheetOptions{ThumbWidth: 100, ThumbHeight: 100, Columns: 2, Padding: 10})
	// 2 columns x 2 rows; cells 100 wide, 100 + 7 + 2 lines * 15 high.
	if w, h := sheet.Bounds().Dx(), sheet.Bounds().Dy(); w != 10+2*110 || h != 10+2*(137+10) {
		t.Fatalf("sheet %dx%d, want %dx%d", w, h, 230, 304)
	}
	at := func(x, y int) color.RGBA { return sheet.RGBAAt(x, y) }
	// The query is centred in its box: red in the middle, white at the
	// sides of the box (the 50-pixel-wide thumbnail leaves 25 on each side).
	if c := at(60, 60); c != red {
		t.Errorf("query centre %v, want red", c)
	}
	if c := at(20, 60); c != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("query box side %v, want white background", c)
	}
	// The query's frame, 4 pixels outside its box, in the highlight colour.
	if c := at(7, 60); c != (color.RGBA{0, 114, 178, 255}) {
		t.Errorf("frame %v, want the highlight colour", c)
	}
	// The first match (100x50, fits) centred in the second cell; the
	// missing picture drawn as a grey box in the first cell of row 2.
	if c := at(120+50, 10+50); c != green {
		t.Errorf("match centre %v, want green", c)
	}
	if c := at(10+50, 10+147+20); c != (color.RGBA{225, 225, 225, 255}) {
		t.Errorf("missing picture %v, want grey", c)
	}
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
		if ink < 15 {
			t.Errorf("caption of cell at %v has %d dark pixels", cell, ink)
		}
	}
	// 100 px / 7 px per character = 14 characters, the last three "...".
	if got := captionLines("éé long caption that is cut", 100); len(got) != 1 || got[0] != "?? long cap..." {
		t.Errorf("captionLines = %q", got)
	}
	// No labels: no caption space.
	if b := ContactSheet(query, matches, nil, &ContactSheetOptions{ThumbWidth: 100, ThumbHeight: 100}).Bounds(); b.Dy() != 12+100+12 || b.Dx() != 12+4*112 {
		t.Errorf("captionless one-row sheet %v", b)
	}
	// Enlarge: the 40x40 match fills its 100x100 box; without it, it stays
	// 40x40 in the middle (white at 20 pixels from the box's corner).
	small := []image.Image{solid(40, 40, green)}
	if c := ContactSheet(query, small, nil, &ContactSheetOptions{ThumbWidth: 100, ThumbHeight: 100, Enlarge: true}).RGBAAt(12+112+20, 12+20); c != green {
		t.Errorf("enlarged match at its box corner: %v, want green", c)
	}
	if c := ContactSheet(query, small, nil, &ContactSheetOptions{ThumbWidth: 100, ThumbHeight: 100}).RGBAAt(12+112+20, 12+20); c != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("small match not enlarged: %v at its box corner, want white", c)
	}
	mustPanic(t, "labels", func() { ContactSheet(query, matches, labels[:2], nil) })
	mustPanic(t, "negative", func() { ContactSheet(query, matches, nil, &ContactSheetOptions{Padding: -1}) })
	mustPanic(t, "MaxImagePixels", func() {
		ContactSheet(query, matches, nil, &ContactSheetOptions{ThumbWidth: 1 << 15, ThumbHeight: 1 << 15})
	})
}

func TestSaveContactSheet(t *testing.T) {
	// Real product photos if the shared reference data is present.
	dir := filepath.Join("..", "shared", "images")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference photos not available (%v); the layout test covers the drawing", err)
	}
	names := []string{"matching_1", "matching_2", "pos_example_1_img2", "not_matching_2", "neg_example_1_img2"}
	var pics []image.Image
	var labels []string
	for i, n := range names {
		img, err := LoadImage(filepath.Join(dir, n+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
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
	if err := SaveContactSheet(out, pics[0], pics[1:], labels, nil); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 12+5*172 || b.Dy() != 12+160+7+2*15+12 {
		t.Errorf("sheet size %v", b)
	}
	// Every thumbnail keeps its photo's aspect ratio (within a pixel of
	// rounding).
	for i, p := range pics {
		b, tb := p.Bounds(), Thumbnail(p, 160, 160).Bounds()
		if d := float64(tb.Dx())/float64(tb.Dy()) - float64(b.Dx())/float64(b.Dy()); d*float64(tb.Dy()) > 1 || d*float64(tb.Dy()) < -1 {
			t.Errorf("photo %d: thumbnail %v of %v distorts", i, tb, b)
		}
	}
	if err := SaveContactSheet(filepath.Join(t.TempDir(), "no", "sheet.png"), pics[0], nil, nil, nil); err == nil {
		t.Error("saving into a missing directory: no error")
	}
}
