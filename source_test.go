package style

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testPNG returns a small PNG whose pixels depend on seed.
func testPNG(t testing.TB, seed int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 8, 6))
	for i := range img.Pix {
		img.Pix[i] = uint8(i*seed + seed)
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

func TestDirSource(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "images")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	data := testPNG(t, 3)
	for _, p := range []string{"a.png", "sub/b.png"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), data, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(parent, "secret.png"), data, 0o644))
	symlinks := os.Symlink(filepath.Join(parent, "secret.png"), filepath.Join(dir, "link.png")) == nil &&
		os.Symlink("a.png", filepath.Join(dir, "inside.png")) == nil
	src, err := NewDirSource(dir)
	require.NoError(t, err)
	defer src.Close()
	ctx := context.Background()

	for _, name := range []string{"a.png", "sub/b.png"} {
		img, err := OpenImage(ctx, src, name)
		require.NoError(t, err, name)
		require.Equal(t, image.Rect(0, 0, 8, 6), img.Bounds(), name)
	}
	escapes := []string{"../secret.png", "sub/../../secret.png", filepath.Join(parent, "secret.png"), "/etc/passwd", "", ".", "a\x00.png"}
	if symlinks {
		escapes = append(escapes, "link.png")
		_, err := OpenImage(ctx, src, "inside.png")
		assert.NoError(t, err, "symlink inside the folder")
	}
	for _, name := range escapes {
		rc, err := src.Open(ctx, name)
		if err == nil {
			rc.Close()
		}
		assert.ErrorIs(t, err, ErrInvalidName, "%q: a name escaping the folder", name)
	}
	_, err = src.Open(ctx, "missing.png")
	assert.ErrorIs(t, err, fs.ErrNotExist, "missing file")
	_, err = src.Open(ctx, "sub")
	assert.ErrorContains(t, err, "not a regular file", "folder")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = src.Open(cctx, "a.png")
	assert.ErrorIs(t, err, context.Canceled, "cancelled")
	_, err = NewDirSource(filepath.Join(parent, "nope"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "missing folder")
}

