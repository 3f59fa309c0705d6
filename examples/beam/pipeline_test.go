package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	n := 200
	if testing.Short() {
		n = 60
	}
	photos := fashionImages(t, n)
	dir := t.TempDir()

	// Three photos are served over HTTP, the third one failing with 503 on
	// its first request (the fetch retries); one URL is missing on the
	// server.
	served := map[string][]byte{}
	for _, p := range photos[:3] {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		served["/img/"+filepath.Base(p)] = data
	}
	flaky := "/img/" + filepath.Base(photos[2])
	var flakyHits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := served[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Path == flaky && flakyHits.Add(1) == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
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
	const batch, shards = 8, 4
	runPipeline(t, Config{Input: listPath, Output: out, Model: spec, BatchSize: batch, Shards: shards})
	if flakyHits.Load() != 2 {
		t.Errorf("the URL answering 503 once was requested %d times, want 2", flakyHits.Load())
	}
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

	// Sharding: the manifest lists the four shards, each written (not
	// empty: 200 or 60 photos over four shards), holding exactly the
	// images that hash to it, its catalogue sorted by image.
	man := readManifest(t, out)
	require.Len(t, man.Shards, shards)
	var fromShards []style.Item // the shards' catalogue items, in manifest order
	shardTotal := 0
	for k, sh := range man.Shards {
		require.NotNil(t, sh.Features, "shard %d", k)
		require.NotNil(t, sh.Catalog, "shard %d", k)
		assert.Equal(t, shardDir(k, shards)+"/"+featuresDir, sh.Features.Path)
		assert.Positive(t, sh.Features.Count, "shard %d is empty", k)
		shardTotal += sh.Features.Count
		part, err := style.OpenFeatureStore(filepath.Join(out, filepath.FromSlash(sh.Features.Path)), &style.StoreOptions{ReadOnly: true})
		require.NoError(t, err)
		for i := range part.Len() {
			assert.Equal(t, k, shardOf(part.Name(i), shards), "%s in shard %d", part.Name(i), k)
		}
		require.NoError(t, part.Close())
		pc, err := style.LoadCatalog(filepath.Join(out, filepath.FromSlash(sh.Catalog.Path)))
		require.NoError(t, err)
		assert.Equal(t, sh.Features.Count, pc.Len(), "shard %d: catalogue and store", k)
		for i := range pc.Len() {
			it := pc.Item(i)
			if i > 0 && pc.Item(i-1).ID >= it.ID {
				t.Fatalf("shard %d: catalogue not sorted at %d: %q after %q", k, i, it.ID, pc.Item(i-1).ID)
			}
			fromShards = append(fromShards, it)
		}
	}
	assert.Equal(t, len(want), shardTotal, "the shards hold every good image once")

	// The single-machine path over the same images: a model of its own,
	// the extractor called on one image at a time, the head called
	// directly.
	ref, err := loadModel(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	exp := map[string]Result{}
	src := mapSource{}
	for name, data := range want {
		if data == nil {
			if data, err = os.ReadFile(name); err != nil {
				t.Fatal(err)
			}
		}
		exp[name] = singleMachine(t, ref, name, data)
		src[name] = data
	}
	// And the library's single-process extraction: style.ExtractFeatures
	// into one feature store, Catalog.AddImages into one catalogue.
	names := slices.Sorted(maps.Keys(want))
	refStore, err := style.OpenFeatureStore(filepath.Join(dir, "ref"), &style.StoreOptions{Dim: ref.ext.FeatureLen(), Backbone: ref.ext.Backbone()})
	require.NoError(t, err)
	defer refStore.Close()
	rep, err := style.ExtractFeatures(context.Background(), refStore, src, ref.ext, names, nil)
	require.NoError(t, err)
	require.Empty(t, rep.Failed)
	refCat := &style.Catalog{}
	rep, err = refCat.AddImages(context.Background(), src, names, ref.ext, ref.head, nil)
	require.NoError(t, err)
	require.Empty(t, rep.Failed)

	// The pipeline's output, opened as one through the folder and through
	// the manifest: every good image exactly once, bit for bit the
	// single-process store's vector (the VGG16 gives the same features
	// however images are batched, and both round them to float16 the same
	// way). Against the float32 features of the single-machine path, the
	// tolerance is 5e-4 relative: float16 rounding moves each value by at
	// most 2^-11 (4.9e-4) relative (less below 6.1e-5), so the whole vector
	// too.
	for _, path := range []string{out, filepath.Join(out, manifestName)} {
		store, err := style.OpenFeatureStore(path, &style.StoreOptions{ReadOnly: true})
		require.NoError(t, err, path)
		if store.Len() != len(want) {
			t.Errorf("feature store holds %d vectors, want %d", store.Len(), len(want))
		}
		if store.Backbone() != ref.ext.Backbone() {
			t.Errorf("feature store backbone %+v, want %+v", store.Backbone(), ref.ext.Backbone())
		}
		got := make([]float32, store.Dim())
		refVec := make([]float32, refStore.Dim())
		worstStore, differ := 0.0, 0
		for name := range want {
			i, ok := store.Index(name)
			if !ok {
				t.Errorf("%s missing from the feature store", name)
				continue
			}
			j, ok := refStore.Index(name)
			require.True(t, ok, name)
			store.FeatureTo(got, i)
			refStore.FeatureTo(refVec, j)
			if !sameBits(got, refVec) {
				differ++
				t.Errorf("%s: stored features differ from the single-process store's (relative error %.3g)", name, relErr(got, refVec))
			}
			e := relErr(got, exp[name].Features)
			worstStore = max(worstStore, e)
			if e > 5e-4 {
				t.Errorf("%s: stored features differ from the single-machine path: relative error %.3g", name, e)
			}
		}
		require.NoError(t, store.Close())

		// The catalogue of embeddings: every good image once, the shards'
		// items in manifest order, with its category, each embedding bit for
		// bit the one Catalog.AddImages computes, and equal to the head
		// applied to the extractor's features. Tolerance 1e-5 relative: both
		// sides are float32 products of the same inputs, batched differently
		// (a few ulps), far below any real difference.
		cat, err := style.LoadCatalog(path)
		require.NoError(t, err, path)
		if cat.Len() != len(want) || cat.Dim() != testHeadOut {
			t.Fatalf("catalogue of %d items of %d values, want %d of %d", cat.Len(), cat.Dim(), len(want), testHeadOut)
		}
		worstEmb := 0.0
		for i := range cat.Len() {
			it := cat.Item(i)
			assert.Equal(t, fromShards[i], it, "item %d: the shards' items in manifest order", i)
			ref, ok := exp[it.ID]
			if !ok {
				t.Fatalf("unexpected catalogue item %q", it.ID)
			}
			if it.Category != wantCat[it.ID] {
				t.Errorf("%s: category %q, want %q", it.ID, it.Category, wantCat[it.ID])
			}
			j, ok := refCat.Index(it.ID)
			require.True(t, ok, it.ID)
			if r := refCat.Item(j).Embedding; !sameBits(it.Embedding, r) {
				t.Errorf("%s: embedding differs from Catalog.AddImages's (relative error %.3g)", it.ID, relErr(it.Embedding, r))
			}
			e := relErr(it.Embedding, ref.Embedding)
			worstEmb = max(worstEmb, e)
			if e > 1e-5 {
				t.Errorf("%s: embedding differs from the single-machine path: relative error %.3g", it.ID, e)
			}
		}
		t.Logf("%s: %d images: worst relative error %.3g (feature store), %.3g (embeddings); %d vectors not bit for bit", path, len(want), worstStore, worstEmb, differ)
	}
}

// mapSource serves images from memory, by name.
type mapSource map[string][]byte

func (m mapSource) Open(_ context.Context, name string) (io.ReadCloser, error) {
	data, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// sameBits tells whether a and b hold the same float32 bits.
func sameBits(a, b []float32) bool {
	return len(a) == len(b) && slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// readManifest reads the manifest of a pipeline output.
func readManifest(t testing.TB, out string) manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, manifestName))
	require.NoError(t, err)
	var m manifest
	require.NoError(t, json.Unmarshal(data, &m))
	assert.Equal(t, manifestFormat, m.Format)
	return m
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
	runPipeline(t, Config{Input: imgDir, Output: out, Model: ModelSpec{Weights: "generated:narrow:7"}, BatchSize: 5, Shards: 3})
	store, err := style.OpenFeatureStore(out, &style.StoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if store.Len() != len(photos) {
		t.Errorf("feature store holds %d vectors, want %d", store.Len(), len(photos))
	}
	for _, p := range photos {
		if _, ok := store.Index(filepath.Join(imgDir, filepath.Base(p))); !ok {
			t.Errorf("%s missing from the feature store", p)
		}
	}
	for k, sh := range readManifest(t, out).Shards {
		assert.Nil(t, sh.Catalog, "shard %d: a catalogue without a head", k)
		if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(shardDir(k, 3)), catalogFile)); !os.IsNotExist(err) {
			t.Errorf("a catalogue was written without a head (stat: %v)", err)
		}
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

// fileState is what a rerun must not change in a file it keeps.
type fileState struct {
	info os.FileInfo
	data []byte
}

// shardFiles returns the files of every shard of the output, by path
// relative to it.
func shardFiles(t *testing.T, out string) map[string]fileState {
	t.Helper()
	files := map[string]fileState{}
	root := filepath.Join(out, shardsDir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(out, p)
		files[filepath.ToSlash(rel)] = fileState{info, data}
		return err
	})
	require.NoError(t, err)
	return files
}

