package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/study"
)

// fixture writes a pair list built from the reference catalogue and returns
// its path and the number of distinct images. It skips the test when the
// reference data is absent.
func fixture(t *testing.T, products int) (pairsPath string, rows []string, names []string) {
	t.Helper()
	if _, err := os.Stat(cli.FashionDir); err != nil {
		t.Skipf("reference catalogue %s absent: %v", cli.FashionDir, err)
	}
	if _, err := os.Stat(cli.NarrowWeights); err != nil {
		t.Skipf("narrow weights %s absent: %v", cli.NarrowWeights, err)
	}
	rows, names, err := cli.FashionPairs(cli.FashionDir, products)
	if err != nil {
		t.Fatal(err)
	}
	pairsPath = filepath.Join(t.TempDir(), "pairs.csv")
	if err := os.WriteFile(pairsPath, []byte("pic1;pic2;score\n"+strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return pairsPath, rows, names
}

// countingExtractor counts feature computations and cancels a context after
// a given number of them.
type countingExtractor struct {
	style.FeatureExtractor
	calls    atomic.Int64
	cancelAt int64
	cancel   context.CancelFunc
}

func (c *countingExtractor) Features(img image.Image) ([]float32, error) {
	if n := c.calls.Add(1); c.cancel != nil && n == c.cancelAt {
		c.cancel()
	}
	return c.FeatureExtractor.Features(img)
}

func withExtractor(t *testing.T, c *countingExtractor) {
	wrapExtractor = func(fx style.FeatureExtractor) style.FeatureExtractor {
		c.FeatureExtractor = fx
		return c
	}
	t.Cleanup(func() { wrapExtractor = nil })
}

// reportCounts reads "N features computed by this run, M already in the
// feature store, F failed" from a report.
func reportCounts(t *testing.T, report string) (extracted, skipped, failed int) {
	t.Helper()
	m := regexp.MustCompile(`(\d+) features computed by this run, (\d+) already in the feature store, (\d+) failed`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("report has no image counts:\n%s", report)
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	c, _ := strconv.Atoi(m[3])
	return a, b, c
}

func commonArgs(pairs, out string) []string {
	return []string{"-pairs", pairs, "-weights", cli.NarrowWeights, "-weights-divisor", "8", "-out", out,
		"-epochs", "4", "-patience", "2", "-seed", "3", "-workers", "2"}
}

// TestTrainFolderResume trains from a local folder with an interruption
// during the feature extraction: the second run must compute exactly the
// images the first did not store, then finish the study with all outputs.
func TestTrainFolderResume(t *testing.T) {
	pairs, rows, names := fixture(t, 30)
	out := filepath.Join(t.TempDir(), "out")
	args := append(commonArgs(pairs, out), "-images", filepath.Join(cli.FashionDir, "images"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := &countingExtractor{cancelAt: 5, cancel: cancel}
	withExtractor(t, first)
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, &stdout, &stderr)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: got %v, want context.Canceled", err)
	}
	n1 := first.calls.Load()
	if n1 < 5 || n1 >= int64(len(names)) {
		t.Fatalf("interrupted run computed %d features of %d images, want at least 5 and not all", n1, len(names))
	}
	if _, err := os.Stat(filepath.Join(out, study.HeadFile)); err == nil {
		t.Error("an interrupted run wrote a head")
	}

	second := &countingExtractor{}
	withExtractor(t, second)
	stdout.Reset()
	stderr.Reset()
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, stderr.String())
	}
	n2 := second.calls.Load()
	// Every image is computed exactly once over the two runs.
	if n1+n2 != int64(len(names)) {
		t.Errorf("features computed: %d + %d, want %d distinct images in all", n1, n2, len(names))
	}
	report, err := os.ReadFile(filepath.Join(out, study.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	ex, sk, fa := reportCounts(t, string(report))
	if int64(ex) != n2 || int64(sk) != n1 || fa != 0 {
		t.Errorf("report says %d extracted, %d skipped, %d failed; want %d, %d, 0", ex, sk, fa, n2, n1)
	}
	if !strings.Contains(stdout.String(), fmt.Sprintf("Pairs: %d used of %d", len(rows), len(rows))) {
		t.Errorf("summary does not count %d pairs:\n%s", len(rows), stdout.String())
	}
	if !strings.Contains(stderr.String(), "features") {
		t.Errorf("no feature progress bar on stderr: %q", stderr.String())
	}
	checkOutputs(t, out)
}

// checkOutputs checks the files a finished study writes: a head for the
// narrow weights whose cutoff is the one printed, and PNG charts.
func checkOutputs(t *testing.T, out string) {
	t.Helper()
	head, err := style.LoadHead(filepath.Join(out, study.HeadFile))
	if err != nil {
		t.Fatal(err)
	}
	vgg, err := cli.LoadNetwork(cli.NarrowWeights, "auto", 8)
	if err != nil {
		t.Fatal(err)
	}
	if err := head.CheckBackbone(vgg.Backbone()); err != nil {
		t.Errorf("saved head: %v", err)
	}
	if head.Dense.In != vgg.FeatureLen() || head.Scale <= 0 {
		t.Errorf("saved head: In %d, scale %g; want In %d and a positive scale", head.Dense.In, head.Scale, vgg.FeatureLen())
	}
	for _, name := range []string{study.LearningCurvesFile, study.ROCFile, study.DensitiesFile} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		cfg, format, err := image.DecodeConfig(f)
		f.Close()
		if err != nil || format != "png" || cfg.Width < 400 {
			t.Errorf("%s: %s %dx%d, %v; want a PNG chart", name, format, cfg.Width, cfg.Height, err)
		}
	}
	report, err := os.ReadFile(filepath.Join(out, study.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("at most **%.4f**", head.Cutoff)
	if !strings.Contains(string(report), want) && !strings.Contains(string(report), "default cutoff") {
		t.Errorf("report does not state the saved cutoff %q:\n%s", want, report)
	}
}

// TestTrainHTTP reads the pair list and the images from an HTTP server, one
// image missing (404) and one corrupt: both are reported, their pairs left
// out, and the rest of the study completes.
func TestTrainHTTP(t *testing.T) {
	_, rows, names := fixture(t, 24)
	missing, corrupt := names[1], names[2]
	body := "pic1;pic2;score\n" + strings.Join(rows, "\n") + "\n"
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch name := strings.TrimPrefix(r.URL.Path, "/img/"); {
		case r.URL.Path == "/pairs.csv":
			w.Write([]byte(body))
		case name == missing:
			http.NotFound(w, r)
		case name == corrupt:
			w.Write([]byte("\xff\xd8\xff\xe0 not really a JPEG"))
		default:
			http.ServeFile(w, r, filepath.Join(cli.FashionDir, "images", filepath.Base(name)))
		}
	}))
	defer srv.Close()

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	args := append(commonArgs(srv.URL+"/pairs.csv", out), "-images", srv.URL+"/img/", "-quiet", "-conv", "winograd")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	dropped := 0
	for _, row := range rows {
		if strings.Contains(row, missing) || strings.Contains(row, corrupt) {
			dropped++
		}
	}
	if want := fmt.Sprintf("; %d dropped", dropped); !strings.Contains(stdout.String(), want) {
		t.Errorf("summary does not report %q:\n%s", want, stdout.String())
	}
	failed, err := os.ReadFile(filepath.Join(out, study.FailedImagesFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(failed)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], missing+"\t") || !strings.HasPrefix(lines[2], corrupt+"\t") {
		t.Errorf("%s:\n%s\nwant a header, then %s and %s", study.FailedImagesFile, failed, missing, corrupt)
	}
	// The images were cached: each good image was requested once.
	if got, want := requests.Load(), int64(1+len(names)); got < want {
		t.Errorf("%d requests, want at least %d (pair list and one per image)", got, want)
	}
	if _, err := os.Stat(filepath.Join(out, "images", names[0])); err != nil {
		t.Errorf("downloaded image not cached: %v", err)
	}
	checkOutputs(t, out)
}

// TestTrainErrors checks the messages for a missing pair list and a
// malformed one.
func TestTrainErrors(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-pairs", filepath.Join(dir, "nope.csv"), "-out", dir}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "nope.csv") || !strings.Contains(err.Error(), "-pairs") {
		t.Errorf("missing pair list: %v", err)
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("a.jpg;b.jpg;1\nc.jpg;d.jpg;7\n"), 0o644)
	err = run(context.Background(), []string{"-pairs", bad, "-out", dir}, &stdout, &stderr)
	if !errors.Is(err, style.ErrFormat) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("malformed pair list: %v, want a format error naming line 2", err)
	}
	if err := run(context.Background(), []string{"extra"}, &stdout, &stderr); err == nil {
		t.Error("a stray argument was accepted")
	}
	// A timeout that leaves no time is a usage error naming the flag, not
	// a deadline blamed on the pair list.
	for _, v := range []string{"0", "-1s"} {
		err := run(context.Background(), []string{"-pairs", bad, "-out", dir, "-timeout", v}, &stdout, &stderr)
		assert.ErrorContains(t, err, "-timeout", "-timeout %s", v)
		assert.Equal(t, cli.ExitUsage, cli.ExitCode(err, false), "-timeout %s: %v", v, err)
	}
}

