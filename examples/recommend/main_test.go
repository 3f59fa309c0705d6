package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
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

// Test images: the first testImages of the catalogue, through a generated
// network 16 times narrower than VGG16 to keep the test short.
const testImages = 150

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run %q: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// matchLine is a printed match; the product name, if any, follows the
// distance.
var matchLine = regexp.MustCompile(`(?m)^ *(\d+)\. (\S+) +(.+?) +distance (\S+)(?:  (.*))?$`)

type printed struct {
	id, cat string
	dist    float64
	name    string
}

// checkMatches compares printed matches with the reference: IDs and
// categories exactly, distances within 1e-6 relative plus 5e-5 absolute
// (the rounding of the printed value).
func checkMatches(t *testing.T, got, want []printed) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d matches printed, want %d: %v, want %v", len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.id != w.id || g.cat != w.cat || math.Abs(g.dist-w.dist) > 1e-6*w.dist+5e-5 {
			t.Errorf("match %d: %v, want %v", i+1, g, w)
		}
	}
}

func parseMatches(t *testing.T, out string) []printed {
	t.Helper()
	var ms []printed
	for _, m := range matchLine.FindAllStringSubmatch(out, -1) {
		d, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			t.Fatalf("distance %q: %v", m[4], err)
		}
		ms = append(ms, printed{m[2], m[3], d, m[5]})
	}
	return ms
}

// bruteForce ranks every item of c by its Euclidean distance to q in
// float64, ties by index, keeping those keep accepts.
func bruteForce(c *style.Catalog, q []float32, k int, keep func(style.Item) bool) []printed {
	type cand struct {
		i int
		d float64
	}
	var cs []cand
	for i := range c.Len() {
		it := c.Item(i)
		if !keep(it) {
			continue
		}
		var s float64
		for j, v := range it.Embedding {
			d := float64(v) - float64(q[j])
			s += d * d
		}
		cs = append(cs, cand{i, math.Sqrt(s)})
	}
	sort.SliceStable(cs, func(a, b int) bool { return cs[a].d < cs[b].d })
	var out []printed
	for _, c0 := range cs[:min(k, len(cs))] {
		it := c.Item(c0.i)
		cat := it.Category
		if cat == "" {
			cat = "-"
		}
		out = append(out, printed{id: it.ID, cat: cat, dist: c0.d})
	}
	return out
}