// outputContent reads a pipeline output back through the library, as
// one store and one catalogue: the float32 bits of every vector and
// every catalogue item.
func outputContent(t *testing.T, out string) (map[string][]uint32, []style.Item) {
	t.Helper()
	store, err := style.OpenFeatureStore(out, nil)
	require.NoError(t, err)
	defer store.Close()
	vecs := map[string][]uint32{}
	v := make([]float32, store.Dim())
	for i := range store.Len() {
		store.FeatureTo(v, i)
		bits := make([]uint32, len(v))
		for j, x := range v {
			bits[j] = math.Float32bits(x)
		}
		vecs[store.Name(i)] = bits
	}
	cat, err := style.LoadCatalog(out)
	require.NoError(t, err)
	items := make([]style.Item, cat.Len())
	for i := range items {
		items[i] = cat.Item(i)
	}
	return vecs, items
}

// TestPipelineRerunRewritesOnlyBrokenShard runs the pipeline, then again
// into the same output after breaking it in several ways: each rerun
// computes and rewrites only the shards that are broken or stale, keeps
// the other shards' files as they were (same inode, modification time
// and bytes), and leaves an output that opens as one store and one
// catalogue equal to the first run's.
func TestPipelineRerunRewritesOnlyBrokenShard(t *testing.T) {
	photos := fashionImages(t, 31)
	dir := t.TempDir()
	var list []string
	for i, p := range photos[:30] {
		a, err := filepath.Abs(p)
		require.NoError(t, err)
		if i%4 == 0 {
			a += "\tcategory"
		}
		list = append(list, a)
	}
	listPath := filepath.Join(dir, "list.txt")
	writeList := func() {
		require.NoError(t, os.WriteFile(listPath, []byte(strings.Join(list, "\n")+"\n"), 0o644))
	}
	writeList()
	spec := ModelSpec{Weights: "generated:narrow:7", Workers: 1}
	spec.Head = saveTestHead(t, dir, spec)
	out := filepath.Join(dir, "out")
	const shards = 3
	cfg := Config{Input: listPath, Output: out, Model: spec, BatchSize: 4, Shards: shards}
	runPipeline(t, cfg)
	man := readManifest(t, out)
	require.Len(t, man.Shards, shards)
	counts := make([]int, shards)
	for k, sh := range man.Shards {
		counts[k] = sh.Features.Count
		require.Positive(t, counts[k], "shard %d is empty", k)
	}
	wantVecs, wantItems := outputContent(t, out)
	require.Len(t, wantVecs, 30)
	complete := slices.Sorted(maps.Keys(shardFiles(t, out)))
	require.Len(t, complete, 5*shards, "each shard: store (2 files), catalogue, dead letters and summary")

	// rerun runs the pipeline again and checks that it computed the images
	// of the shards rewrite and no other, kept the other shards' files
	// untouched, and rewrote those of rewrite.
	rerun := func(what string, rewrite ...int) {
		t.Helper()
		before := shardFiles(t, out)
		seen := imagesSeen.Load()
		runPipeline(t, cfg)
		after := shardFiles(t, out)
		want := 0
		for _, k := range rewrite {
			want += counts[k]
		}
		assert.Equal(t, int64(want), imagesSeen.Load()-seen, "%s: images computed again", what)
		for name, b := range before {
			k, err := strconv.Atoi(strings.TrimPrefix(name, shardsDir+"/")[:5])
			require.NoError(t, err, name)
			a, ok := after[name]
			switch {
			case slices.Contains(rewrite, k):
				if ok {
					assert.False(t, os.SameFile(a.info, b.info), "%s: %s was not rewritten", what, name)
				}
			case !ok:
				t.Errorf("%s: %s of a sound shard was removed", what, name)
			default:
				assert.True(t, os.SameFile(a.info, b.info), "%s: %s of a sound shard was replaced", what, name)
				assert.Equal(t, b.info.ModTime(), a.info.ModTime(), "%s: %s of a sound shard was modified", what, name)
				assert.Equal(t, b.data, a.data, "%s: %s of a sound shard changed", what, name)
			}
		}
		for _, k := range rewrite {
			_, ok := after[shardDir(k, shards)+"/"+summaryFile]
			assert.True(t, ok, "%s: shard %d has a summary", what, k)
		}
		assert.Equal(t, complete, slices.Sorted(maps.Keys(after)), "%s: the shards hold the files of a complete output", what)
		vecs, items := outputContent(t, out)
		assert.Equal(t, wantVecs, vecs, "%s: the features read back", what)
		assert.Equal(t, wantItems, items, "%s: the catalogue read back", what)
	}

	rerun("nothing broken")

	// One byte of a vector of shard 1: the library refuses the output,
	// the rerun rewrites that shard only.
	f16 := filepath.Join(out, filepath.FromSlash(man.Shards[1].Features.Path), "features.f16")
	data, err := os.ReadFile(f16)
	require.NoError(t, err)
	data[len(data)-100] ^= 0x10
	require.NoError(t, os.WriteFile(f16, data, 0o644))
	_, err = style.OpenFeatureStore(out, nil)
	require.ErrorContains(t, err, "checksum mismatch", "a corrupt shard")
	rerun("a corrupt byte in shard 1", 1)

	// Shard 2's catalogue deleted, and shard 0's whole folder.
	require.NoError(t, os.Remove(filepath.Join(out, filepath.FromSlash(man.Shards[2].Catalog.Path))))
	require.NoError(t, os.RemoveAll(filepath.Join(out, filepath.FromSlash(shardDir(0, shards)))))
	_, err = style.LoadCatalog(out)
	require.ErrorIs(t, err, fs.ErrNotExist, "a missing shard")
	rerun("shard 2's catalogue and shard 0 deleted", 0, 2)

	// A new image in the list: its shard is stale (written for other
	// images) and is rewritten with it, the others are kept.
	a, err := filepath.Abs(photos[30])
	require.NoError(t, err)
	list = append(list, a)
	writeList()
	k := shardOf(a, shards)
	counts[k]++
	wantVecs, wantItems = nil, nil
	seen := imagesSeen.Load()
	before := shardFiles(t, out)
	runPipeline(t, cfg)
	assert.Equal(t, int64(counts[k]), imagesSeen.Load()-seen, "a new image: only its shard is computed again")
	after := shardFiles(t, out)
	for name, b := range before {
		if !strings.HasPrefix(name, shardDir(k, shards)+"/") {
			assert.True(t, os.SameFile(after[name].info, b.info), "a new image: %s of another shard was replaced", name)
		}
	}
	vecs, items := outputContent(t, out)
	assert.Len(t, vecs, 31)
	assert.Len(t, items, 31)
}

