package style

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	specs := vgg16Specs(testDivisor, false, 5000)
	content := (&pthFile{tensors: specs}).bytes(t)
	h := sha256.Sum256(content)
	sum := hex.EncodeToString(h[:])
	return &downloadFixture{specs: specs, content: content, prefix: sum[:8], sum: sum}
}

func startServer(t *testing.T, s http.Handler) string {
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL + "/models/vgg16-test.pth"
}

func (f *downloadFixture) check(t *testing.T, path, dir string) {
	t.Helper()
	assert.Equal(t, filepath.Join(dir, "vgg16-test.safetensors"), path)
	w, err := ReadWeights(path, "", testDivisor)
	require.NoError(t, err)
	checkLayersMatchSpecs(t, w, f.specs)
	assert.Equal(t, VGG16, w.Arch)
	assert.Equal(t, PreprocessTorch, w.Preprocess)
	assert.Equal(t, "vgg16-test.pth", w.Metadata["source"], "metadata %v", w.Metadata)
	assert.Equal(t, f.sum, w.Metadata["source_sha256"], "metadata %v", w.Metadata)
	assert.Equal(t, "vgg16", w.Metadata["arch"], "metadata %v", w.Metadata)
	assert.NoFileExists(t, filepath.Join(dir, "vgg16-test.pth.part"), "partial download left behind")
}

func TestDownloadWeightsResumeAndCache(t *testing.T) {
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content, dropAt: len(f.content) / 2}
	srv := httptest.NewServer(s)
	defer srv.Close()
	url := srv.URL + "/models/vgg16-test.pth"
	dir := t.TempDir()
	var reports []Progress
	opts := &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor,
		Progress: func(p Progress) { reports = append(reports, p) }}
	path, err := DownloadWeights(context.Background(), VGG16, opts)
	require.NoError(t, err)
	f.check(t, path, dir)

	// The dropped first response was resumed with a Range request.
	reqs := s.requests()
	require.Len(t, reqs, 2, "requests with Range headers %q, want a plain one then a resume", reqs)
	require.Empty(t, reqs[0], "requests with Range headers %q, want a plain one then a resume", reqs)
	from, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(reqs[1], "bytes="), "-"))
	require.NoError(t, err, "resume Range %q", reqs[1])
	assert.Positive(t, from, "resume Range %q", reqs[1])
	assert.LessOrEqual(t, from, s.dropAt, "resume Range %q", reqs[1])
	// Progress is monotonic and ends at the file size.
	for i, p := range reports {
		if p.Stage != "download" || (i > 0 && p.Done < reports[i-1].Done) {
			t.Fatalf("report %d: %+v after %+v", i, p, reports[max(i-1, 0)])
		}
	}
	last := reports[len(reports)-1]
	assert.Equal(t, int64(len(f.content)), last.Done, "last report")
	assert.Equal(t, int64(len(f.content)), last.Total, "last report")

	// A second call uses the cached conversion without any request, even
	// with the server gone.
	srv.Close()
	path2, err := DownloadWeights(context.Background(), VGG16, opts)
	require.NoError(t, err, "cached call")
	require.Equal(t, path, path2, "cached call")
	assert.Len(t, s.requests(), 2, "the cached call made requests")

	// So does a conversion written before files recorded their
	// architecture; one recording another architecture is not used.
	w, err := ReadWeights(path, VGG16, testDivisor)
	require.NoError(t, err)
	for _, c := range []struct {
		arch string
		ok   bool
	}{{"", true}, {"resnet50", false}} {
		meta := maps.Clone(w.Metadata)
		delete(meta, "arch")
		if c.arch != "" {
			meta["arch"] = c.arch
		}
		require.NoError(t, writeSafetensors(path, vgg16Spec.tensors(w.layers), meta))
		_, err := DownloadWeights(context.Background(), VGG16, opts)
		if c.ok {
			assert.NoError(t, err, "a conversion without arch")
		} else {
			assert.Error(t, err, "a conversion of arch %s, with the server gone", c.arch)
		}
	}
	assert.Len(t, s.requests(), 2)
}

func TestDownloadWeightsServerIgnoresRange(t *testing.T) {
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content, ignoreRange: true}
	url := startServer(t, s)
	dir := t.TempDir()
	// A stale partial file with wrong bytes: the server answers the Range
	// request with the whole file, which must replace it.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vgg16-test.pth.part"), []byte(strings.Repeat("junk", 100)), 0o644))
	path, err := DownloadWeights(context.Background(), VGG16, &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor})
	require.NoError(t, err)
	f.check(t, path, dir)
	assert.Equal(t, []string{"bytes=400-"}, s.requests())
}

func TestDownloadWeightsCompletePartial(t *testing.T) {
	// A complete partial file (the process stopped before converting): the
	// server answers 416 and the file is used as it is.
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content}
	url := startServer(t, s)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vgg16-test.pth.part"), f.content, 0o644))
	path, err := DownloadWeights(context.Background(), VGG16, &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor})
	require.NoError(t, err)
	f.check(t, path, dir)
	assert.Equal(t, []string{fmt.Sprintf("bytes=%d-", len(f.content))}, s.requests())
}

