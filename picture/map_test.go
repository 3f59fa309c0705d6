package picture

import (
	"context"
	"encoding/csv"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nfnt/resize"
	"github.com/stylespace/style"
	"github.com/stylespace/style/internal/embedtest"
	"gonum.org/v1/plot/plotter"
)

func TestMapGridNoOverlap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	n := 600
	y := make(plotter.XYs, n)
	for i := 0; i < n; i++ {
		// Five tight clusters: many points want the same cells.
		c := float64(i % 5)
		y[i].X = 10*c + rng.NormFloat64()
		y[i].Y = 3*c*c + rng.NormFloat64()
	}
	c, err := (&MapOptions{Width: 900, Height: 700, Thumb: 30}).config()
	require.NoError(t, err)
	pos, ok := placeMap(y, c)
	scatter := c
	scatter.layout = MapScatter
	exact, _ := placeMap(y, scatter)
	seen := map[image.Point]int{}
	placed := 0
	for i, p := range pos {
		if !ok[i] {
			continue
		}
		placed++
		r := image.Rectangle{p, p.Add(image.Pt(c.thumb, c.thumb))}
		if !r.In(image.Rect(0, 0, c.w, c.h)) {
			t.Fatalf("point %d: cell %v outside the canvas", i, r)
		}
		// Cells are aligned to one grid, so distinct corners mean
		// disjoint thumbnails.
		if (p.X-(c.w-(c.w-2*c.margin)/c.thumb*c.thumb)/2)%c.thumb != 0 {
			t.Fatalf("point %d: cell %v not on the grid", i, r)
		}
		if j, dup := seen[p]; dup {
			t.Fatalf("points %d and %d share cell %v", j, i, r)
		}
		seen[p] = i
		// Never moved more than MaxShift cells (plus the half cell of
		// snapping) from the exact position.
		d := p.Sub(exact[i])
		lim := (c.maxShift + 1) * c.thumb
		if d.X*d.X+d.Y*d.Y > lim*lim {
			t.Fatalf("point %d moved by %v, more than %d pixels", i, d, lim)
		}
	}
	// The canvas has 29 x 22 = 638 cells but the clusters are crowded, so
	// some points are left out, yet most are placed.
	t.Logf("placed %d of %d", placed, n)
	if placed < n/4 || placed == n {
		t.Errorf("placed %d of %d points", placed, n)
	}
	// Spread-out points with room to spare are all placed: a 30 x 20
	// lattice on a 39 x 29 grid.
	for i := 0; i < n; i++ {
		y[i] = plotter.XY{X: float64(i % 30), Y: float64(i / 30)}
	}
	big, err := (&MapOptions{Width: 1200, Height: 900, Thumb: 30}).config()
	require.NoError(t, err)
	_, ok = placeMap(y, big)
	for i, v := range ok {
		if !v {
			t.Fatalf("grid point %d left out", i)
		}
	}
}

// TestDrawMapAspect checks that thumbnails keep their aspect ratio.
func TestDrawMapAspect(t *testing.T) {
	tall := image.NewRGBA(image.Rect(0, 0, 20, 80)) // 1:4
	for i := range tall.Pix {
		tall.Pix[i] = 0
		if i%4 == 0 || i%4 == 3 {
			tall.Pix[i] = 255 // opaque red
		}
	}
	y := &style.Matrix{Rows: 1, Cols: 2, Data: []float32{0, 0}}
	img, err := DrawMap(context.Background(), y, func(int) (image.Image, error) { return tall, nil },
		&MapOptions{Width: 200, Height: 150, Thumb: 42})
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 200, 150), img.Bounds())
	box := nonWhiteBox(img)
	// Fitted into 40 x 40 (42 minus the 1-pixel gaps): 10 x 40.
	assert.Equal(t, image.Pt(10, 40), box.Size(), "thumbnail drawn as %v", box)
	_, err = DrawMap(context.Background(), y, nil, &MapOptions{Width: 30, Thumb: 40})
	assert.Error(t, err, "a canvas smaller than a thumbnail")
}