var benchWeights = flag.String("bench.weights", "generated:narrow:1",
	"weights for BenchmarkPipeline: generated:narrow:SEED, generated:full:SEED (real VGG16 size) or a weight file")

// BenchmarkPipeline measures the throughput of the whole pipeline on Prism
// (list, load, decode, features, write) in images per second. Run it with
// -cpu=1,2 for one and two cores: the SDK worker is this process, its
// bundles run in parallel and each forward pass uses GOMAXPROCS goroutines.
// -bench.weights=generated:full:1 gives the cost of a real-size VGG16.
func BenchmarkPipeline(b *testing.B) {
	n := 32
	if strings.HasPrefix(*benchWeights, "generated:narrow") {
		n = 200
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
	spec := ModelSpec{Weights: *benchWeights}
	if _, err := sharedModel(context.Background(), spec); err != nil { // load outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		runPipeline(b, Config{Input: listPath, Output: filepath.Join(dir, fmt.Sprint("out", i)), Model: spec})
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}

// TestModelSpecCheck checks the validation done before a job is submitted.
func TestModelSpecCheck(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.safetensors")
	for _, tc := range []struct {
		spec ModelSpec
		ok   bool
	}{
		{ModelSpec{Weights: "generated:narrow:1"}, true},
		{ModelSpec{Weights: "generated:full:42", Workers: 2}, true},
		{ModelSpec{Weights: "gs://bucket/vgg16.safetensors"}, true}, // checked by the workers
		{ModelSpec{Weights: "generated:wide:1"}, false},
		{ModelSpec{Weights: "generated:narrow:x"}, false},
		{ModelSpec{Weights: "generated:narrow"}, false},
		{ModelSpec{Weights: missing}, false},
		{ModelSpec{Weights: "generated:narrow:1", Head: missing}, false},
		{ModelSpec{Weights: "generated:narrow:1", Workers: -1}, false},
	} {
		if err := tc.spec.Check(); (err == nil) != tc.ok {
			t.Errorf("%+v: Check() = %v, want ok=%v", tc.spec, err, tc.ok)
		}
	}
}

// TestHeadOfAnotherBackbone checks that a head trained on other features is
// refused when the model loads, not silently applied.
func TestHeadOfAnotherBackbone(t *testing.T) {
	dir := t.TempDir()
	spec := ModelSpec{Weights: "generated:narrow:7"}
	spec.Head = saveTestHead(t, dir, ModelSpec{Weights: "generated:narrow:7"})
	if _, err := loadModel(context.Background(), spec); err != nil {
		t.Fatalf("head of the same backbone: %v", err)
	}
	// The same network shape, but the head records another weight file.
	h, err := style.LoadHead(spec.Head)
	if err != nil {
		t.Fatal(err)
	}
	h.Backbone.SHA256 = strings.Repeat("ab", 32)
	other := filepath.Join(dir, "other.safetensors")
	if err := h.Save(other); err != nil {
		t.Fatal(err)
	}
	spec.Head = other
	_, err = loadModel(context.Background(), spec)
	if !errors.Is(err, style.ErrBackboneMismatch) {
		t.Fatalf("head of another backbone: err = %v, want ErrBackboneMismatch", err)
	}
}

// TestLoadWeightFile loads the narrow VGG16 checkpoint of the shared golden
// data through the pipeline's model loader: the backbone must carry the
// file's SHA-256, so that heads and stores can be checked against it.
func TestLoadWeightFile(t *testing.T) {
	const path = "../../../shared/golden/vgg16_narrow_tv.safetensors"
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("%s is absent: the shared golden weights are needed for this test", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadModel(context.Background(), ModelSpec{Weights: path, WeightsDivisor: 8})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ext.FeatureLen(); got != 64*7*7 {
		t.Errorf("FeatureLen = %d, want %d", got, 64*7*7)
	}
	if got, want := m.ext.Backbone().SHA256, fmt.Sprintf("%x", sha256.Sum256(data)); got != want {
		t.Errorf("backbone SHA-256 %q, want %q", got, want)
	}
}

// TestCheckShardListsOwnFiles: a shard is kept only if its summary lists
// the files the pipeline writes under their own names; one whose summary
// names a file outside the shard folder, even with its right SHA-256, is
// written again (the library would refuse such a path in the manifest).
func TestCheckShardListsOwnFiles(t *testing.T) {
	ctx := context.Background()
	out := t.TempDir()
	rel := shardDir(0, 1)
	require.NoError(t, os.MkdirAll(filepath.Join(out, filepath.FromSlash(rel)), 0o755))
	fails := []byte(`{"image":"a.jpg"}` + "\n")
	_, entriesSum := entriesDigest([]string{"a.jpg"})
	check := func(failuresPath string) string {
		t.Helper()
		require.NoError(t, os.WriteFile(filepath.Join(out, filepath.FromSlash(failuresPath)), fails, 0o644))
		s := shardSummary{
			Format: summaryFormat, Version: formatVersion, Shard: 0, Shards: 1, Model: "m",
			Entries: 1, EntriesSHA256: entriesSum,
			manifestShard: manifestShard{Failures: &manifestFile{Path: failuresPath, Count: 1, SHA256: fmt.Sprintf("%x", sha256.Sum256(fails))}},
		}
		data, err := json.Marshal(s)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(out, filepath.FromSlash(rel), summaryFile), data, 0o644))
		got, why := checkShard(ctx, out, 0, 1, "m", false, false, 1, entriesSum)
		if why == "" {
			assert.Equal(t, &s, got)
		}
		return why
	}
	assert.Empty(t, check(rel+"/"+failuresFile), "a sound shard is kept")
	assert.Contains(t, check(rel+"/../../outside.jsonl"), "does not list the files this run writes")
	assert.Contains(t, check(rel+"/other.jsonl"), "does not list the files this run writes")
}
