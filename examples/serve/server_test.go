package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
)

func TestHealthReady(t *testing.T) {
	f := newFixture(t)
	ts := newTestServer(t, nil, testConfig(), nil)

	resp := get(t, ts.URL+"/healthz")
	assert.Equal(t, http.StatusOK, resp.status)
	var st map[string]string
	resp = get(t, ts.URL+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, resp.status)
	resp.json(t, &st)
	assert.Equal(t, "loading", st["status"])

	// While loading, the endpoints that need the model say so.
	resp = scoreFiles(t, ts.URL, f.photos[0], f.photos[1])
	assert.Equal(t, http.StatusServiceUnavailable, resp.status)
	assert.Equal(t, "1", resp.header.Get("Retry-After"))
	assert.Contains(t, resp.errorMessage(t), "loading")
	for _, path := range []string{"/api/recommend?id=1", "/thumb/1.jpg"} {
		resp = get(t, ts.URL+path)
		assert.Equal(t, http.StatusServiceUnavailable, resp.status, path)
		resp.errorMessage(t)
	}
	resp = get(t, ts.URL+"/")
	assert.Equal(t, http.StatusOK, resp.status)
	assert.Contains(t, string(resp.body), "still loading")

	ts.s.setModel(f.load(t))
	resp = get(t, ts.URL+"/readyz")
	assert.Equal(t, http.StatusOK, resp.status)
	resp.json(t, &st)
	assert.Equal(t, "ready", st["status"])

	ts.s.draining.Store(true)
	resp = get(t, ts.URL+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, resp.status)
	resp.json(t, &st)
	assert.Equal(t, "shutting down", st["status"])
	resp = get(t, ts.URL+"/healthz")
	assert.Equal(t, http.StatusOK, resp.status)
}

// blocker is a beforeExtract hook that holds requests until released,
// telling when each one arrives.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blocker) hook(ctx context.Context) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
}

func TestOverload(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	cfg := testConfig()
	cfg.Workers, cfg.Queue = 1, 1
	b := newBlocker()
	ts := newTestServer(t, m, cfg, func(s *server) { s.beforeExtract = b.hook })

	// The first request holds the worker, the second waits in the queue.
	results := make(chan response, 2)
	go func() { results <- scoreFiles(t, ts.URL, f.photos[0], f.photos[1]) }()
	<-b.entered
	go func() { results <- scoreFiles(t, ts.URL, f.photos[2], f.photos[3]) }()
	require.Eventually(t, func() bool { return len(ts.s.admission) == 2 }, 5*time.Second, time.Millisecond)

	// A third is refused at once, before its body is read.
	resp := scoreFiles(t, ts.URL, f.photos[4], f.photos[5])
	assert.Equal(t, http.StatusServiceUnavailable, resp.status, "%s", resp.body)
	assert.Equal(t, "1", resp.header.Get("Retry-After"))
	assert.Contains(t, resp.errorMessage(t), "overloaded")
	// Requests not extracting features are still served.
	assert.Equal(t, http.StatusOK, get(t, ts.URL+"/api/recommend?id="+m.cat.Item(0).ID).status)

	close(b.release)
	for range 2 {
		resp := <-results
		assert.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	}
	assert.Len(t, ts.s.admission, 0)
	assert.Len(t, ts.s.slots, 0)
}

func TestOverloadNoQueue(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	cfg := testConfig()
	cfg.Workers, cfg.Queue = 1, 0
	b := newBlocker()
	ts := newTestServer(t, m, cfg, func(s *server) { s.beforeExtract = b.hook })
	done := make(chan response)
	go func() { done <- scoreFiles(t, ts.URL, f.photos[0], f.photos[1]) }()
	<-b.entered
	resp := scoreFiles(t, ts.URL, f.photos[2], f.photos[3])
	assert.Equal(t, http.StatusServiceUnavailable, resp.status, "%s", resp.body)
	assert.Contains(t, resp.errorMessage(t), "overloaded")
	close(b.release)
	assert.Equal(t, http.StatusOK, (<-done).status)
}

// TestWaitTimeout: a request that waits for a worker longer than its
// timeout is refused with 503; one whose extraction outlasts the timeout
// gets 504.
func TestWaitTimeout(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	cfg := testConfig()
	cfg.Workers, cfg.Queue, cfg.Timeout = 1, 1, time.Second
	b := newBlocker()
	ts := newTestServer(t, m, cfg, func(s *server) { s.beforeExtract = b.hook })
	first := make(chan response)
	go func() { first <- scoreFiles(t, ts.URL, f.photos[0], f.photos[1]) }()
	<-b.entered
	resp := scoreFiles(t, ts.URL, f.photos[2], f.photos[3])
	assert.Equal(t, http.StatusServiceUnavailable, resp.status, "%s", resp.body)
	assert.Contains(t, resp.errorMessage(t), "no worker became free")

	// The first one's hook returns at its deadline: the extraction
	// stops and the answer is a timeout.
	resp = <-first
	assert.Equal(t, http.StatusGatewayTimeout, resp.status, "%s", resp.body)
	assert.Contains(t, resp.errorMessage(t), "timeout")
	close(b.release)
}