func nonWhiteBox(img image.Image) image.Rectangle {
	var box image.Rectangle
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bb, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bb < 0xf000 {
				box = box.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return box
}

// TestWriteMapFashion embeds 500 catalogue photos by their raw pixels
// and writes the map. Set TSNEMAP_OUT to a file name to keep the PNG.
func TestWriteMapFashion(t *testing.T) {
	dir := "../../shared/fashion"
	f, err := os.Open(filepath.Join(dir, "styles.csv"))
	if os.IsNotExist(err) {
		t.Skip("../../shared/fashion is absent: skipping the catalogue map")
	}
	require.NoError(t, err)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	require.NoError(t, err)
	recs = recs[1:]
	const n, fw, fh = 500, 12, 16
	step := len(recs) / n
	imgs := make([]image.Image, n)
	cats := make([]int, n)
	catID := map[string]int{}
	x := &style.Matrix{Rows: n, Cols: fw * fh * 3, Data: make([]float32, n*fw*fh*3)}
	for k := 0; k < n; k++ {
		rec := recs[k*step]
		img, err := style.LoadImage(context.Background(), filepath.Join(dir, "images", rec[0]+".jpg"))
		require.NoError(t, err)
		imgs[k] = img
		if _, ok := catID[rec[3]]; !ok {
			catID[rec[3]] = len(catID)
		}
		cats[k] = catID[rec[3]] // subCategory: shoes, watches, topwear, ...
		small := resize.Resize(fw, fh, img, resize.Bilinear)
		row := x.Data[k*x.Cols : (k+1)*x.Cols]
		for yy := 0; yy < fh; yy++ {
			for xx := 0; xx < fw; xx++ {
				r, g, b, _ := small.At(small.Bounds().Min.X+xx, small.Bounds().Min.Y+yy).RGBA()
				p := (yy*fw + xx) * 3
				row[p], row[p+1], row[p+2] = float32(r)/65535, float32(g)/65535, float32(b)/65535
			}
		}
	}
	res, err := style.TSNE{Seed: 1}.Fit(context.Background(), x)
	require.NoError(t, err)
	emb := res.Y
	// Items visibly group: the sub-category (shoes, watches, bags,
	// topwear, ...) of an item is mostly that of its 10 nearest neighbours
	// in the map. Raw pixels separate shapes but not everything (socks
	// from ties, say), so require well above the majority-class rate.
	acc := embedtest.KNNAccuracy(emb.Data, emb.Cols, cats, 10, 5)
	counts := map[int]int{}
	major := 0
	for _, c := range cats {
		counts[c]++
		major = max(major, counts[c])
	}
	chance := float64(major) / n
	t.Logf("10-NN sub-category accuracy of the pixel map: %.3f (majority class %.3f)", acc, chance)
	if acc < 0.5 || acc < 2.5*chance {
		t.Errorf("sub-category 10-NN accuracy %.3f, want >= 0.5 and >= 2.5 x %.3f", acc, chance)
	}
	out := os.Getenv("TSNEMAP_OUT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "map.png")
	}
	opts := &MapOptions{Width: 1400, Height: 1000, Thumb: 36}
	require.NoError(t, WriteMap(context.Background(), out, emb, func(i int) (image.Image, error) { return imgs[i], nil }, opts))
	pf, err := os.Open(out)
	require.NoError(t, err)
	defer pf.Close()
	img, err := png.Decode(pf)
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 1400, 1000), img.Bounds(), "map size")
	c, _ := opts.config()
	pos, ok := placeMap(readPoints("test", emb), c)
	placed, inked := 0, 0
	for i, p := range pos {
		if !ok[i] {
			continue
		}
		placed++
		// The product photos have white backgrounds, but every cell holds
		// some non-white product pixels.
		if !nonWhiteBox(img.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(image.Rectangle{p, p.Add(image.Pt(c.thumb, c.thumb))})).Empty() {
			inked++
		}
	}
	if placed < n*3/4 || inked < placed*95/100 {
		t.Errorf("%d of %d thumbnails placed, %d of them with non-white pixels", placed, n, inked)
	}
	// The margin stays white.
	for x := 0; x < 1400; x++ {
		if img.At(x, 2) != (color.NRGBA{255, 255, 255, 255}) && img.At(x, 2) != (color.RGBA{255, 255, 255, 255}) {
			t.Fatalf("margin pixel (%d, 2) is %v", x, img.At(x, 2))
		}
	}
}
