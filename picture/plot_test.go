package picture

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	stddraw "image/draw"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
)

var plotDir = flag.String("plotdir", "", "write the test charts into this directory to look at them")

// chartPath returns where a test writes a chart: the -plotdir directory if
// given, else a temporary one.
func chartPath(t *testing.T, name string) string {
	if *plotDir != "" {
		return filepath.Join(*plotDir, name)
	}
	return filepath.Join(t.TempDir(), name)
}

// checkPNG decodes the file and checks its size and that it is a chart:
// mostly white, with a reasonable share of ink and some saturated colour.
func checkPNG(t *testing.T, path string, w, h int) image.Image {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("%s: size %dx%d, want %dx%d", path, b.Dx(), b.Dy(), w, h)
	}
	white, coloured := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 > 245 && g>>8 > 245 && bl>>8 > 245 {
				white++
			}
			hi, lo := max(r, g, bl)>>8, min(r, g, bl)>>8
			if hi-lo > 80 {
				coloured++
			}
		}
	}
	total := w * h
	// A chart is mostly background, but text, axes and data need at least
	// half a percent of the pixels; a blank or all-black picture fails.
	if white > total*995/1000 || white < total/3 {
		t.Errorf("%s: %d of %d pixels white, not a chart", path, white, total)
	}
	if coloured < 200 {
		t.Errorf("%s: only %d coloured pixels, the data is missing", path, coloured)
	}
	return img
}

func TestLearningCurves(t *testing.T) {
	train := []float64{0.52, 0.31, 0.25, 0.21, 0.19, 0.17, 0.16, 0.155, 0.15, 0.147}
	val := []float64{0.55, 0.36, 0.30, 0.27, 0.26, 0.255, 0.258, 0.262, 0.27, 0.28}
	path := chartPath(t, "learning.png")
	require.NoError(t, LearningCurves(path, train, val, nil))
	checkPNG(t, path, 800, 600)
	// Training only, another size.
	path2 := chartPath(t, "learning_train.png")
	require.NoError(t, LearningCurves(path2, train, nil, &Options{Width: 640, Height: 400, Title: "Head training"}))
	checkPNG(t, path2, 640, 400)

	assert.Error(t, LearningCurves(path, nil, nil, nil), "no epochs")
	assert.ErrorContains(t, LearningCurves(path, []float64{1, math.NaN()}, nil, nil), "train[1]", "NaN loss")
	assert.Error(t, LearningCurves(path, train, val, &Options{Width: 1 << 20, Height: 1 << 20}), "huge size")
	mustPanic(t, "validation", func() { LearningCurves(path, train, val[:3], nil) })
}

// rocCurve returns a smooth ROC-like curve with the given number of points.
func rocCurve(n int) (fpr, tpr []float64) {
	for i := range n {
		x := float64(i) / float64(n-1)
		fpr = append(fpr, x)
		tpr = append(tpr, math.Pow(x, 0.3))
	}
	return fpr, tpr
}

func TestROC(t *testing.T) {
	fpr, tpr := rocCurve(200)
	path := chartPath(t, "roc.png")
	require.NoError(t, ROC(path, fpr, tpr, 1/1.3, 0.2, math.Pow(0.2, 0.3), nil))
	checkPNG(t, path, 800, 600)
	square := chartPath(t, "roc_square.png")
	require.NoError(t, ROC(square, fpr, tpr, 0.77, math.NaN(), math.NaN(), &Options{Width: 600, Height: 600}))
	checkPNG(t, square, 600, 600)
	assert.Error(t, ROC(path, fpr[:1], tpr[:1], 0.5, 0, 0, nil), "one point")
	bad := append([]float64(nil), tpr...)
	bad[5] = 1.5
	assert.ErrorContains(t, ROC(path, fpr, bad, 0.5, 0, 0, nil), "tpr[5]", "rate 1.5")
	mustPanic(t, "rates", func() { ROC(path, fpr, tpr[1:], 0.5, 0, 0, nil) })
}

