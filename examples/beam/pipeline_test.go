package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/stylespace/style"
)

func TestMain(m *testing.M) {
	// Every pipeline of these tests runs on the embedded Prism runner, with
	// the SDK worker inside the test process (loopback).
	ptest.MainWithDefault(m, "prism")
}

// fashionDir is the catalogue of product photos shared by the project's
// tests (see ../shared/README.md), reached from this module's directory.
const fashionDir = "../../../shared/fashion/images"

// fashionImages returns the first n photos of the shared catalogue, skipping
// the test only when the shared data is absent.
func fashionImages(t testing.TB, n int) []string {
	t.Helper()
	entries, err := os.ReadDir(fashionDir)
	if os.IsNotExist(err) {
		t.Skipf("%s is absent: the shared reference photos are needed for this test", fashionDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".jpg") {
			paths = append(paths, filepath.Join(fashionDir, e.Name()))
		}
	}
	if len(paths) < n {
		t.Fatalf("%s has %d photos, want at least %d", fashionDir, len(paths), n)
	}
	return paths[:n]
}

// runPipeline builds and runs the pipeline of cfg on Prism.
func runPipeline(t testing.TB, cfg Config) {
	t.Helper()
	p, s := beam.NewPipelineWithRoot()
	Build(s, cfg)
	if _, err := beam.Run(context.Background(), "prism", p); err != nil {
		t.Fatalf("pipeline failed: %v", err)
	}
}

// singleMachine computes what the pipeline should produce for one image by
// calling the extractor (and head) directly, on a model of its own.
func singleMachine(t testing.TB, m *model, src string, data []byte) Result {
	t.Helper()
	img, err := style.DecodeImage(bytes.NewReader(data), src)
	if err != nil {
		t.Fatalf("decode %s: %v", src, err)
	}
	f, err := m.ext.Features(img)
	if err != nil {
		t.Fatalf("features of %s: %v", src, err)
	}
	r := Result{Image: src, Features: f}
	if m.head != nil {
		r.Embedding = m.head.Embed(f)
	}
	return r
}

const testHeadOut = 16

