package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fashionDir returns ../shared/fashion seen from the repository root, or
// skips the test if it is absent.
func fashionDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "fashion")
	if _, err := os.Stat(filepath.Join(dir, "styles.csv")); err != nil {
		t.Skipf("skipping: the product catalogue ../shared/fashion is absent (%v)", err)
	}
	return dir
}

func decodePNG(t *testing.T, path string) image.Image {
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
	return img
}

// inked returns the fraction of pixels of img that are not white.
func inked(img image.Image) float64 {
	b := img.Bounds()
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				n++
			}
		}
	}
	return float64(n) / float64(b.Dx()*b.Dy())
}

var klLine = regexp.MustCompile(`t-SNE: (\d+) points of (\d+) values .* KL divergence (\S+),`)

func TestRunTSNE(t *testing.T) {
	fashion := fashionDir(t)
	dir := t.TempDir()
	mapPath, scatterPath := filepath.Join(dir, "map.png"), filepath.Join(dir, "scatter.png")
	args := []string{"-images", filepath.Join(fashion, "images"), "-meta", filepath.Join(fashion, "styles.csv"),
		"-limit", "150", "-weights-divisor", "16", "-quiet", "-catalog", filepath.Join(dir, "c.stylecat"),
		"-perplexity", "15", "-iterations", "500", "-seed", "3",
		"-map", mapPath, "-width", "640", "-height", "480", "-thumb", "32",
		"-scatter", scatterPath, "-scatter-width", "500", "-scatter-height", "420"}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"NOTE: no -weights given", "embedding: none (no -head)", "pca init"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	m := klLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no t-SNE line in the output:\n%s", out)
	}
	// 150 points of 32 x 7 x 7 raw features; a converged t-SNE of 150
	// points has a KL divergence well inside (0, 3).
	kl, err := strconv.ParseFloat(m[3], 64)
	if m[1] != "150" || m[2] != "1568" || err != nil || !(kl > 0 && kl < 3) {
		t.Errorf("t-SNE line %q: want 150 points of 1568 values and a KL divergence in (0, 3)", m[0])
	}

	// Both pictures at the requested sizes. The map must show the
	// thumbnails: 150 boxes of 24x32 pixels (the photos are 60x80) cover
	// 37% of the 640x480 canvas, and the products, without their white
	// backgrounds, more than 5% of it.
	mp := decodePNG(t, mapPath)
	if b := mp.Bounds(); b.Dx() != 640 || b.Dy() != 480 {
		t.Errorf("map is %dx%d, want 640x480", b.Dx(), b.Dy())
	}
	if f := inked(mp); f < 0.05 {
		t.Errorf("map is %.1f%% non-white: thumbnails missing?", 100*f)
	}
	sc := decodePNG(t, scatterPath)
	if b := sc.Bounds(); b.Dx() != 500 || b.Dy() != 420 {
		t.Errorf("scatter plot is %dx%d, want 500x420", b.Dx(), b.Dy())
	}
	if f := inked(sc); f < 0.01 {
		t.Errorf("scatter plot is %.2f%% non-white: empty?", 100*f)
	}
}

func TestRunTSNEErrors(t *testing.T) {
	fashion := fashionDir(t)
	base := []string{"-images", filepath.Join(fashion, "images"), "-weights-divisor", "16", "-quiet", "-limit", "5", "-catalog", "",
		"-map", filepath.Join(t.TempDir(), "map.png"), "-scatter", ""}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{append(base, "-perplexity", "30"), "needs more"},
		{append(base, "-layout", "spiral"), "-layout"},
		{append(base, "-init", "zero"), "-init"},
		{append(base, "-thumb", "0"), "must be positive"},
		{append(base, "-perplexity", "NaN"), "-perplexity NaN"},
		{append(base, "-perplexity", "Inf"), "-perplexity +Inf"},
		{[]string{"-map", "x.png"}, "-images is required"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("run %q: err %v, want one mentioning %q", tc.args, err, tc.msg)
		}
	}
}
