package style

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// weightServer serves a weight file over HTTP the way a CDN does, with
// Range support, and can misbehave on request.
type weightServer struct {
	content     []byte
	dropAt      int  // if > 0, the first response is cut after this many body bytes
	ignoreRange bool // answer every request with 200 and the whole file
	stall       chan struct{}
	status      int // if != 0, answer every request with this status

	mu     sync.Mutex
	ranges []string // Range header of each request, "" if none
}

func (s *weightServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func (s *weightServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	first := len(s.ranges) == 1
	s.mu.Unlock()
	if s.status != 0 {
		http.Error(w, "no", s.status)
		return
	}
	body := s.content
	if rng := r.Header.Get("Range"); rng != "" && !s.ignoreRange {
		from, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
		if err != nil {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if from >= len(body) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(body)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(body)-1, len(body)))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)-from))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body[from:])
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if first && (s.dropAt > 0 || s.stall != nil) {
		cut := s.dropAt
		if cut == 0 {
			cut = len(body) / 2
		}
		w.Write(body[:cut])
		w.(http.Flusher).Flush()
		if s.stall != nil {
			select {
			case <-s.stall:
			case <-r.Context().Done():
			}
		}
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	w.Write(body)
}

// downloadFixture is a small legacy checkpoint served under a torchvision-
// like name, with its hash prefix.
type downloadFixture struct {
	specs   []pthSpec
	content []byte
	prefix  string
	sum     string
}

func newDownloadFixture(t *testing.T) *downloadFixture {
	specs := vgg16Specs(narrowWidths, false, 5000)
	content := (&pthFile{tensors: specs}).bytes(t)
	h := sha256.Sum256(content)
	sum := hex.EncodeToString(h[:])
	return &downloadFixture{specs: specs, content: content, prefix: sum[:8], sum: sum}
}

func startServer(t *testing.T, s *weightServer) string {
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL + "/models/vgg16-test.pth"
}

func (f *downloadFixture) check(t *testing.T, path, dir string) {
	t.Helper()
	if want := filepath.Join(dir, "vgg16-test.safetensors"); path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	w, err := ReadVGG16Weights(path, testDivisor)
	if err != nil {
		t.Fatal(err)
	}
	checkLayersMatchSpecs(t, w, f.specs)
	if w.Metadata["source"] != "vgg16-test.pth" || w.Metadata["source_sha256"] != f.sum || w.Preprocess != PreprocessTorch {
		t.Errorf("metadata %v", w.Metadata)
	}
	if _, err := os.Stat(filepath.Join(dir, "vgg16-test.pth.part")); !os.IsNotExist(err) {
		t.Errorf("partial download left behind: %v", err)
	}
}

func TestDownloadVGG16ResumeAndCache(t *testing.T) {
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content, dropAt: len(f.content) / 2}
	srv := httptest.NewServer(s)
	defer srv.Close()
	url := srv.URL + "/models/vgg16-test.pth"
	dir := t.TempDir()
	var reports []Progress
	opts := &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor,
		Progress: func(p Progress) { reports = append(reports, p) }}
	path, err := DownloadVGG16(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	f.check(t, path, dir)

	// The dropped first response was resumed with a Range request.
	reqs := s.requests()
	if len(reqs) != 2 || reqs[0] != "" {
		t.Fatalf("requests with Range headers %q, want a plain one then a resume", reqs)
	}
	from, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(reqs[1], "bytes="), "-"))
	if err != nil || from <= 0 || from > s.dropAt {
		t.Errorf("resume Range %q, want bytes=N- with 0 < N <= %d", reqs[1], s.dropAt)
	}
	// Progress is monotonic and ends at the file size.
	for i, p := range reports {
		if p.Stage != "download" || (i > 0 && p.Done < reports[i-1].Done) {
			t.Fatalf("report %d: %+v after %+v", i, p, reports[max(i-1, 0)])
		}
	}
	if last := reports[len(reports)-1]; last.Done != int64(len(f.content)) || last.Total != int64(len(f.content)) {
		t.Errorf("last report %+v, want Done = Total = %d", last, len(f.content))
	}

	// A second call uses the cached conversion without any request, even
	// with the server gone.
	srv.Close()
	path2, err := DownloadVGG16(context.Background(), opts)
	if err != nil || path2 != path {
		t.Fatalf("cached call: %q, %v", path2, err)
	}
	if n := len(s.requests()); n != 2 {
		t.Errorf("cached call made %d more requests", n-2)
	}
}

