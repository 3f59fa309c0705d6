package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
)

// The reference data, relative to this package's folder: the 8 photos of
// the study's examples and a product catalogue.
const (
	photosDir  = "../../../shared/images"
	fashionDir = "../../../shared/fashion"
)

// The generated network of the tests: 8 times narrower than VGG16.
const (
	testSeed    = 1
	testDivisor = 8
	catalogSize = 36 // catalogue items built from ../shared/fashion
)

// fixture is a model on disk, as the command loads it: a head made for
// the test network, a catalogue built from product photos, and the meta CSV.
type fixture struct {
	photos  []string // the 8 photos, sorted
	head    string
	catalog string
	images  string
	meta    string
	cfg     modelConfig
}

var (
	fxOnce sync.Once
	fxNet  *style.Network
)

// testNetwork is the generated network every test uses, built once.
func testNetwork(t testing.TB) *style.Network {
	fxOnce.Do(func() {
		w, err := style.GenerateWeights(style.VGG16, testSeed, testDivisor)
		if err == nil {
			fxNet, err = style.NewNetwork(w, nil)
		}
		if err != nil {
			panic(err)
		}
	})
	return fxNet
}

// photos returns the 8 photos of ../shared/images, or skips the test if
// that folder is absent.
func photos(t testing.TB) []string {
	t.Helper()
	ps, _ := filepath.Glob(filepath.Join(photosDir, "*.jpg"))
	if len(ps) == 0 {
		t.Skipf("skipping: the photos of %s are absent", photosDir)
	}
	require.Len(t, ps, 8, "photos in %s", photosDir)
	sort.Strings(ps)
	return ps
}

// The fixture is built once per test binary, by the first test that asks,
// in a temporary folder that TestMain removes.
var (
	sharedOnce sync.Once
	shared     *fixture
	sharedDir  string
)

func TestMain(m *testing.M) {
	// The program itself, when the test binary is re-executed by
	// TestShutdownExitStatus.
	cli.RunAsMain("SERVE_TEST_MAIN", "serve", main)
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// newFixture returns the tests' model files, or skips the test if the
// reference data is absent. Tests must not modify the files.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	ps := photos(t)
	meta := filepath.Join(fashionDir, "styles.csv")
	if _, err := os.Stat(meta); err != nil {
		t.Skipf("skipping: the product catalogue %s is absent (%v)", fashionDir, err)
	}
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "serve-test-")
		require.NoError(t, err)
		sharedDir = dir
		shared = buildFixture(t, dir, ps, meta)
	})
	if shared == nil {
		t.Fatal("the test model could not be built (see the first test's failure)")
	}
	return shared
}

// buildFixture writes a head and a catalogue for the test network into
// dir. The head is untrained (style.NewSiameseHead), scaled by the largest
// feature of the 8 photos, and its cutoff is the median distance of their
// pairs, so that some pairs are compatible and others not. The catalogue
// holds catalogSize products of ../shared/fashion, spread over its
// styles.csv, embedded by that head.
func buildFixture(t testing.TB, dir string, photos []string, meta string) *fixture {
	t.Helper()
	f := &fixture{photos: photos, meta: meta}
	f.images = filepath.Join(fashionDir, "images")
	net := testNetwork(t)

	var feats [][]float32
	scale := float32(0)
	for _, p := range f.photos {
		img, err := style.LoadImage(context.Background(), p)
		require.NoError(t, err)
		ft, err := net.Features(img)
		require.NoError(t, err)
		feats = append(feats, ft)
		scale = max(scale, slices.Max(ft))
	}
	head, err := style.NewSiameseHead(&style.HeadConfig{
		In: net.FeatureLen(), Out: 32, Seed: 7, Scale: float64(scale), Backbone: net.Backbone(),
	})
	require.NoError(t, err)
	var ds []float64
	for i := range feats {
		for j := i + 1; j < len(feats); j++ {
			d, _, err := head.Compare(feats[i], feats[j])
			require.NoError(t, err)
			ds = append(ds, d)
		}
	}
	sort.Float64s(ds)
	head.Cutoff = ds[len(ds)/2]
	require.Positive(t, head.Cutoff)
	f.head = filepath.Join(dir, "head.safetensors")
	require.NoError(t, head.Save(f.head))

	names, cats := fashionItems(t, f.meta, f.images, catalogSize)
	src, err := style.NewDirSource(f.images)
	require.NoError(t, err)
	defer src.Close()
	cat := &style.Catalog{}
	rep, err := cat.AddImages(context.Background(), src, names, net, head, &style.ExtractOptions{
		Category: func(name string) string { return cats[name] },
	})
	require.NoError(t, err)
	require.Empty(t, rep.Failed)
	f.catalog = filepath.Join(dir, "catalog.bin")
	require.NoError(t, cat.Save(f.catalog))

	f.cfg = modelConfig{
		ModelFlags: cli.ModelFlags{Seed: testSeed, Divisor: testDivisor, Head: f.head,
			Backbone: string(style.VGG16), Conv: "auto"},
		Catalog: f.catalog, Images: f.images, Meta: f.meta,
		IDColumn: "id", NameCol: "productDisplayName", CatCol: "articleType",
	}
	return f
}