func TestDownloadWeightsHashMismatch(t *testing.T) {
	f := newDownloadFixture(t)
	other := newDownloadFixture(t)
	other.content = append([]byte(nil), f.content...)
	other.content[len(other.content)-1] ^= 1 // same size, different bytes
	s := &weightServer{content: other.content}
	url := startServer(t, s)
	dir := t.TempDir()
	_, err := DownloadWeights(context.Background(), VGG16, &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor})
	require.ErrorContains(t, err, "SHA-256", "a SHA-256 mismatch")
	require.ErrorContains(t, err, f.prefix, "a SHA-256 mismatch naming the prefix")
	entries, _ := os.ReadDir(dir)
	assert.Empty(t, entries, "cache directory after a failed verification")
}

func TestDownloadWeightsCancel(t *testing.T) {
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content, stall: make(chan struct{})}
	url := startServer(t, s)
	dir := t.TempDir()
	part := filepath.Join(dir, "vgg16-test.pth.part")
	ctx, cancel := context.WithCancel(context.Background())
	opts := &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor}
	errc := make(chan error, 1)
	go func() {
		_, err := DownloadWeights(ctx, VGG16, opts)
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
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, half, fileSize(part), "partial file after cancellation")
	assert.ErrorContains(t, err, "partial file "+part+" kept for resuming")
	// The next call resumes from there.
	path, err := DownloadWeights(context.Background(), VGG16, opts)
	require.NoError(t, err)
	f.check(t, path, dir)
	reqs := s.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, fmt.Sprintf("bytes=%d-", half), reqs[1], "a resume")
}

// TestDownloadWeightsCancelBeforeData cancels before any byte arrived: the
// error does not claim a partial file is kept, and none is.
func TestDownloadWeightsCancelBeforeData(t *testing.T) {
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content}
	url := startServer(t, s)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := DownloadWeights(ctx, VGG16, &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor})
	require.ErrorIs(t, err, context.Canceled)
	assert.NotContains(t, err.Error(), "kept")
	entries, _ := os.ReadDir(dir)
	assert.Empty(t, entries, "cache directory after a cancelled download")
}

func TestDownloadWeightsErrors(t *testing.T) {
	f := newDownloadFixture(t)
	s := &weightServer{content: f.content, status: http.StatusNotFound}
	url := startServer(t, s)
	dir := t.TempDir()
	_, err := DownloadWeights(context.Background(), VGG16, &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor})
	assert.ErrorContains(t, err, "404")
	assert.Len(t, s.requests(), 1, "404 was retried")
	entries, _ := os.ReadDir(dir)
	assert.Empty(t, entries, "cache directory after a failed request")
	// Verification cannot be switched off for another URL, and the prefix
	// must be hex.
	for _, o := range []*DownloadOptions{
		{URL: url, CacheDir: dir},
		{URL: url, CacheDir: dir, SHA256Prefix: "xyz"},
	} {
		_, err := DownloadWeights(context.Background(), VGG16, o)
		assert.ErrorContains(t, err, "SHA256Prefix", "%+v", o)
	}
	_, err = DownloadWeights(context.Background(), "vgg19", &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir})
	assert.ErrorContains(t, err, `unknown architecture "vgg19"`)
	assert.Len(t, s.requests(), 1, "invalid options made requests")
}

// slowServer serves content the way a broken server might: hanging before
// the response, hanging after the first part of the body, trickling a byte
// at a time, or sending an endless body.
type slowServer struct {
	content []byte
	mode    string // "hang", "hang_after" (first request only), "trickle", "endless"
	sent    atomic.Int64
	reqs    atomic.Int32
}

func (s *slowServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.reqs.Add(1)
	from := 0
	if rng := r.Header.Get("Range"); rng != "" {
		from, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
	}
	write := func(b []byte) bool {
		k, err := w.Write(b)
		s.sent.Add(int64(k))
		w.(http.Flusher).Flush()
		return err == nil
	}
	switch s.mode {
	case "hang":
		<-r.Context().Done()
		return
	case "endless":
		w.WriteHeader(http.StatusOK) // no Content-Length: chunked
		chunk := make([]byte, 32<<10)
		for s.sent.Load() < 256<<20 && write(chunk) {
		}
		return
	}
	if from > 0 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(s.content)-1, len(s.content)))
		w.Header().Set("Content-Length", strconv.Itoa(len(s.content)-from))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.content)))
		w.WriteHeader(http.StatusOK)
	}
	body := s.content[from:]
	switch {
	case s.mode == "hang_after" && n == 1:
		write(body[:len(body)/3])
		<-r.Context().Done()
	case s.mode == "trickle":
		for i := range body {
			if !write(body[i:i+1]) || r.Context().Err() != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	default:
		write(body)
	}
}