func TestDensities(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	sample := func(n int, mu, sd float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Abs(mu + sd*rng.NormFloat64())
		}
		return v
	}
	panels := []DensityPanel{
		{Title: "Before training (VGG16 features)", Compatible: sample(300, 80, 15), Incompatible: sample(3000, 85, 15)},
		{Title: "After training (style space)", Compatible: sample(300, 0.3, 0.2), Incompatible: sample(3000, 1.1, 0.3), Cutoff: 0.62},
	}
	path := chartPath(t, "densities.png")
	require.NoError(t, Densities(path, panels, &Options{Title: "Distances of compatible and incompatible pairs"}))
	checkPNG(t, path, 1400, 600)
	one := chartPath(t, "density_one.png")
	require.NoError(t, Densities(one, panels[1:], nil))
	checkPNG(t, one, 800, 600)

	assert.Error(t, Densities(path, nil, nil), "no panels")
	assert.Error(t, Densities(path, []DensityPanel{{}}, nil), "empty panel")
	assert.Error(t, Densities(path, []DensityPanel{{Compatible: []float64{1, -2}}}, nil), "negative distance")
	// A degenerate sample (all equal) still plots.
	degenerate := chartPath(t, "density_degenerate.png")
	assert.NoError(t, Densities(degenerate, []DensityPanel{{Compatible: []float64{1, 1, 1}, Incompatible: []float64{2}}}, nil), "degenerate sample")
	checkPNG(t, degenerate, 800, 600)
}

func TestKernelDensityIntegratesToOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 9))
	for _, mu := range []float64{0.05, 3} {
		v := make([]float64, 2000)
		for i := range v {
			v[i] = math.Abs(mu + rng.NormFloat64())
		}
		pts := kernelDensity(v, 512)
		area := 0.0
		for i := 1; i < len(pts); i++ {
			area += (pts[i].X - pts[i-1].X) * (pts[i].Y + pts[i-1].Y) / 2
		}
		// The grid covers the sample +-3 bandwidths and the reflection keeps
		// the mass at 0, so the trapezoid integral is 1 up to the Gaussian
		// tail beyond 3 bandwidths (~0.1%) and the grid error.
		assert.InDelta(t, 1, area, 0.01, "mu %v: integral of the density", mu)
		for _, p := range pts {
			if p.X < 0 || p.Y < 0 {
				t.Fatalf("mu %v: point %v below zero", mu, p)
			}
		}
	}
}

// clusters returns n points in k Gaussian clusters and their categories.
func clusters(n, k int) (*style.Matrix, []string) {
	rng := rand.New(rand.NewPCG(3, 1))
	xy := &style.Matrix{Rows: n, Cols: 2, Data: make([]float32, 2*n)}
	cats := make([]string, n)
	for i := range n {
		c := rng.IntN(k)
		a := 2 * math.Pi * float64(c) / float64(k)
		xy.Data[2*i] = float32(10*math.Cos(a) + rng.NormFloat64())
		xy.Data[2*i+1] = float32(10*math.Sin(a) + rng.NormFloat64())
		cats[i] = fmt.Sprintf("category %02d", c)
	}
	return xy, cats
}

func TestScatter(t *testing.T) {
	xy, cats := clusters(3000, 6)
	path := chartPath(t, "scatter.png")
	require.NoError(t, Scatter(path, xy, cats, &Options{Title: "t-SNE of the catalogue"}))
	checkPNG(t, path, 800, 600)
	// Many categories: the rare ones are grouped as "others".
	xy, cats = clusters(2000, 25)
	many := chartPath(t, "scatter_many.png")
	require.NoError(t, Scatter(many, xy, cats, &Options{Width: 1000, Height: 700}))
	checkPNG(t, many, 1000, 700)
	plain := chartPath(t, "scatter_plain.png")
	require.NoError(t, Scatter(plain, xy, nil, nil))
	checkPNG(t, plain, 800, 600)

	assert.Error(t, Scatter(path, &style.Matrix{}, nil, nil), "no points")
	assert.Error(t, Scatter(path, nil, nil, nil), "nil points")
	bad := &style.Matrix{Rows: 2, Cols: 2, Data: []float32{0, 1, float32(math.Inf(1)), 2}}
	assert.ErrorContains(t, Scatter(path, bad, nil, nil), "point 1", "infinite point")
	mustPanic(t, "columns", func() { Scatter(path, &style.Matrix{Rows: 2, Cols: 3, Data: make([]float32, 6)}, nil, nil) })
	mustPanic(t, "categories", func() { Scatter(path, xy, cats[:5], nil) })
}

func TestPlotAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "roc.png")
	require.NoError(t, os.WriteFile(path, []byte("previous chart"), 0o644))
	// Failures before and during the write leave the old file intact.
	require.Error(t, ROC(path, []float64{0, 2}, []float64{0, 1}, 0.5, 0, 0, nil), "invalid rate")
	require.Error(t, LearningCurves(filepath.Join(dir, "missing", "x.png"), []float64{1}, nil, nil), "missing directory")
	b, _ := os.ReadFile(path)
	require.Equal(t, "previous chart", string(b), "a failed plot changed the file")
	// A successful plot replaces it completely, leaving no temporary file.
	require.NoError(t, ROC(path, []float64{0, 1}, []float64{0, 1}, 0.5, math.NaN(), math.NaN(), nil))
	checkPNG(t, path, 800, 600)
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 1, "directory entries")
}

// TestConcurrent draws charts, maps and sheets from several goroutines at
// once, as the package documentation allows; run it with -race.
func TestConcurrent(t *testing.T) {
	xy, cats := clusters(300, 4)
	fpr, tpr := rocCurve(50)
	tile := halves(0, 0, 30, 40)
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for g := range errs {
		wg.Go(func() {
			path := func(name string) string { return filepath.Join(dir, fmt.Sprintf("%d-%s", g, name)) }
			errs[g] = errors.Join(
				LearningCurves(path("learning.png"), []float64{3, 2, 1}, []float64{3.5, 2.5, 2}, nil),
				ROC(path("roc.png"), fpr, tpr, 0.8, 0.2, 0.6, nil),
				Scatter(path("scatter.png"), xy, cats, nil),
				WriteMap(context.Background(), path("map.png"), xy, func(int) (image.Image, error) { return tile, nil },
					&MapOptions{Width: 400, Height: 300, Thumb: 20}),
				WriteContactSheet(path("sheet.png"), tile, []image.Image{tile, tile}, nil, nil),
			)
		})
	}
	wg.Wait()
	for g, err := range errs {
		require.NoError(t, err, "goroutine %d", g)
	}
	for g := range errs {
		checkPNG(t, filepath.Join(dir, fmt.Sprintf("%d-scatter.png", g)), 800, 600)
	}
}

// readPNG decodes the PNG file at path into an *image.RGBA.
func readPNG(t *testing.T, path string) *image.RGBA {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	rgba := image.NewRGBA(img.Bounds())
	stddraw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, stddraw.Src)
	return rgba
}

// modeColour returns the most frequent colour in r that is neither white
// nor grey (background, grid, axes and text).
func modeColour(img *image.RGBA, r image.Rectangle) (color.RGBA, int) {
	counts := map[color.RGBA]int{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := img.RGBAAt(x, y)
			if max(c.R, c.G, c.B)-min(c.R, c.G, c.B) > 40 {
				counts[c]++
			}
		}
	}
	var best color.RGBA
	for c, k := range counts {
		if k > counts[best] || (k == counts[best] && fmt.Sprint(c) < fmt.Sprint(best)) {
			best = c
		}
	}
	return best, counts[best]
}