func TestDirSourceNames(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "images")
	files := []string{"b.jpg", "a.PNG", "z/y.jpeg", "z/x.gif", "a.jpg.txt", "notes.txt", "a/b.png", "a.b/c.jpg", "noext"}
	for _, p := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte("x"), 0o644))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "folder.jpg"), 0o755)) // a folder, not an image
	require.NoError(t, os.WriteFile(filepath.Join(parent, "secret.png"), []byte("x"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(parent, "outside"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(parent, "outside", "o.png"), []byte("x"), 0o644))
	want := []string{"a.PNG", "a.b/c.jpg", "a/b.png", "b.jpg", "z/x.gif", "z/y.jpeg"}
	if os.Symlink(filepath.Join(parent, "secret.png"), filepath.Join(dir, "link.png")) == nil &&
		os.Symlink("b.jpg", filepath.Join(dir, "inside.jpg")) == nil &&
		os.Symlink("missing.jpg", filepath.Join(dir, "broken.jpg")) == nil &&
		os.Symlink(filepath.Join(parent, "outside"), filepath.Join(dir, "out")) == nil {
		// Only the link to a file inside the folder is listed.
		want = []string{"a.PNG", "a.b/c.jpg", "a/b.png", "b.jpg", "inside.jpg", "z/x.gif", "z/y.jpeg"}
	}
	src, err := NewDirSource(dir)
	require.NoError(t, err)
	defer src.Close()
	names, err := src.Names()
	require.NoError(t, err)
	assert.Equal(t, want, names)
	for _, n := range names {
		rc, err := src.Open(context.Background(), n)
		if assert.NoError(t, err, "Open(%q) of a listed name", n) {
			rc.Close()
		}
	}

	// The study's folder of product photos, in name order.
	if fashion, err := NewDirSource("../shared/fashion"); err == nil {
		defer fashion.Close()
		names, err := fashion.Names()
		require.NoError(t, err)
		require.Len(t, names, 3000)
		assert.True(t, slices.IsSorted(names))
		assert.Equal(t, "images/10004.jpg", names[0])
	}
}

func TestLoadImage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "a.png")
	require.NoError(t, os.WriteFile(path, testPNG(t, 2), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.png"), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644))
	img, err := LoadImage(ctx, path)
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 8, 6), img.Bounds())
	_, err = LoadImage(ctx, filepath.Join(dir, "bad.png"))
	assert.ErrorIs(t, err, ErrFormat)

	srv := newImageServer(t, func(w http.ResponseWriter, name string, n int) bool {
		switch name {
		case "gone.png":
			http.Error(w, "no", http.StatusNotFound)
		case "down.png":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "slow.png":
			time.Sleep(200 * time.Millisecond)
			return false
		default:
			return false
		}
		return true
	})
	img, err = LoadImage(ctx, srv.URL+"/img/a.png")
	require.NoError(t, err, "over HTTP")
	assert.Equal(t, image.Rect(0, 0, 8, 6), img.Bounds(), "over HTTP")
	_, err = LoadImage(ctx, srv.URL+"/img/gone.png")
	assert.ErrorIs(t, err, fs.ErrNotExist, "404")
	assert.EqualError(t, err, "style: GET "+srv.URL+"/img/gone.png: 404 Not Found")
	_, err = LoadImage(ctx, srv.URL+"/img/down.png")
	assert.EqualError(t, err, "style: GET "+srv.URL+"/img/down.png: 503 Service Unavailable")
	assert.Equal(t, 1, srv.count("down.png"), "one attempt")
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = LoadImage(tctx, srv.URL+"/img/slow.png")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "style: GET "+srv.URL+"/img/slow.png: ")

	// The size cap, with and without a Content-Length (ErrImageTooLarge
	// for an image, a plain error for a pair list).
	big := newImageServer(t, func(w http.ResponseWriter, name string, n int) bool {
		if name == "stream" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		w.Write(make([]byte, 2000))
		return true
	})
	for _, name := range []string{"sized", "stream"} {
		_, err := openPathOrURL(ctx, big.URL+"/img/"+name, 1000, ErrImageTooLarge)
		assert.ErrorIs(t, err, ErrImageTooLarge, name)
		_, err = openPathOrURL(ctx, big.URL+"/img/"+name, 1000, nil)
		assert.ErrorContains(t, err, "bytes, more than 1000", name)
		assert.NotErrorIs(t, err, ErrImageTooLarge, name)
	}
	rc, err := openPathOrURL(ctx, big.URL+"/img/sized", 2000, nil)
	require.NoError(t, err, "exactly the limit")
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	assert.Len(t, data, 2000)
}

// imageServer serves testPNG images by path, counting requests, with a
// handler hook for failures.
type imageServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests map[string]int
	handle   func(w http.ResponseWriter, name string, n int) bool // true: handled
	data     []byte
	inFlight atomic.Int32
	maxIn    atomic.Int32
}

func newImageServer(t *testing.T, handle func(w http.ResponseWriter, name string, n int) bool) *imageServer {
	s := &imageServer{requests: map[string]int{}, handle: handle, data: testPNG(t, 5)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			m := s.maxIn.Load()
			if in <= m || s.maxIn.CompareAndSwap(m, in) {
				break
			}
		}
		name := strings.TrimPrefix(r.URL.Path, "/img/")
		s.mu.Lock()
		s.requests[name]++
		n := s.requests[name]
		s.mu.Unlock()
		if s.handle != nil && s.handle(w, name, n) {
			return
		}
		w.Write(s.data)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *imageServer) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[name]
}

func fastURLOptions() *URLOptions {
	return &URLOptions{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 2 * time.Second, Attempts: 3}
}