// saveTestHead writes a randomly initialised head for the features of spec's
// network and returns its path.
func saveTestHead(t testing.TB, dir string, spec ModelSpec) string {
	t.Helper()
	m, err := loadModel(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	h, err := style.NewSiameseHead(&style.HeadConfig{
		In: m.ext.FeatureLen(), Out: testHeadOut, Seed: 3, Scale: 10, Backbone: m.ext.Backbone(),
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "head.safetensors")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// relErr is ||a-b|| / ||b||, or +Inf when the lengths differ.
func relErr(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// TestPipelineMatchesSingleMachine runs the whole pipeline on Prism over a
// few hundred catalogue photos, a few of them served over HTTP, plus a
// corrupt file, a missing file, a URL that answers 404 and a duplicate
// entry, and checks every output vector against the single-machine path.
func TestPipelineMatchesSingleMachine(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 60
	}
	photos := fashionImages(t, n)
	dir := t.TempDir()

	// Three photos are served over HTTP; one URL is missing on the server.
	served := map[string][]byte{}
	for _, p := range photos[:3] {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		served["/img/"+filepath.Base(p)] = data
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := served[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()

	// A truncated JPEG: a valid start, cut after 300 bytes.
	good, err := os.ReadFile(photos[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "corrupt.jpg"), good[:300], 0o644); err != nil {
		t.Fatal(err)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	var list []string
	want := map[string][]byte{} // every image that must succeed, with its bytes
	wantCat := map[string]string{}
	for i, p := range photos {
		name := abs(p)
		if i < 3 {
			name = srv.URL + "/img/" + filepath.Base(p)
			want[name] = served["/img/"+filepath.Base(p)]
		} else {
			want[name] = nil
		}
		if i%5 == 0 { // some entries carry a category after a tab
			wantCat[name] = fmt.Sprintf("category %d", i%3)
			list = append(list, name+"\t"+wantCat[name])
			continue
		}
		list = append(list, name)
	}
	list = append(list,
		"# a comment line, and a blank line, are skipped", "",
		abs(photos[11]), // a duplicate: computed once
		"corrupt.jpg",   // relative to the list's directory
		"missing.jpg",
		srv.URL+"/img/absent.jpg",
	)
	listPath := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(listPath, []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A small generated network and an untrained head for its features.
	spec := ModelSpec{Weights: "generated:narrow:7", Workers: 1}
	spec.Head = saveTestHead(t, dir, spec)
	out := filepath.Join(dir, "out")
	loadsBefore, passesBefore, bundlesBefore := modelLoads.Load(), forwardPasses.Load(), bundles.Load()
	largestBatch.Store(0)
	const batch = 8
	runPipeline(t, Config{Input: listPath, Output: out, Model: spec, BatchSize: batch})
	passes, nb := forwardPasses.Load()-passesBefore, bundles.Load()-bundlesBefore
	t.Logf("%d forward passes in %d bundles, largest batch %d", passes, nb, largestBatch.Load())
	// Batching: full batches of 8, so far fewer forward passes than images
	// (at most one partial batch per bundle).
	if largestBatch.Load() != batch {
		t.Errorf("largest batch %d, want %d", largestBatch.Load(), batch)
	}
	if good := int64(len(photos)); passes > good/batch+nb {
		t.Errorf("%d forward passes for %d images in %d bundles: not batched", passes, good, nb)
	}

	// The model is loaded once per worker process: here the SDK worker is
	// this process, so once for the whole run however many bundles and
	// DoFn instances Prism used.
	if loads := modelLoads.Load() - loadsBefore; loads != 1 {
		t.Errorf("model loaded %d times in the worker process, want once", loads)
	}

	// Dead letters: exactly the four bad entries, with the stage that failed.
	failures, err := ReadFailures(filepath.Join(out, failuresFile))
	if err != nil {
		t.Fatal(err)
	}
	wantFail := map[string]string{
		filepath.Join(dir, "corrupt.jpg"): "decode",
		filepath.Join(dir, "missing.jpg"): "read",
		srv.URL + "/img/absent.jpg":       "read",
	}
	if len(failures) != len(wantFail) {
		t.Errorf("%d failures, want %d: %+v", len(failures), len(wantFail), failures)
	}
	for _, f := range failures {
		stage, ok := wantFail[f.Image]
		if !ok || f.Stage != stage || f.Error == "" {
			t.Errorf("unexpected failure %+v", f)
		}
		t.Logf("dead letter: %s (%s): %s", f.Image, f.Stage, f.Error)
	}
	if !slices.IsSortedFunc(failures, func(a, b Failure) int { return strings.Compare(a.Image, b.Image) }) {
		t.Error("failures are not sorted by image")
	}

	// Results: every good image exactly once, equal to the single-machine
	// path.
	results, err := ReadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d", len(results), len(want))
	}
	ref, err := loadModel(context.Background(), spec) // a model of its own
	if err != nil {
		t.Fatal(err)
	}
	// Tolerance: the pipeline runs batched forward passes, the reference one
	// image at a time; the same arithmetic in another blocking order may
	// round differently, by a few float32 ulps per accumulation (relative
	// error ~1e-6 over the narrow net). 1e-5 leaves margin and still catches
	// any real difference (another image, preprocessing or layer).
	const tol = 1e-5
	worst := 0.0
	for i, r := range results {
		if i > 0 && results[i-1].Image >= r.Image {
			t.Fatalf("results not sorted or duplicated at %d: %q after %q", i, r.Image, results[i-1].Image)
		}
		data, ok := want[r.Image]
		if !ok {
			t.Fatalf("unexpected result for %q", r.Image)
		}
		if data == nil {
			if data, err = os.ReadFile(r.Image); err != nil {
				t.Fatal(err)
			}
		}
		if r.Category != wantCat[r.Image] {
			t.Errorf("%s: category %q, want %q", r.Image, r.Category, wantCat[r.Image])
		}
		exp := singleMachine(t, ref, r.Image, data)
		if len(r.Features) != ref.ext.FeatureLen() {
			t.Fatalf("%s: %d features, want %d", r.Image, len(r.Features), ref.ext.FeatureLen())
		}
		e := relErr(r.Features, exp.Features)
		worst = max(worst, e)
		if e > tol {
			t.Errorf("%s: features differ from the single-machine path: relative error %.3g > %g", r.Image, e, tol)
		}
		if len(r.Embedding) != testHeadOut {
			t.Fatalf("%s: %d embedding values, want %d", r.Image, len(r.Embedding), testHeadOut)
		}
		if e := relErr(r.Embedding, exp.Embedding); e > tol {
			t.Errorf("%s: embedding differs from the single-machine path: relative error %.3g > %g", r.Image, e, tol)
		}
	}
	t.Logf("%d results, worst relative error %.3g", len(results), worst)
}

// TestPipelineDirectoryInput reads the images of a directory and checks the
// batch statistics: the forward passes really were batched.
func TestPipelineDirectoryInput(t *testing.T) {
	photos := fashionImages(t, 24)
	dir := t.TempDir()
	imgDir := filepath.Join(dir, "images")
	if err := os.Mkdir(imgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range photos {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(imgDir, filepath.Base(p)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(imgDir, "notes.txt"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	runPipeline(t, Config{Input: imgDir, Output: out, Model: ModelSpec{Weights: "generated:narrow:7"}, BatchSize: 5})
	results, err := ReadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(photos) {
		t.Errorf("%d results, want %d", len(results), len(photos))
	}
	failures, err := ReadFailures(filepath.Join(out, failuresFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(failures) != 1 || filepath.Base(failures[0].Image) != "notes.txt" || failures[0].Stage != "decode" {
		t.Errorf("failures = %+v, want notes.txt at the decode stage", failures)
	}
}

// TestPipelineBadModel checks that a model that cannot be loaded fails the
// job with a clear error instead of sending every image to the dead letters.
func TestPipelineBadModel(t *testing.T) {
	photos := fashionImages(t, 2)
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	abs0, _ := filepath.Abs(photos[0])
	if err := os.WriteFile(list, []byte(abs0+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	Build(s, Config{Input: list, Output: filepath.Join(dir, "out"), Model: ModelSpec{Weights: "generated:wide:1"}})
	_, err := beam.Run(context.Background(), "prism", p)
	if err == nil || !strings.Contains(err.Error(), "unknown network") {
		t.Fatalf("err = %v, want the model load error", err)
	}
}

var benchWeights = flag.String("bench.weights", "generated:narrow:1",
	"weights for BenchmarkPipeline: generated:narrow:SEED, generated:full:SEED (real VGG16 size) or a weight file")

// BenchmarkPipeline measures the throughput of the whole pipeline on Prism
// (list, load, decode, features, write) with 1 and 2 goroutines per forward
// pass. Use -bench.weights=generated:full:1 for the cost of real VGG16.
func BenchmarkPipeline(b *testing.B) {
	n := 64
	if strings.HasPrefix(*benchWeights, "generated:narrow") {
		n = 512
	}
	photos := fashionImages(b, n)
	dir := b.TempDir()
	var list []string
	for _, p := range photos {
		a, err := filepath.Abs(p)
		if err != nil {
			b.Fatal(err)
		}
		list = append(list, a)
	}
	listPath := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(listPath, []byte(strings.Join(list, "\n")), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			spec := ModelSpec{Weights: *benchWeights, Workers: workers}
			if _, err := sharedModel(context.Background(), spec); err != nil { // load outside the timing
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				runPipeline(b, Config{Input: listPath, Output: filepath.Join(dir, "out"), Model: spec})
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