func TestDownloadVGG16ServerIgnoresRange(t *testing.T) {
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content, ignoreRange: true}
	url := startServer(t, s)
	dir := t.TempDir()
	// A stale partial file with wrong bytes: the server answers the Range
	// request with the whole file, which must replace it.
	if err := os.WriteFile(filepath.Join(dir, "vgg16-test.pth.part"), []byte(strings.Repeat("junk", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := DownloadVGG16(context.Background(), &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor})
	if err != nil {
		t.Fatal(err)
	}
	f.check(t, path, dir)
	if reqs := s.requests(); len(reqs) != 1 || reqs[0] != "bytes=400-" {
		t.Errorf("requests %q, want one with Range bytes=400-", reqs)
	}
}

func TestDownloadVGG16CompletePartial(t *testing.T) {
	// A complete partial file (the process stopped before converting): the
	// server answers 416 and the file is used as it is.
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content}
	url := startServer(t, s)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vgg16-test.pth.part"), f.content, 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := DownloadVGG16(context.Background(), &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor})
	if err != nil {
		t.Fatal(err)
	}
	f.check(t, path, dir)
	if reqs := s.requests(); len(reqs) != 1 || reqs[0] != fmt.Sprintf("bytes=%d-", len(f.content)) {
		t.Errorf("requests %q", reqs)
	}
}

func TestDownloadVGG16HashMismatch(t *testing.T) {
	f := newDownloadFixture(t)
	other := newDownloadFixture(t)
	other.content = append([]byte(nil), f.content...)
	other.content[len(other.content)-1] ^= 1 // same size, different bytes
	s := &weightServer{content: other.content}
	url := startServer(t, s)
	dir := t.TempDir()
	_, err := DownloadVGG16(context.Background(), &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor})
	if err == nil || !strings.Contains(err.Error(), "SHA-256") || !strings.Contains(err.Error(), f.prefix) {
		t.Fatalf("error %v, want a SHA-256 mismatch naming %s", err, f.prefix)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("cache directory holds %v after a failed verification, want nothing", entries)
	}
}

func TestDownloadVGG16Cancel(t *testing.T) {
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content, stall: make(chan struct{})}
	url := startServer(t, s)
	dir := t.TempDir()
	part := filepath.Join(dir, "vgg16-test.pth.part")
	ctx, cancel := context.WithCancel(context.Background())
	opts := &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor}
	errc := make(chan error, 1)
	go func() {
		_, err := DownloadVGG16(ctx, opts)
		errc <- err
	}()
	// Wait until the first half is on disk, then cancel mid-response.
	half := int64(len(f.content) / 2)
	deadline := time.Now().Add(20 * time.Second)
	for fileSize(part) < half {
		if time.Now().After(deadline) {
			t.Fatal("download did not write the first half")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	err := <-errc
	close(s.stall)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if got := fileSize(part); got != half {
		t.Fatalf("partial file has %d bytes after cancellation, want %d", got, half)
	}
	// The next call resumes from there.
	path, err := DownloadVGG16(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	f.check(t, path, dir)
	if reqs := s.requests(); len(reqs) != 2 || reqs[1] != fmt.Sprintf("bytes=%d-", half) {
		t.Errorf("requests %q, want a resume from %d", reqs, half)
	}
}

func TestDownloadVGG16Errors(t *testing.T) {
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content, status: http.StatusNotFound}
	url := startServer(t, s)
	dir := t.TempDir()
	_, err := DownloadVGG16(context.Background(), &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: error %v", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("404 was retried: %d requests", n)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("cache directory holds %v after a failed request, want nothing", entries)
	}
	// Verification cannot be switched off for another URL, and the prefix
	// must be hex.
	for _, o := range []*DownloadOptions{
		{URL: url, CacheDir: dir},
		{URL: url, CacheDir: dir, SHA256Prefix: "xyz"},
	} {
		if _, err := DownloadVGG16(context.Background(), o); err == nil || !strings.Contains(err.Error(), "SHA256Prefix") {
			t.Errorf("%+v: error %v", o, err)
		}
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("invalid options made requests")
	}
}