// fashionItems returns n image names ("<id>.jpg") spread over styles.csv,
// with their articleType.
func fashionItems(t testing.TB, meta, images string, n int) ([]string, map[string]string) {
	t.Helper()
	fh, err := os.Open(meta)
	require.NoError(t, err)
	defer fh.Close()
	r := csv.NewReader(fh)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	require.NoError(t, err)
	var rows [][]string
	for _, rec := range recs[1:] {
		if _, err := os.Stat(filepath.Join(images, rec[0]+".jpg")); err == nil && len(rec) > 4 {
			rows = append(rows, rec)
		}
	}
	require.GreaterOrEqual(t, len(rows), n)
	names := make([]string, n)
	cats := map[string]string{}
	for i := range n {
		rec := rows[i*len(rows)/n]
		names[i] = rec[0] + ".jpg"
		cats[names[i]] = rec[4]
	}
	return names, cats
}

// load loads the fixture's model, as the command does.
func (f *fixture) load(t testing.TB) *model {
	t.Helper()
	m, err := loadModel(context.Background(), f.cfg)
	require.NoError(t, err)
	t.Cleanup(m.close)
	return m
}

// testConfig is the server configuration of the tests: small limits that
// the photos fit.
func testConfig() serverConfig {
	return serverConfig{MaxUpload: 1 << 20, MaxPixels: 4 << 20, Timeout: 20 * time.Second, Workers: 2, Queue: 8, FetchPrivate: true}
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer serves m (nil: not loaded yet) with cfg on a loopback
// listener.
type testServer struct {
	*httptest.Server
	s   *server
	log *syncBuffer
}

func newTestServer(t testing.TB, m *model, cfg serverConfig, setup func(*server)) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	s := newServer(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if setup != nil {
		setup(s)
	}
	if m != nil {
		s.setModel(m)
	}
	ts := httptest.NewServer(s.handler())
	t.Cleanup(ts.Close)
	return &testServer{Server: ts, s: s, log: logs}
}

// part is a multipart form field: a file if file is set, a value otherwise.
type part struct {
	name, file string
	data       []byte
}

func fileField(t testing.TB, name, path string) part {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return part{name: name, file: filepath.Base(path), data: b}
}

// multipartBody encodes parts as a multipart form.
func multipartBody(t testing.TB, parts ...part) (body *bytes.Buffer, contentType string) {
	t.Helper()
	body = &bytes.Buffer{}
	mw := multipart.NewWriter(body)
	for _, p := range parts {
		if p.file != "" {
			w, err := mw.CreateFormFile(p.name, p.file)
			require.NoError(t, err)
			w.Write(p.data)
		} else {
			require.NoError(t, mw.WriteField(p.name, string(p.data)))
		}
	}
	require.NoError(t, mw.Close())
	return body, mw.FormDataContentType()
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"), "body %s", r.body)
	require.NoError(t, json.Unmarshal(r.body, v), "body %s", r.body)
}

// errorMessage returns the message of a JSON error answer, checking its
// form.
func (r response) errorMessage(t testing.TB) string {
	t.Helper()
	var e map[string]string
	r.json(t, &e)
	require.Len(t, e, 1, "body %s", r.body)
	require.NotEmpty(t, e["error"], "body %s", r.body)
	return e["error"]
}

func do(t testing.TB, c *http.Client, req *http.Request) response {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func post(t testing.TB, url, contentType string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, nil, req)
}

func get(t testing.TB, url string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	return do(t, nil, req)
}

// scoreFiles posts two photos to /api/score.
func scoreFiles(t testing.TB, base, a, b string) response {
	t.Helper()
	body, ct := multipartBody(t, fileField(t, "a", a), fileField(t, "b", b))
	return post(t, base+"/api/score", ct, body)
}