// TestTrainHidden trains a head with a hidden layer (-hidden): the saved
// head has it and the report describes it; bad widths are usage errors.
func TestTrainHidden(t *testing.T) {
	pairs, _, _ := fixture(t, 30)
	out := filepath.Join(t.TempDir(), "out")
	args := append(commonArgs(pairs, out), "-images", filepath.Join(cli.FashionDir, "images"), "-hidden", "12")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	h, err := style.LoadHead(filepath.Join(out, study.HeadFile))
	require.NoError(t, err)
	require.Len(t, h.Hidden, 1)
	assert.Equal(t, 12, h.Hidden[0].Out)
	assert.Equal(t, 12, h.Dense.In)
	report, err := os.ReadFile(filepath.Join(out, study.ReportFile))
	require.NoError(t, err)
	assert.Contains(t, string(report), fmt.Sprintf("%d features -> 12 -> %d", h.Hidden[0].In, h.Dense.Out))

	for _, bad := range []string{"0", "12,x", "-3"} {
		err := run(context.Background(), []string{"-hidden", bad, "-out", t.TempDir()}, &stdout, &stderr)
		assert.ErrorContains(t, err, "-hidden", "width list %q", bad)
	}
	w, err := parseWidths(" 512, 256 ")
	require.NoError(t, err)
	assert.Equal(t, []int{512, 256}, w)
}