// TestScatterLegendMatchesPoints draws four categories in the four corners
// of the plot, with known frequencies, and checks that each legend swatch,
// from the top in order of frequency, has exactly the colour of the points
// of its category, and that a long title is not cut at the picture's edge.
func TestScatterLegendMatchesPoints(t *testing.T) {
	corners := []struct {
		name string
		x, y float64
		n    int
	}{{"north-west", 0, 10, 9}, {"north-east", 10, 10, 7}, {"south-west", 0, 0, 5}, {"south-east", 10, 0, 3}}
	var data []float32
	var cats []string
	for _, c := range corners {
		for k := range c.n {
			// Points 0.7 apart, so that none overlaps another.
			data = append(data, float32(c.x+0.7*float64(k%3)), float32(c.y+0.7*float64(k/3)))
			cats = append(cats, c.name)
		}
	}
	xy := &style.Matrix{Rows: len(cats), Cols: 2, Data: data}
	path := chartPath(t, "scatter_legend.png")
	title := "A long title that is wider than the plotting area beside the legend: it used to start off the picture"
	// South-east is given its own colour; the others take the palette's.
	own := color.RGBA{120, 40, 160, 255}
	require.NoError(t, Scatter(path, xy, cats, &Options{Title: title, Colors: map[string]color.Color{"south-east": own}}))
	img := readPNG(t, path)
	w, h := img.Bounds().Dx(), img.Bounds().Dy()

	// The legend lies right of the plot; find the first row of each
	// point colour there.
	legend := image.Rect(w*4/5, 0, w, h/2)
	plotArea := image.Rect(0, 0, w*4/5, h)
	lastY := -1
	for j, c := range corners {
		var quarter image.Rectangle
		mid := image.Pt(plotArea.Dx()/2, plotArea.Dy()/2)
		switch {
		case c.x == 0 && c.y == 10:
			quarter = image.Rect(0, 0, mid.X, mid.Y)
		case c.y == 10:
			quarter = image.Rect(mid.X, 0, plotArea.Max.X, mid.Y)
		case c.x == 0:
			quarter = image.Rect(0, mid.Y, mid.X, h)
		default:
			quarter = image.Rect(mid.X, mid.Y, plotArea.Max.X, h)
		}
		pointCol, k := modeColour(img, quarter)
		require.Greater(t, k, 5*c.n, "%s: pixels of its points", c.name)
		want := plotPalette[j]
		if c.name == "south-east" {
			want = own
		}
		// The translucent point over the white background.
		pc := pointColour(want)
		for i, v := range []uint8{pc.R, pc.G, pc.B} {
			assert.InDelta(t, int(v)+255-int(pc.A), int([]uint8{pointCol.R, pointCol.G, pointCol.B}[i]), 1,
				"%s: colour %v of its points, want %v over white", c.name, pointCol, pc)
		}
		y := -1
		for yy := legend.Min.Y; yy < legend.Max.Y && y < 0; yy++ {
			for x := legend.Min.X; x < legend.Max.X; x++ {
				if img.RGBAAt(x, yy) == pointCol {
					y = yy
					break
				}
			}
		}
		require.GreaterOrEqual(t, y, 0, "%s: no legend swatch of its points' colour %v", c.name, pointCol)
		assert.Greater(t, y, lastY, "%s: legend swatch out of the order of frequency", c.name)
		lastY = y
	}
	// The title: ink in the top band, none in the outer columns.
	ink := func(r image.Rectangle) int {
		n := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				if c := img.RGBAAt(x, y); c.R < 128 && c.G < 128 && c.B < 128 {
					n++
				}
			}
		}
		return n
	}
	assert.Greater(t, ink(image.Rect(0, 0, w, 30)), 300, "title ink")
	assert.Zero(t, ink(image.Rect(0, 0, 6, 30)), "title ink at the left edge")
	assert.Zero(t, ink(image.Rect(w-6, 0, w, 30)), "title ink at the right edge")
}

func TestLegendLabels(t *testing.T) {
	long := "a category name much longer than the legend allows"
	assert.Equal(t, []string{"(none)", "short", "a category name much lo…", "ééééééééééééééééééééééé…"},
		legendLabels([]string{"", "short", long, strings.Repeat("é", 30)}))
	// Two names that would be cut to the same label are shown in full.
	assert.Equal(t, []string{long + " 1", long + " 2"}, legendLabels([]string{long + " 1", long + " 2"}))
}