func TestRequestLog(t *testing.T) {
	f := newFixture(t)
	ts := newTestServer(t, f.load(t), testConfig(), nil)
	resp := get(t, ts.URL+"/api/recommend?id=nope")
	require.Equal(t, http.StatusNotFound, resp.status)
	get(t, ts.URL+"/healthz")
	lines := strings.Split(strings.TrimSpace(ts.log.String()), "\n")
	require.Len(t, lines, 2, "one line per request")
	for _, want := range []string{"level=INFO", "msg=request", "method=GET", "path=/api/recommend", "status=404",
		"duration=", "bytes=" + strconv.Itoa(len(resp.body)), "remote=127.0.0.1:", `error="no item \"nope\" in the catalogue"`} {
		assert.Contains(t, lines[0], want)
	}
	assert.Contains(t, lines[1], "path=/healthz status=200")
	assert.NotContains(t, lines[1], "error=")
}

func TestPages(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	ts := newTestServer(t, m, testConfig(), nil)

	resp := get(t, ts.URL+"/")
	require.Equal(t, http.StatusOK, resp.status)
	page := string(resp.body)
	assert.Equal(t, "text/html; charset=utf-8", resp.header.Get("Content-Type"))
	assert.Contains(t, resp.header.Get("Content-Security-Policy"), "default-src 'self'")
	for _, want := range []string{`<html lang="en">`, `<label for="photo-a"`, `<label for="photo-b"`,
		`name="a" type="file"`, `name="b" type="file"`, `src="/static/app.js"`, `aria-live="polite"`, "1 MiB", m.desc} {
		assert.Contains(t, page, want)
	}
	assert.NotContains(t, page, "http://", "no external resources")
	assert.NotContains(t, page, "https://", "no external resources")

	resp = get(t, ts.URL+"/recommend")
	require.Equal(t, http.StatusOK, resp.status)
	page = string(resp.body)
	assert.Contains(t, page, `<datalist id="item-list">`)
	assert.Len(t, regexp.MustCompile(`<option value="[^"]+">`).FindAllString(page, -1), m.cat.Len(), "every item in the picker")
	assert.Equal(t, min(sampleSize, m.cat.Len()), strings.Count(page, `<a href="/recommend?id=`), "the sample to browse")

	id := m.cat.Item(2).ID
	resp = get(t, ts.URL+"/recommend?id="+id+"&k=3&other_category=1")
	require.Equal(t, http.StatusOK, resp.status)
	page = html.UnescapeString(string(resp.body))
	want, err := recommendByID(m, id, 3, true)
	require.NoError(t, err)
	require.Len(t, want, 3)
	for _, it := range want {
		assert.Contains(t, page, `href="/recommend?id=`+it.ID+`&k=3&other_category=1"`)
		assert.Contains(t, page, `<img src="/thumb/`+it.ID+`" alt="`+it.Name+`"`)
		assert.Contains(t, page, fmt.Sprintf("distance %.3f", it.Distance))
	}
	assert.Contains(t, page, "Goes best with "+m.info(id).Name)

	resp = get(t, ts.URL+"/recommend?id=nope")
	assert.Equal(t, http.StatusNotFound, resp.status)
	assert.Contains(t, string(resp.body), `no item &#34;nope&#34; in the catalogue`)

	resp = get(t, ts.URL+"/static/app.js")
	require.Equal(t, http.StatusOK, resp.status)
	assert.Contains(t, resp.header.Get("Content-Type"), "javascript")
	assert.Contains(t, string(resp.body), "/api/score")
	resp = get(t, ts.URL+"/static/style.css")
	require.Equal(t, http.StatusOK, resp.status)
	assert.Contains(t, resp.header.Get("Content-Type"), "text/css")
	assert.Equal(t, http.StatusNotFound, get(t, ts.URL+"/static/").status, "no listing")
	assert.Equal(t, http.StatusNotFound, get(t, ts.URL+"/nothing").status)
}