func TestURLSourceRetries(t *testing.T) {
	srv := newImageServer(t, func(w http.ResponseWriter, name string, n int) bool {
		switch {
		case name == "flaky.png" && n == 1:
			http.Error(w, "boom", http.StatusInternalServerError)
		case name == "busy.png" && n <= 2:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case name == "gone.png":
			http.Error(w, "no", http.StatusNotFound)
		case name == "forbidden.png":
			http.Error(w, "no", http.StatusForbidden)
		case name == "down.png":
			http.Error(w, "down", http.StatusBadGateway)
		default:
			return false
		}
		return true
	})
	src, err := NewURLSource(srv.URL+"/img", fastURLOptions())
	require.NoError(t, err)
	ctx := context.Background()
	_, err = OpenImage(ctx, src, "flaky.png")
	assert.NoError(t, err, "500 then 200")
	assert.Equal(t, 2, srv.count("flaky.png"), "500 then 200: success after 2 requests")
	_, err = OpenImage(ctx, src, "busy.png")
	assert.NoError(t, err, "429 twice")
	assert.Equal(t, 3, srv.count("busy.png"), "429 twice: success after 3 requests")
	_, err = src.Open(ctx, "gone.png")
	assert.EqualError(t, err, "style: GET "+srv.URL+"/img/gone.png: 404 Not Found")
	assert.ErrorIs(t, err, fs.ErrNotExist, "404")
	assert.Equal(t, 1, srv.count("gone.png"), "404: no retry")
	_, err = src.Open(ctx, "forbidden.png")
	assert.EqualError(t, err, "style: GET "+srv.URL+"/img/forbidden.png: 403 Forbidden")
	assert.NotErrorIs(t, err, fs.ErrNotExist, "403")
	assert.Equal(t, 1, srv.count("forbidden.png"), "403: no retry")
	_, err = src.Open(ctx, "down.png")
	assert.EqualError(t, err, "style: GET "+srv.URL+"/img/down.png: 502 Bad Gateway (giving up after 3 attempts)")
	assert.Equal(t, 3, srv.count("down.png"), "502 always: failure after 3 attempts")
	// Names are path-escaped: they cannot reach other paths of the server.
	assert.Equal(t, srv.URL+"/img/a%2F..%2Fb%20c+%25.jpg", src.url("a/../b c+%.jpg"))
	for _, name := range []string{"", "..", "a\nb"} {
		_, err := src.Open(ctx, name)
		assert.ErrorIs(t, err, ErrInvalidName, "%q", name)
	}
	_, err = NewURLSource("ftp://example.com/", nil)
	assert.Error(t, err, "ftp prefix accepted")
}

func TestURLSourceTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := newImageServer(t, func(w http.ResponseWriter, name string, n int) bool {
		if name == "slow.png" && n == 1 || name == "never.png" {
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
			return true
		}
		return false
	})
	defer close(release) // lets the handlers return before the server closes
	opts := fastURLOptions()
	// Long enough for a request to reach the server under the race
	// detector on a loaded machine, short enough for three attempts.
	opts.Timeout = 250 * time.Millisecond
	src, err := NewURLSource(srv.URL+"/img/", opts)
	require.NoError(t, err)
	ctx := context.Background()
	// The first attempt hangs and times out; the retry succeeds.
	_, err = OpenImage(ctx, src, "slow.png")
	assert.NoError(t, err, "slow then fast")
	assert.Equal(t, 2, srv.count("slow.png"), "slow then fast: requests")
	// Every attempt hangs: the error is a timeout after 3 attempts.
	start := time.Now()
	_, err = src.Open(ctx, "never.png")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "always slow")
	assert.ErrorContains(t, err, "style: GET "+srv.URL+"/img/never.png: ", "always slow")
	assert.Equal(t, 3, srv.count("never.png"), "always slow: requests")
	assert.Less(t, time.Since(start), 4*time.Second, "always slow: the 250 ms timeout was not applied")
	// Cancelling the caller's context stops at once, without retries.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	before := srv.count("never.png")
	_, err = src.Open(cctx, "never.png")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "cancelled")
	assert.Equal(t, before+1, srv.count("never.png"), "cancelled: one more request")
}