// imageNames lists the images of the folder dir as the program does.
func imageNames(t *testing.T, dir string) []string {
	t.Helper()
	src, err := style.NewDirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	names, err := src.Names()
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestRunRecommend(t *testing.T) {
	fashion := fashionDir(t)
	images := filepath.Join(fashion, "images")
	names := imageNames(t, images)
	query := strings.TrimSuffix(names[7], ".jpg") // by ID, without extension
	dir := t.TempDir()
	catalog, sheet := filepath.Join(dir, "catalog.stylecat"), filepath.Join(dir, "sheet.png")
	common := []string{"-images", images, "-meta", filepath.Join(fashion, "styles.csv"), "-catalog", catalog,
		"-limit", fmt.Sprint(testImages), "-weights-divisor", "16", "-quiet"}

	out := runOK(t, append(common, "-query", query, "-k", "5", "-other-category", "-sheet", sheet)...)
	for _, want := range []string{"NOTE: no -weights given", "embedding: none (no -head)",
		fmt.Sprintf("%d items; this run indexed %d of %d", testImages, testImages, testImages)} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The printed matches are the brute-force top 5 over the saved
	// catalogue: the same IDs and categories in the same order, and the
	// same distances within 1e-6 relative plus the 5e-5 of printing to 4
	// decimals (the catalogue sums 1,568 squares in float32, the reference
	// in float64; float32 accumulation is good to ~1e-6 relative here).
	c, err := style.LoadCatalog(catalog)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != testImages || c.Meta["style.embedding"] != "features" {
		t.Fatalf("saved catalogue: %d items, meta %v", c.Len(), c.Meta)
	}
	qi, ok := c.Index(names[7])
	if !ok {
		t.Fatalf("query %s not in the catalogue", names[7])
	}
	qitem := c.Item(qi)
	if qitem.Category == "" {
		t.Fatalf("query item %s has no category from -meta", qitem.ID)
	}
	want := bruteForce(c, qitem.Embedding, 5, func(it style.Item) bool {
		return it.ID != qitem.ID && it.Category != qitem.Category
	})
	checkMatches(t, parseMatches(t, out), want)
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	// Contact sheet: 1 + 5 cells of 160x160 pictures with 3 caption lines
	// (7 + 3x15 pixels), 12 pixels of padding, in one row.
	f, err := os.Open(sheet)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if wantW, wantH := 12+6*(160+12), 12+160+7+3*15+12; cfg.Width != wantW || cfg.Height != wantH {
		t.Errorf("contact sheet %dx%d, want %dx%d", cfg.Width, cfg.Height, wantW, wantH)
	}

	// Second run: the catalogue is reused, nothing is recomputed, and a
	// copy of a catalogue photo given as a file finds that photo first at
	// distance 0.
	data, err := os.ReadFile(filepath.Join(images, names[20]))
	if err != nil {
		t.Fatal(err)
	}
	qfile := filepath.Join(dir, "copy.jpg")
	if err := os.WriteFile(qfile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out = runOK(t, append(common, "-query", qfile, "-k", "3", "-sheet", "")...)
	if !strings.Contains(out, fmt.Sprintf("(reused): %d items; this run indexed 0 of %d images", testImages, testImages)) {
		t.Errorf("second run did not reuse the catalogue:\n%s", out)
	}
	got := parseMatches(t, out)
	if len(got) != 3 || got[0].id != names[20] || got[0].dist != 0 {
		t.Errorf("query by a copy of %s: matches %v, want it first at distance 0", names[20], got)
	}
	if _, err := os.Stat(filepath.Join(dir, "recommend.png")); err == nil {
		t.Error("-sheet \"\" still wrote a contact sheet")
	}
}

// writeHead saves an untrained head for the generated network of -weights-divisor 16
// and returns its path.
func writeHead(t *testing.T, dir string, seed uint64) string {
	t.Helper()
	w, err := style.GenerateWeights(style.VGG16, 1, 16)
	if err != nil {
		t.Fatal(err)
	}
	fx, err := style.NewNetwork(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	head, err := style.NewSiameseHead(&style.HeadConfig{In: fx.FeatureLen(), Out: 16, Seed: seed, Scale: 100, Backbone: fx.Backbone()})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("head%d.safetensors", seed))
	if err := head.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunRecommendHead(t *testing.T) {
	fashion := fashionDir(t)
	images := filepath.Join(fashion, "images")
	dir := t.TempDir()
	headPath := writeHead(t, dir, 7)
	catalog := filepath.Join(dir, "catalog.stylecat")
	names := imageNames(t, images)
	query := names[5]
	out := runOK(t, "-images", images, "-catalog", catalog, "-limit", "40", "-weights-divisor", "16", "-quiet",
		"-head", headPath, "-query", query, "-k", "4", "-sheet", "")
	if !strings.Contains(out, "embedding: siamese head") || !strings.Contains(out, "top 4 most compatible items:") {
		t.Errorf("output does not say the head is used:\n%s", out)
	}
	// The catalogue holds the head's 16-value embeddings, and the matches
	// are the brute-force nearest ones (no categories without -meta).
	c, err := style.LoadCatalog(catalog)
	if err != nil {
		t.Fatal(err)
	}
	if c.Dim() != 16 || c.Meta["style.embedding"] != "head" {
		t.Fatalf("catalogue of dim %d, meta %v", c.Dim(), c.Meta)
	}
	qi, ok := c.Index(query)
	if !ok {
		t.Fatalf("query %s not in the catalogue", query)
	}
	q := c.Item(qi).Embedding
	checkMatches(t, parseMatches(t, out), bruteForce(c, q, 4, func(it style.Item) bool { return it.ID != query }))
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	// The contact sheet shows the distances and marks the matches within
	// the head's cutoff: the same head (its cutoff is not part of the
	// catalogue's provenance) with a cutoff between the 2nd and 3rd
	// distances marks the first two matches only, with a green frame and
	// a 4th caption line ("goes together") under the label's 2 lines and
	// the distance.
	got := parseMatches(t, out)
	require.Len(t, got, 4)
	require.Less(t, got[1].dist, got[2].dist, "distinct distances to put a cutoff between")
	h, err := style.LoadHead(headPath)
	require.NoError(t, err)
	h.Cutoff = (got[1].dist + got[2].dist) / 2
	cutHead := filepath.Join(dir, "cut.safetensors")
	require.NoError(t, h.Save(cutHead))
	sheet := filepath.Join(dir, "sheet.png")
	runOK(t, "-images", images, "-catalog", catalog, "-limit", "40", "-weights-divisor", "16", "-quiet",
		"-head", cutHead, "-query", query, "-k", "4", "-sheet", sheet)
	fh, err := os.Open(sheet)
	require.NoError(t, err)
	img, err := png.Decode(fh)
	fh.Close()
	require.NoError(t, err)
	assert.Equal(t, image.Pt(12+5*(160+12), 12+160+7+4*15+12), img.Bounds().Size())
	green := color.RGBA{0, 140, 100, 255}
	for i := 1; i <= 4; i++ {
		// The left edge of the frame, 4 pixels outside the picture's box.
		px := color.RGBAModel.Convert(img.At(12+i*(160+12)-3, 12+80))
		assert.Equal(t, i <= 2, px == green, "match %d (distance %g, cutoff %g): frame pixel %v", i, got[i-1].dist, h.Cutoff, px)
	}

	// Another head must not extend or search this catalogue.
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"-images", images, "-catalog", catalog, "-limit", "40", "-weights-divisor", "16",
		"-quiet", "-head", writeHead(t, dir, 8)}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "built with another model") {
		t.Errorf("another head: err %v, want a refusal", err)
	}
}

func TestRunRecommendErrors(t *testing.T) {
	fashion := fashionDir(t)
	images := filepath.Join(fashion, "images")
	dir := t.TempDir()
	// A small catalogue of raw features, then a head for the same network:
	// the catalogue must be refused rather than mixed.
	catalog := filepath.Join(dir, "catalog.stylecat")
	base := []string{"-images", images, "-catalog", catalog, "-limit", "4", "-weights-divisor", "16", "-quiet"}
	runOK(t, base...)
	headPath := writeHead(t, dir, 1)
	badCSV := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(badCSV, []byte("id,articleType\n1,Shirts\n2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type errorCase struct {
		args []string
		msg  string
	}
	cases := []errorCase{
		{append(base, "-head", headPath), "built with another model"},
		{append(base, "-query", "no-such-item"), "not an item of the catalogue"},
		{append(base, "-meta", badCSV, "-catalog", ""), "bad.csv: line 3"},
		{append(base, "-weights-divisor", "3"), "width divisor 3"},
		{append(base, "-weights", filepath.Join(dir, "none.safetensors")), "none.safetensors"},
		{[]string{"-k", "5"}, "-images is required"},
		{append(base, "-k", "0"), "-k 0"},
	}
	// A catalogue records its model through the extractor's Backbone, which
	// carries a generated network's seed and width divisor.
	cases = append(cases, errorCase{append(base, "-weights-seed", "2"), "built with another model"})
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("run %q: err %v, want one mentioning %q", tc.args, err, tc.msg)
		}
	}
}