func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	c, err := parseFlags([]string{"-head", "h.safetensors"}, &stderr)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", c.addr)
	assert.Equal(t, runtime.GOMAXPROCS(0), c.server.Workers)
	assert.Equal(t, int64(16<<20), c.server.MaxUpload)
	assert.Equal(t, 30*time.Second, c.server.Timeout)
	// The default width: the generated network 8 times narrower than VGG16.
	assert.Zero(t, c.model.Divisor)
	assert.Equal(t, 8, cli.GeneratedDivisor)
	c, err = parseFlags(nil, &stderr)
	require.NoError(t, err)
	assert.Equal(t, cli.DefaultHead, c.model.Head, "the head examples/train writes by default")

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-head", ""}, "-head is required"},
		{[]string{"-head", "h", "-weights-divisor", "-1"}, "-weights-divisor -1"},
		{[]string{"-head", "h", "-weights", "w", "-download"}, "exclude each other"},
		{[]string{"-head", "h", "-conv", "fft"}, `-conv "fft"`},
		{[]string{"-head", "h", "-workers", "-1"}, "-workers -1"},
		{[]string{"-head", "h", "-queue", "-1"}, "-queue -1"},
		{[]string{"-head", "h", "-max-upload", "0"}, "-max-upload 0"},
		{[]string{"-head", "h", "-max-upload", "1000000000"}, "-max-upload 1000000000"},
		{[]string{"-head", "h", "-max-pixels", "0"}, "-max-pixels 0"},
		{[]string{"-head", "h", "-timeout", "0s"}, "-timeout 0s"},
		{[]string{"-head", "h", "-log-format", "xml"}, "-log-format"},
		{[]string{"-head", "h", "-images", "dir"}, "give -catalog too"},
		{[]string{"-head", "h", "extra"}, "unexpected arguments"},
	} {
		_, err := parseFlags(tc.args, &stderr)
		require.Error(t, err, "%q", tc.args)
		assert.Contains(t, err.Error(), tc.msg)
		assert.Equal(t, cli.ExitUsage, cli.ExitCode(err, false), "%q", tc.args)
	}
	_, err = parseFlags([]string{"-h"}, &stderr)
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, cli.ExitOK, cli.ExitCode(err, false), "-h exits 0")
	// The model flags are those of every example program.
	for _, f := range []string{"-weights-divisor", "-download", "-backbone", "-conv", "-quiet", "-weights-cache"} {
		assert.Regexp(t, `(?m)^  `+f+`\b`, stderr.String(), "-h lists %s", f)
	}

	// A width the network does not have is refused when the model loads
	// (the server listens before): a usage error naming the flag.
	err = run(t.Context(), []string{"-addr", "127.0.0.1:0", "-head", "h", "-weights-divisor", "3"}, io.Discard, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-weights-divisor 3")
	assert.Equal(t, cli.ExitUsage, cli.ExitCode(err, false))
}

