package style

import (
	"flag"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	if err != nil {
		t.Fatal(err)
	}
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

func TestPlotLearningCurves(t *testing.T) {
	train := []float64{0.52, 0.31, 0.25, 0.21, 0.19, 0.17, 0.16, 0.155, 0.15, 0.147}
	val := []float64{0.55, 0.36, 0.30, 0.27, 0.26, 0.255, 0.258, 0.262, 0.27, 0.28}
	path := chartPath(t, "learning.png")
	if err := PlotLearningCurves(path, train, val, nil); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 800, 600)
	// Training only, another size.
	path2 := chartPath(t, "learning_train.png")
	if err := PlotLearningCurves(path2, train, nil, &PlotOptions{Width: 640, Height: 400, Title: "Head training"}); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path2, 640, 400)

	if err := PlotLearningCurves(path, nil, nil, nil); err == nil {
		t.Error("no epochs: no error")
	}
	if err := PlotLearningCurves(path, []float64{1, math.NaN()}, nil, nil); err == nil || !strings.Contains(err.Error(), "train[1]") {
		t.Errorf("NaN loss: err = %v, want one naming train[1]", err)
	}
	if err := PlotLearningCurves(path, train, val, &PlotOptions{Width: 1 << 20, Height: 1 << 20}); err == nil {
		t.Error("huge size: no error")
	}
	mustPanic(t, "validation", func() { PlotLearningCurves(path, train, val[:3], nil) })
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

func TestPlotROC(t *testing.T) {
	fpr, tpr := rocCurve(200)
	path := chartPath(t, "roc.png")
	if err := PlotROC(path, fpr, tpr, 1/1.3, 0.2, math.Pow(0.2, 0.3), nil); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 800, 600)
	square := chartPath(t, "roc_square.png")
	if err := PlotROC(square, fpr, tpr, 0.77, math.NaN(), math.NaN(), &PlotOptions{Width: 600, Height: 600}); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, square, 600, 600)
	if err := PlotROC(path, fpr[:1], tpr[:1], 0.5, 0, 0, nil); err == nil {
		t.Error("one point: no error")
	}
	bad := append([]float64(nil), tpr...)
	bad[5] = 1.5
	if err := PlotROC(path, fpr, bad, 0.5, 0, 0, nil); err == nil || !strings.Contains(err.Error(), "tpr[5]") {
		t.Errorf("rate 1.5: err = %v", err)
	}
	mustPanic(t, "rates", func() { PlotROC(path, fpr, tpr[1:], 0.5, 0, 0, nil) })
}

func TestPlotDistanceDensities(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	sample := func(n int, mu, sd float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Abs(mu + sd*rng.NormFloat64())
		}
		return v
	}
	panels := []DistanceDensity{
		{Title: "Before training (VGG16 features)", Compatible: sample(300, 80, 15), Incompatible: sample(3000, 85, 15)},
		{Title: "After training (style space)", Compatible: sample(300, 0.3, 0.2), Incompatible: sample(3000, 1.1, 0.3), Cutoff: 0.62},
	}
	path := chartPath(t, "densities.png")
	if err := PlotDistanceDensities(path, panels, &PlotOptions{Title: "Distances of compatible and incompatible pairs"}); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 1400, 600)
	one := chartPath(t, "density_one.png")
	if err := PlotDistanceDensities(one, panels[1:], nil); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, one, 800, 600)

	if err := PlotDistanceDensities(path, nil, nil); err == nil {
		t.Error("no panels: no error")
	}
	if err := PlotDistanceDensities(path, []DistanceDensity{{}}, nil); err == nil {
		t.Error("empty panel: no error")
	}
	if err := PlotDistanceDensities(path, []DistanceDensity{{Compatible: []float64{1, -2}}}, nil); err == nil {
		t.Error("negative distance: no error")
	}
	// A degenerate sample (all equal) still plots.
	degenerate := chartPath(t, "density_degenerate.png")
	if err := PlotDistanceDensities(degenerate, []DistanceDensity{{Compatible: []float64{1, 1, 1}, Incompatible: []float64{2}}}, nil); err != nil {
		t.Errorf("degenerate sample: %v", err)
	}
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
		if math.Abs(area-1) > 0.01 {
			t.Errorf("mu %v: density integrates to %v, want 1", mu, area)
		}
		for _, p := range pts {
			if p.X < 0 || p.Y < 0 {
				t.Fatalf("mu %v: point %v below zero", mu, p)
			}
		}
	}
}

// clusters returns n points in k Gaussian clusters and their categories.
func clusters(n, k int) (*Matrix, []string) {
	rng := rand.New(rand.NewPCG(3, 1))
	xy := &Matrix{Rows: n, Cols: 2, Data: make([]float32, 2*n)}
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

func TestPlotScatter(t *testing.T) {
	xy, cats := clusters(3000, 6)
	path := chartPath(t, "scatter.png")
	if err := PlotScatter(path, xy, cats, &PlotOptions{Title: "t-SNE of the catalogue"}); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 800, 600)
	// Many categories: the rare ones are grouped as "others".
	xy, cats = clusters(2000, 25)
	many := chartPath(t, "scatter_many.png")
	if err := PlotScatter(many, xy, cats, &PlotOptions{Width: 1000, Height: 700}); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, many, 1000, 700)
	plain := chartPath(t, "scatter_plain.png")
	if err := PlotScatter(plain, xy, nil, nil); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, plain, 800, 600)

	if err := PlotScatter(path, &Matrix{}, nil, nil); err == nil {
		t.Error("no points: no error")
	}
	if err := PlotScatter(path, nil, nil, nil); err == nil {
		t.Error("nil points: no error")
	}
	bad := &Matrix{Rows: 2, Cols: 2, Data: []float32{0, 1, float32(math.Inf(1)), 2}}
	if err := PlotScatter(path, bad, nil, nil); err == nil || !strings.Contains(err.Error(), "point 1") {
		t.Errorf("infinite point: err = %v", err)
	}
	mustPanic(t, "columns", func() { PlotScatter(path, &Matrix{Rows: 2, Cols: 3, Data: make([]float32, 6)}, nil, nil) })
	mustPanic(t, "categories", func() { PlotScatter(path, xy, cats[:5], nil) })
}

func TestPlotAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "roc.png")
	if err := os.WriteFile(path, []byte("previous chart"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Failures before and during the write leave the old file intact.
	if err := PlotROC(path, []float64{0, 2}, []float64{0, 1}, 0.5, 0, 0, nil); err == nil {
		t.Fatal("invalid rate: no error")
	}
	if err := PlotLearningCurves(filepath.Join(dir, "missing", "x.png"), []float64{1}, nil, nil); err == nil {
		t.Fatal("missing directory: no error")
	}
	if b, _ := os.ReadFile(path); string(b) != "previous chart" {
		t.Fatalf("failed plot changed the file: %q", b)
	}
	// A successful plot replaces it completely, leaving no temporary file.
	if err := PlotROC(path, []float64{0, 1}, []float64{0, 1}, 0.5, math.NaN(), math.NaN(), nil); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 800, 600)
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(entries))
	}
}