// downloadWithin runs DownloadWeights and fails the test if it has not
// returned within 5 s (the tests' stall timeouts are tens of
// milliseconds), cancelling it.
func downloadWithin(t *testing.T, opts *DownloadOptions) (string, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		path string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		p, err := DownloadWeights(ctx, VGG16, opts)
		done <- result{p, err}
	}()
	select {
	case r := <-done:
		return r.path, r.err
	case <-time.After(5 * time.Second):
		cancel()
		<-done
		t.Fatal("DownloadWeights did not return within 5 s")
		return "", nil
	}
}

// TestDownloadWeightsStall: a server that hangs before answering, or sends
// part of the file and hangs, or trickles a byte at a time, is abandoned
// after StallTimeout without progress (1 MiB); a stalled request that made
// progress is resumed.
func TestDownloadWeightsStall(t *testing.T) {
	f := newDownloadFixture(t)
	for _, tc := range []struct {
		mode    string
		stall   time.Duration
		minReqs int32 // requests made
		maxReqs int32
		ok      bool // the download completes
	}{
		// No progress: not retried.
		{"hang", 40 * time.Millisecond, 1, 1, false},
		// Stalls after a third, then resumes (a timeout long enough for
		// the resumed request to finish in one on a loaded machine).
		{"hang_after", 300 * time.Millisecond, 2, 2, true},
		// Every attempt makes a little progress (the first byte of each
		// may come late on a loaded machine, ending the retries early).
		{"trickle", 40 * time.Millisecond, 2, downloadAttempts, false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			s := &slowServer{content: f.content, mode: tc.mode}
			url := startServer(t, s)
			dir := t.TempDir()
			start := time.Now()
			path, err := downloadWithin(t, &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor,
				StallTimeout: tc.stall})
			t.Logf("%s: %v after %v", tc.mode, err, time.Since(start))
			assert.GreaterOrEqual(t, s.reqs.Load(), tc.minReqs, "requests")
			assert.LessOrEqual(t, s.reqs.Load(), tc.maxReqs, "requests")
			if tc.ok {
				require.NoError(t, err)
				f.check(t, path, dir)
				return
			}
			require.ErrorIs(t, err, errStalled)
			assert.Contains(t, err.Error(), tc.stall.String())
		})
	}
}

// TestDownloadWeightsSize: the expected size caps the download. An endless
// body is cut off just past it and deleted; a Content-Length or
// Content-Range total other than the expected size is refused before
// anything is written, keeping a partial download; and the default URL's
// size is known without setting Size.
func TestDownloadWeightsSize(t *testing.T) {
	f := newDownloadFixture(t)
	size := int64(len(f.content))

	t.Run("endless", func(t *testing.T) {
		s := &slowServer{content: f.content, mode: "endless"}
		url := startServer(t, s)
		dir := t.TempDir()
		_, err := downloadWithin(t, &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor, Size: size})
		require.ErrorContains(t, err, "longer than")
		assert.Less(t, s.sent.Load(), size+8<<20, "bytes sent")
		entries, _ := os.ReadDir(dir)
		assert.Empty(t, entries)
	})

	part := f.content[:size/2]
	for _, tc := range []struct {
		name string
		serv *weightServer
		want string
	}{
		{"content_length", &weightServer{content: append(slices.Clone(f.content), 1, 2, 3), ignoreRange: true}, "Content-Length announces a file of"},
		{"content_range", &weightServer{content: append(slices.Clone(f.content), 1, 2, 3)}, "Content-Range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startServer(t, tc.serv)
			dir := t.TempDir()
			p := filepath.Join(dir, "vgg16-test.pth.part")
			require.NoError(t, os.WriteFile(p, part, 0o644))
			_, err := downloadWithin(t, &DownloadOptions{URL: url, SHA256Prefix: f.prefix, CacheDir: dir, divisor: testDivisor, Size: size})
			require.ErrorContains(t, err, tc.want)
			assert.Contains(t, err.Error(), fmt.Sprint(size+3))
			got, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.Equal(t, part, got, "partial download changed")
		})
	}

	t.Run("vgg16_default", func(t *testing.T) {
		s := &weightServer{content: f.content}
		srv := httptest.NewServer(s)
		defer srv.Close()
		// Every request goes to the test server, whatever its URL.
		client := &http.Client{Transport: rewriteHost{srv.URL}}
		dir := t.TempDir()
		_, err := downloadWithin(t, &DownloadOptions{CacheDir: dir, Client: client})
		require.ErrorContains(t, err, fmt.Sprintf("%d bytes, expected %d", size, vgg16Spec.downloads[0].size))
		assert.Equal(t, []string{""}, s.requests())
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			fi, err := e.Info()
			require.NoError(t, err)
			assert.Zero(t, fi.Size(), e.Name())
		}
	})
}

// rewriteHost sends every request to the server at base.
type rewriteHost struct{ base string }

func (r rewriteHost) RoundTrip(req *http.Request) (*http.Response, error) {
	u, err := url.Parse(r.base)
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = u.Scheme, u.Host
	return http.DefaultTransport.RoundTrip(req)
}