// TestLoadModelMismatch: the command refuses to start with a head or a
// catalogue made for another network.
func TestLoadModelMismatch(t *testing.T) {
	f := newFixture(t)

	// A head for the network 16 times narrower than VGG16.
	h16, err := style.NewSiameseHead(&style.HeadConfig{In: 1568, Out: 8})
	require.NoError(t, err)
	p16 := filepath.Join(t.TempDir(), "h16.safetensors")
	require.NoError(t, h16.Save(p16))
	// A head of the right length for another backbone.
	hOther, err := style.NewSiameseHead(&style.HeadConfig{In: testNetwork(t).FeatureLen(), Out: 8,
		Backbone: style.Backbone{Arch: style.VGG16, Preprocess: style.PreprocessTorch, SHA256: "0123"}})
	require.NoError(t, err)
	pOther := filepath.Join(t.TempDir(), "hother.safetensors")
	require.NoError(t, hOther.Save(pOther))

	for _, tc := range []struct {
		name string
		edit func(*modelConfig)
		msg  string
	}{
		{"head for another width", func(c *modelConfig) { c.Head = p16 }, "takes 1568 features, the network gives 3136"},
		{"head for another backbone", func(c *modelConfig) { c.Head = pOther }, "does not fit this network"},
		{"network of another seed", func(c *modelConfig) { c.Seed = 2 }, "seed 1, width divisor 8), features from"},
		{"invalid divisor", func(c *modelConfig) { c.Divisor = 3 }, "-weights-divisor 3"},
		{"no such -meta column", func(c *modelConfig) { c.NameCol = "title" }, `-name-column "title": no such column in`},
		{"no head", func(c *modelConfig) { c.Head = "" }, "-head is required"},
		{"missing head", func(c *modelConfig) { c.Head = filepath.Join(t.TempDir(), "none") }, "no such file"},
		{"missing catalogue", func(c *modelConfig) { c.Catalog = filepath.Join(t.TempDir(), "none") }, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.cfg
			tc.edit(&cfg)
			_, err := loadModel(t.Context(), cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}

	// A -meta without the default name column: no names, as in the other
	// programs, rather than a refusal.
	t.Run("meta without names", func(t *testing.T) {
		meta := filepath.Join(t.TempDir(), "styles.csv")
		require.NoError(t, os.WriteFile(meta, []byte("id,articleType\n1,Shirts\n"), 0o644))
		cfg := f.cfg
		cfg.Meta = meta
		m, err := loadModel(t.Context(), cfg)
		require.NoError(t, err)
		assert.Empty(t, m.nameCol)
		assert.Equal(t, "articleType", m.catCol)
	})

	// A head that fits the network of seed 2, with the catalogue of the
	// network of seed 1.
	t.Run("catalogue of another network", func(t *testing.T) {
		w, err := style.GenerateWeights(style.VGG16, 2, testDivisor)
		require.NoError(t, err)
		net2, err := style.NewNetwork(w, nil)
		require.NoError(t, err)
		h, err := style.NewSiameseHead(&style.HeadConfig{In: net2.FeatureLen(), Out: 32, Seed: 7, Backbone: net2.Backbone()})
		require.NoError(t, err)
		p := filepath.Join(t.TempDir(), "h2.safetensors")
		require.NoError(t, h.Save(p))
		cfg := f.cfg
		cfg.Seed, cfg.Head = 2, p
		_, err = loadModel(t.Context(), cfg)
		require.ErrorIs(t, err, style.ErrBackboneMismatch)
		assert.Contains(t, err.Error(), "not built with this network and head")
		assert.Contains(t, err.Error(), "style.backbone")
	})

	// A catalogue of another head of the same network.
	t.Run("catalogue of another head", func(t *testing.T) {
		h, err := style.NewSiameseHead(&style.HeadConfig{In: testNetwork(t).FeatureLen(), Out: 32, Seed: 99,
			Backbone: testNetwork(t).Backbone()})
		require.NoError(t, err)
		p := filepath.Join(t.TempDir(), "h.safetensors")
		require.NoError(t, h.Save(p))
		cfg := f.cfg
		cfg.Head = p
		_, err = loadModel(t.Context(), cfg)
		require.ErrorIs(t, err, style.ErrBackboneMismatch)
		assert.Contains(t, err.Error(), "not built with this network and head")
	})

	// run says so and exits.
	var logs syncBuffer
	err = run(t.Context(), []string{"-addr", "127.0.0.1:0", "-head", p16, "-weights-divisor", "8"}, &logs, nil)
	require.ErrorIs(t, err, style.ErrBackboneMismatch)
	assert.Contains(t, err.Error(), "loading the model")
	assert.Contains(t, logs.String(), "msg=stopped")
}

// TestLoad: clients on the loopback, more than the workers and the queue
// take: every request succeeds or is refused cleanly with 503, and no
// goroutine is left behind.
func TestLoad(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	cfg := testConfig()
	cfg.Workers, cfg.Queue = 2, 2
	before := runtime.NumGoroutine()

	func() {
		ts := newTestServer(t, m, cfg, nil)
		defer ts.Close()
		bodies := make([][]byte, 4)
		types := make([]string, 4)
		for i := range bodies {
			body, ct := multipartBody(t, fileField(t, "a", f.photos[2*i]), fileField(t, "b", f.photos[2*i+1]))
			bodies[i], types[i] = body.Bytes(), ct
		}
		const clients, requests = 8, 20
		var mu sync.Mutex
		counts := map[int]int{}
		var wg sync.WaitGroup
		client := ts.Client()
		for c := range clients {
			wg.Go(func() {
				for i := range requests {
					req, err := http.NewRequest(http.MethodPost, ts.URL+"/api/score", bytes.NewReader(bodies[(c+i)%4]))
					if !assert.NoError(t, err) {
						return
					}
					req.Header.Set("Content-Type", types[(c+i)%4])
					resp := do(t, client, req)
					mu.Lock()
					counts[resp.status]++
					mu.Unlock()
					switch resp.status {
					case http.StatusOK:
						var got scoreResult
						resp.json(t, &got)
						assert.Positive(t, got.Distance)
					case http.StatusServiceUnavailable:
						assert.Equal(t, "1", resp.header.Get("Retry-After"))
						assert.Contains(t, resp.errorMessage(t), "overloaded")
					default:
						t.Errorf("status %d: %s", resp.status, resp.body)
					}
				}
			})
		}
		wg.Wait()
		t.Logf("%d clients x %d requests, 2 workers and a queue of 2: %v", clients, requests, counts)
		assert.Equal(t, clients*requests, counts[http.StatusOK]+counts[http.StatusServiceUnavailable])
		assert.Positive(t, counts[http.StatusOK])
		client.CloseIdleConnections()
	}()

	// Every goroutine of the server and the clients ends. (Not with
	// assert.Eventually: it runs its condition on a goroutine of its own.)
	now := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); now > before && time.Now().Before(deadline); now = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	if now > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left, %d before:\n%s", now, before, buf[:runtime.Stack(buf, true)])
	}
}