// TestTrainGrid cross-validates a small grid from the -grid-* flags: the
// report has the grid table and the head has the chosen setting.
func TestTrainGrid(t *testing.T) {
	pairs, _, _ := fixture(t, 30)
	out := filepath.Join(t.TempDir(), "out")
	args := append(commonArgs(pairs, out), "-images", filepath.Join(cli.FashionDir, "images"),
		"-cv-folds", "3", "-grid-margin", "0.5,1", "-grid-hidden", ";6")
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	report, err := os.ReadFile(filepath.Join(out, study.ReportFile))
	require.NoError(t, err)
	assert.Contains(t, string(report), "## Model selection")
	assert.Equal(t, 4, strings.Count(string(report), "| margin "), "grid rows")
	assert.FileExists(t, filepath.Join(out, "cv", "cv.jsonl"))
	assert.Regexp(t, `Model selection: margin [0-9.]+, dim 128, l2 0, hidden [-6], lr 0.001 chosen, mean validation AUC [0-9.]+ ± [0-9.]+ over 3 folds`, stdout.String())
	assert.Regexp(t, `Training: refit on the \d+ training and validation pairs for \d+ epochs`, stdout.String())

	g, err := parseGrid("0.5,1", "64,128", "", ";512;512,256", "1e-3")
	require.NoError(t, err)
	assert.Equal(t, &study.Grid{Margins: []float64{0.5, 1}, Dims: []int{64, 128}, Hidden: [][]int{nil, {512}, {512, 256}}, LRs: []float64{1e-3}}, g)
	g, err = parseGrid("", "", "-1,0", "", "")
	require.NoError(t, err, "a negative L2 factor means none")
	assert.Equal(t, []float64{-1, 0}, g.L2s)
	for _, bad := range [][]string{{"-grid-margin", "x"}, {"-grid-dim", "0"}, {"-grid-hidden", ";a"}, {"-cv-folds", "2", "-grid-lr", "1e-3"},
		{"-grid-lr", "1e-3,-1"}, {"-grid-lr", "NaN"}, {"-grid-margin", "Inf"}, {"-grid-margin", "-1"}, {"-grid-l2", "NaN"}} {
		err := run(context.Background(), append(bad, "-out", t.TempDir()), &stdout, &stderr)
		assert.ErrorContains(t, err, bad[0], "flags %q", bad)
	}
}