func TestURLSourceSizeCap(t *testing.T) {
	big := bytes.Repeat([]byte{0xff}, 4096)
	srv := newImageServer(t, func(w http.ResponseWriter, name string, n int) bool {
		switch name {
		case "big.png": // with Content-Length
			w.Write(big)
		case "stream.png": // chunked: no Content-Length
			for i := 0; i < 4; i++ {
				w.Write(big[:1024])
				w.(http.Flusher).Flush()
			}
		default:
			return false
		}
		return true
	})
	opts := fastURLOptions()
	opts.MaxBytes = 1000
	src, err := NewURLSource(srv.URL+"/img/", opts)
	require.NoError(t, err)
	for _, name := range []string{"big.png", "stream.png"} {
		_, err := src.Open(context.Background(), name)
		assert.ErrorIs(t, err, ErrImageTooLarge, name)
		assert.Equal(t, 1, srv.count(name), "%s: requests", name)
	}
}

// cachedURLSource returns a source of srv's images with a cache folder,
// its options and the folder.
func cachedURLSource(t *testing.T, srv *imageServer) (*URLSource, *URLOptions, string) {
	cache := filepath.Join(t.TempDir(), "cache")
	opts := fastURLOptions()
	opts.CacheDir = cache
	src, err := NewURLSource(srv.URL+"/img/", opts)
	require.NoError(t, err)
	return src, opts, cache
}

func TestURLSourceCache(t *testing.T) {
	srv := newImageServer(t, nil)
	src, opts, cache := cachedURLSource(t, srv)
	ctx := context.Background()
	name := "41HZc+sfEUL._SX395_.jpg"
	for i := 0; i < 3; i++ {
		rc, err := src.Open(ctx, name)
		require.NoError(t, err)
		got, _ := io.ReadAll(rc)
		rc.Close()
		require.Equal(t, srv.data, got, "fetch %d", i)
	}
	require.Equal(t, 1, srv.count(name), "requests for three opens (cache)")
	data, err := os.ReadFile(src.cachePath(name))
	require.NoError(t, err, "cache file")
	require.Equal(t, srv.data, data, "cache file")
	// A new source on the same cache, with the server gone, still works.
	srv.Close()
	src2, err := NewURLSource(srv.URL+"/img/", opts)
	require.NoError(t, err)
	_, err = OpenImage(ctx, src2, name)
	require.NoError(t, err, "cached image without network")
	// No temporary files are left behind.
	ents, _ := os.ReadDir(cache)
	require.Len(t, ents, 1, "files in the cache")
}

func TestURLSourceConcurrency(t *testing.T) {
	srv := newImageServer(t, func(w http.ResponseWriter, name string, n int) bool {
		time.Sleep(5 * time.Millisecond)
		return false
	})
	opts := fastURLOptions()
	opts.Concurrent = 3
	src, err := NewURLSource(srv.URL+"/img/", opts)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := OpenImage(context.Background(), src, string(rune('a'+i))+".png")
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	m := srv.maxIn.Load()
	assert.True(t, m >= 1 && m <= 3, "%d requests in flight at once, want at most 3", m)
}

// TestURLSourceCacheOnlyImages checks that an answer that is not an image
// is not cached, and that a cached file that is not an image is fetched
// again.
func TestURLSourceCacheOnlyImages(t *testing.T) {
	srv := newImageServer(t, func(w http.ResponseWriter, name string, n int) bool {
		if name == "page.jpg" && n == 1 || name == "html.jpg" {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html><body>Sorry, something went wrong</body></html>"))
			return true
		}
		return false
	})
	src, _, _ := cachedURLSource(t, srv)
	ctx := context.Background()
	var err error

	// An HTML page served as the image is an error naming the URL, and is
	// not kept: the next open asks again, and gets the image.
	_, err = OpenImage(ctx, src, "page.jpg")
	require.ErrorIs(t, err, ErrFormat)
	assert.ErrorContains(t, err, srv.URL+"/img/page.jpg")
	assert.NoFileExists(t, src.cachePath("page.jpg"))
	_, err = OpenImage(ctx, src, "page.jpg")
	require.NoError(t, err, "second open")
	assert.Equal(t, 2, srv.count("page.jpg"))
	_, err = src.Open(ctx, "html.jpg")
	require.ErrorIs(t, err, ErrFormat, "Open")
	assert.NoFileExists(t, src.cachePath("html.jpg"))

	// A cached file that is not an image (cached by an earlier version, or
	// damaged) is dropped and fetched once more, by OpenImage and by Open;
	// one cut short after a valid header is caught by OpenImage's full
	// decode.
	for i, bad := range [][]byte{[]byte("<html>old error page</html>"), srv.data[:len(srv.data)/2]} {
		for _, open := range []string{"OpenImage", "Open"} {
			name := fmt.Sprintf("stale%d-%s.png", i, open)
			require.NoError(t, os.WriteFile(src.cachePath(name), bad, 0o644))
			if open == "OpenImage" {
				_, err = OpenImage(ctx, src, name)
			} else {
				var rc io.ReadCloser
				rc, err = src.Open(ctx, name)
				if err == nil {
					rc.Close()
				}
			}
			require.NoError(t, err, name)
			cached, err := os.ReadFile(src.cachePath(name))
			require.NoError(t, err, name)
			if i == 0 || open == "OpenImage" {
				assert.Equal(t, 1, srv.count(name), "%s: requests", name)
				assert.Equal(t, srv.data, cached, "%s: cache file", name)
			} else {
				// Open checks the header only: the header is valid.
				assert.Equal(t, 0, srv.count(name), "%s: requests", name)
			}
		}
	}
}

