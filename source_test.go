package style

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testPNG returns a small PNG whose pixels depend on seed.
func testPNG(t testing.TB, seed int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 8, 6))
	for i := range img.Pix {
		img.Pix[i] = uint8(i*seed + seed)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDirSource(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "images")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := testPNG(t, 3)
	for _, p := range []string{"a.png", "sub/b.png"} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(parent, "secret.png"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	symlinks := os.Symlink(filepath.Join(parent, "secret.png"), filepath.Join(dir, "link.png")) == nil &&
		os.Symlink("a.png", filepath.Join(dir, "inside.png")) == nil
	src, err := NewDirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()

	for _, name := range []string{"a.png", "sub/b.png"} {
		img, err := OpenImage(ctx, src, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Bounds() != image.Rect(0, 0, 8, 6) {
			t.Fatalf("%s: bounds %v", name, img.Bounds())
		}
	}
	escapes := []string{"../secret.png", "sub/../../secret.png", filepath.Join(parent, "secret.png"), "/etc/passwd", "", ".", "a\x00.png"}
	if symlinks {
		escapes = append(escapes, "link.png")
		if _, err := OpenImage(ctx, src, "inside.png"); err != nil {
			t.Errorf("symlink inside the folder: %v", err)
		}
	}
	for _, name := range escapes {
		rc, err := src.Open(ctx, name)
		if err == nil {
			rc.Close()
			t.Errorf("%q: opened a name escaping the folder", name)
		} else if !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: got %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := src.Open(ctx, "missing.png"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
	if _, err := src.Open(ctx, "sub"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("folder: got %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := src.Open(cctx, "a.png"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
	if _, err := NewDirSource(filepath.Join(parent, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing folder: got %v", err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := OpenImage(ctx, src, "flaky.png"); err != nil || srv.count("flaky.png") != 2 {
		t.Errorf("500 then 200: err %v after %d requests, want success after 2", err, srv.count("flaky.png"))
	}
	if _, err := OpenImage(ctx, src, "busy.png"); err != nil || srv.count("busy.png") != 3 {
		t.Errorf("429 twice: err %v after %d requests, want success after 3", err, srv.count("busy.png"))
	}
	_, err = src.Open(ctx, "gone.png")
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 404 || !errors.Is(err, fs.ErrNotExist) || srv.count("gone.png") != 1 {
		t.Errorf("404: got %v after %d requests, want a not-exist HTTPError after 1", err, srv.count("gone.png"))
	}
	if _, err := src.Open(ctx, "forbidden.png"); !errors.As(err, &he) || he.StatusCode != 403 || srv.count("forbidden.png") != 1 {
		t.Errorf("403: got %v after %d requests, want no retry", err, srv.count("forbidden.png"))
	}
	_, err = src.Open(ctx, "down.png")
	if !errors.As(err, &he) || he.StatusCode != 502 || srv.count("down.png") != 3 || !strings.Contains(err.Error(), "3 attempts") {
		t.Errorf("502 always: got %v after %d requests, want failure after 3 attempts", err, srv.count("down.png"))
	}
	// Names are path-escaped: they cannot reach other paths of the server.
	if got := src.URL("a/../b c+%.jpg"); got != srv.URL+"/img/a%2F..%2Fb%20c+%25.jpg" {
		t.Errorf("URL: got %s", got)
	}
	for _, name := range []string{"", "..", "a\nb"} {
		if _, err := src.Open(ctx, name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: got %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := NewURLSource("ftp://example.com/", nil); err == nil {
		t.Error("ftp prefix accepted")
	}
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
	opts.Timeout = 50 * time.Millisecond
	src, err := NewURLSource(srv.URL+"/img/", opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The first attempt hangs and times out; the retry succeeds.
	if _, err := OpenImage(ctx, src, "slow.png"); err != nil || srv.count("slow.png") != 2 {
		t.Errorf("slow then fast: %v after %d requests", err, srv.count("slow.png"))
	}
	// Every attempt hangs: the error is a timeout after 3 attempts.
	start := time.Now()
	_, err = src.Open(ctx, "never.png")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || srv.count("never.png") != 3 {
		t.Errorf("always slow: got %v after %d requests, want a deadline error after 3", err, srv.count("never.png"))
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("always slow took %v; the 50 ms timeout was not applied", d)
	}
	// Cancelling the caller's context stops at once, without retries.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	before := srv.count("never.png")
	if _, err := src.Open(cctx, "never.png"); !errors.Is(err, context.DeadlineExceeded) || srv.count("never.png") != before+1 {
		t.Errorf("cancelled: got %v after %d more requests", err, srv.count("never.png")-before)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"big.png", "stream.png"} {
		if _, err := src.Open(context.Background(), name); !errors.Is(err, ErrImageTooLarge) || srv.count(name) != 1 {
			t.Errorf("%s: got %v after %d requests, want ErrImageTooLarge after 1", name, err, srv.count(name))
		}
	}
}

func TestURLSourceCache(t *testing.T) {
	srv := newImageServer(t, nil)
	cache := filepath.Join(t.TempDir(), "cache")
	opts := fastURLOptions()
	opts.CacheDir = cache
	src, err := NewURLSource(srv.URL+"/img/", opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := "41HZc+sfEUL._SX395_.jpg"
	for i := 0; i < 3; i++ {
		rc, err := src.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, srv.data) {
			t.Fatalf("fetch %d: wrong bytes", i)
		}
	}
	if n := srv.count(name); n != 1 {
		t.Fatalf("%d requests for three opens, want 1 (cache)", n)
	}
	if data, err := os.ReadFile(src.CachePath(name)); err != nil || !bytes.Equal(data, srv.data) {
		t.Fatalf("cache file: %v", err)
	}
	// A new source on the same cache, with the server gone, still works.
	srv.Close()
	src2, err := NewURLSource(srv.URL+"/img/", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenImage(ctx, src2, name); err != nil {
		t.Fatalf("cached image without network: %v", err)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(cache)
	if len(ents) != 1 {
		t.Fatalf("cache holds %d files, want 1", len(ents))
	}
}

func TestURLSourceConcurrency(t *testing.T) {
	srv := newImageServer(t, func(w http.ResponseWriter, name string, n int) bool {
		time.Sleep(5 * time.Millisecond)
		return false
	})
	opts := fastURLOptions()
	opts.Concurrent = 3
	src, err := NewURLSource(srv.URL+"/img/", opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := OpenImage(context.Background(), src, string(rune('a'+i))+".png"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if m := srv.maxIn.Load(); m > 3 || m < 1 {
		t.Fatalf("%d requests in flight at once, want at most 3", m)
	}
}

func TestPrefetch(t *testing.T) {
	srv := newImageServer(t, func(w http.ResponseWriter, name string, n int) bool {
		if name == "gone.jpg" {
			http.NotFound(w, nil)
			return true
		}
		return false
	})
	opts := fastURLOptions()
	opts.CacheDir = t.TempDir()
	src, err := NewURLSource(srv.URL+"/img/", opts)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("%02d.jpg", i))
	}
	names = append(names, "gone.jpg", names[3])
	var last Progress
	failed, err := Prefetch(context.Background(), src, names, &PrefetchOptions{Workers: 4, Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0].Name != "gone.jpg" || !errors.Is(failed[0].Err, fs.ErrNotExist) {
		t.Fatalf("failures %v", failed)
	}
	if last.Stage != "download" || last.Done != 21 || last.Total != 21 {
		t.Fatalf("last progress %+v", last)
	}
	srv.Close()
	for _, n := range names[:20] {
		if srv.count(n) != 1 {
			t.Fatalf("%s requested %d times", n, srv.count(n))
		}
		if _, err := OpenImage(context.Background(), src, n); err != nil {
			t.Fatalf("%s not cached: %v", n, err)
		}
	}
}