// countingClient returns a client that counts its connection attempts.
func countingClient(dials *atomic.Int32) *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// TestURLSourceHostDown checks that a source stops trying a host that
// cannot be reached after a run of consecutive failures.
func TestURLSourceHostDown(t *testing.T) {
	ctx := context.Background()
	t.Run("closed port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close()
		var dials atomic.Int32
		opts := fastURLOptions()
		opts.Client = countingClient(&dials)
		src, err := NewURLSource("http://"+addr+"/img/", opts)
		require.NoError(t, err)
		// 3 attempts per image: the 7th image makes the 20th attempt.
		for i := range 7 {
			_, err = src.Open(ctx, fmt.Sprintf("%d.jpg", i))
			require.Error(t, err)
		}
		assert.EqualValues(t, 20, dials.Load(), "connection attempts")
		assert.ErrorContains(t, err, "style: host "+addr+" unreachable after 20 consecutive failures: ")
		assert.ErrorContains(t, err, "connection refused")
		for i := range 50 {
			_, err = OpenImage(ctx, src, fmt.Sprintf("later%d.jpg", i))
			require.ErrorContains(t, err, "style: host "+addr+" unreachable after 20 consecutive failures: ")
		}
		assert.EqualValues(t, 20, dials.Load(), "connection attempts after the host was taken as down")
	})
	t.Run("hanging server", func(t *testing.T) {
		// A server that accepts connections and never answers, but for
		// ok.png.
		release := make(chan struct{})
		srv := newImageServer(t, func(w http.ResponseWriter, name string, n int) bool {
			if name == "ok.png" {
				return false
			}
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
			return true
		})
		defer close(release)
		opts := fastURLOptions()
		opts.Timeout = 50 * time.Millisecond
		opts.Attempts = 1
		opts.MaxFailures = 4
		src, err := NewURLSource(srv.URL+"/img/", opts)
		require.NoError(t, err)
		open := func(name string) error {
			_, err := src.Open(ctx, name)
			return err
		}
		// 3 timeouts, a success, 3 timeouts: the success reset the count.
		for i := range 3 {
			require.ErrorIs(t, open(fmt.Sprintf("a%d.jpg", i)), context.DeadlineExceeded)
		}
		require.NoError(t, open("ok.png"))
		for i := range 3 {
			err := open(fmt.Sprintf("b%d.jpg", i))
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.NotContains(t, err.Error(), "unreachable")
		}
		// The 4th in a row takes the host down, for good.
		host := strings.TrimPrefix(srv.URL, "http://")
		err = open("c.jpg")
		require.ErrorContains(t, err, "style: host "+host+" unreachable after 4 consecutive failures: ")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, open("ok.png"), "unreachable", "a reachable image after the host was taken as down")
		assert.Equal(t, 1, srv.count("ok.png"), "requests after the host was taken as down")
	})
}
