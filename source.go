package style

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stylespace/style/internal/atomicfile"
	"github.com/stylespace/style/internal/engine"
)

// ImageSource opens encoded images (JPEG, PNG, GIF) by name. The names are
// those of a pair list. Implementations must be safe for concurrent use.
type ImageSource interface {
	// Open returns the encoded image called name. A missing image gives an
	// error matching fs.ErrNotExist, a name that is not acceptable to the
	// source (one escaping its folder, say) an error matching
	// ErrInvalidName.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
}

// ErrInvalidName is matched by errors.Is when an image name is empty,
// absolute, contains ".." elements or control characters, or otherwise
// refers outside its source.
var ErrInvalidName = errors.New("style: invalid image name")

// OpenImage opens name from src and decodes it with DecodeImage, which
// bounds its size.
func OpenImage(ctx context.Context, src ImageSource, name string) (image.Image, error) {
	rc, err := src.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return DecodeImage(rc, name)
}

// DirSource reads images from a local folder. Names are slash-separated
// paths relative to the folder; names that would leave it (absolute paths,
// ".." elements, symbolic links pointing outside) are rejected with an error
// matching ErrInvalidName, through an os.Root. A DirSource is safe for
// concurrent use.
type DirSource struct {
	dir  string
	root *os.Root
}

// NewDirSource opens the folder dir as an image source. Call Close when done.
func NewDirSource(dir string) (*DirSource, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("style: image folder: %w", err)
	}
	return &DirSource{dir: dir, root: root}, nil
}

// Dir returns the folder the source reads from.
func (d *DirSource) Dir() string { return d.dir }

// Close releases the folder.
func (d *DirSource) Close() error { return d.root.Close() }

// Open opens the image file called name in the folder. It fails for names
// escaping the folder (ErrInvalidName), missing files (fs.ErrNotExist),
// anything but a regular file, and files larger than 64 MiB, DecodeImage's
// limit (ErrImageTooLarge).
func (d *DirSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !validImageName(name) || !filepath.IsLocal(filepath.FromSlash(name)) {
		return nil, fmt.Errorf("%w: %q in folder %s", ErrInvalidName, name, d.dir)
	}
	p := filepath.FromSlash(name)
	fi, err := d.root.Stat(p)
	if err != nil {
		return nil, dirSourceError(d.dir, name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("style: %s: %s is not a regular file", d.dir, name)
	}
	if fi.Size() > maxImageBytes {
		return nil, fmt.Errorf("style: %s: %s has %d bytes, more than %d: %w", d.dir, name, fi.Size(), maxImageBytes, ErrImageTooLarge)
	}
	f, err := d.root.Open(p)
	if err != nil {
		return nil, dirSourceError(d.dir, name, err)
	}
	return f, nil
}

func dirSourceError(dir, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
		return fmt.Errorf("%w: %q leaves folder %s", ErrInvalidName, name, dir)
	}
	return fmt.Errorf("style: %s: %w", dir, err)
}

// validImageName reports whether name is non-empty valid UTF-8 without
// control characters and without "." or ".." elements.
func validImageName(name string) bool {
	if name == "" || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	for _, e := range strings.Split(name, "/") {
		if e == "." || e == ".." {
			return false
		}
	}
	return true
}

// URLOptions configures a URLSource. The zero value of each field selects
// its default.
type URLOptions struct {
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
	// CacheDir, if not "", keeps every downloaded image there under its
	// path-escaped name, written atomically. A cached image is returned
	// without any request. The folder is created if needed.
	CacheDir string
	// Concurrent bounds the requests in flight at once; 0 means 8.
	Concurrent int
	// Timeout bounds each attempt (request and body); 0 means 30 seconds.
	Timeout time.Duration
	// Attempts is how many times a request is tried in all before giving
	// up; 0 means 5. Retries happen on network errors, timeouts, HTTP 429
	// and 5xx, never on other statuses such as 404.
	Attempts int
	// Backoff is the wait before the first retry, doubled for each further
	// one (with up to 50% random reduction, and at most MaxBackoff); a
	// Retry-After header of a 429 or 503 answer is honoured up to
	// MaxBackoff. 0 means 500 milliseconds.
	Backoff time.Duration
	// MaxBackoff caps one wait; 0 means 30 seconds.
	MaxBackoff time.Duration
	// MaxBytes caps one image; 0 means 64 MiB (DecodeImage's limit).
	// Larger answers fail with ErrImageTooLarge.
	MaxBytes int64
	// UserAgent is sent with each request; "" means "stylespace-style".
	UserAgent string
}

// URLSource downloads images from a URL prefix: the image called name is at
// Prefix + url.PathEscape(name), as https://m.media-amazon.com/images/I/<name>
// served the study's images. It bounds concurrent requests, times out and
// retries with exponential backoff, caps the size of an answer and can keep
// a cache on disk. A URLSource is safe for concurrent use.
type URLSource struct {
	prefix string
	opts   URLOptions
	sem    chan struct{}
}

// HTTPError is returned by URLSource for an HTTP answer other than 200 OK.
// A 404 or 410 matches fs.ErrNotExist.
type HTTPError struct {
	URL        string
	StatusCode int
}

// Error returns the URL and the status.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("style: GET %s: %d %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// Is reports whether target is fs.ErrNotExist and the status says the
// image does not exist.
func (e *HTTPError) Is(target error) bool {
	return target == fs.ErrNotExist && (e.StatusCode == http.StatusNotFound || e.StatusCode == http.StatusGone)
}

// NewURLSource returns a source downloading from prefix, an http or https
// URL ending in "/" (one is added if missing). opts may be nil.
func NewURLSource(prefix string, opts *URLOptions) (*URLSource, error) {
	u, err := url.Parse(prefix)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("style: URL prefix %q is not an http or https URL", prefix)
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	s := &URLSource{prefix: prefix}
	if opts != nil {
		s.opts = *opts
	}
	o := &s.opts
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Concurrent <= 0 {
		o.Concurrent = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = maxImageBytes
	}
	if o.UserAgent == "" {
		o.UserAgent = "stylespace-style"
	}
	if o.CacheDir != "" {
		if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("style: image cache: %w", err)
		}
	}
	s.sem = make(chan struct{}, o.Concurrent)
	return s, nil
}

// URL returns the address of the image called name.
func (s *URLSource) URL(name string) string { return s.prefix + url.PathEscape(name) }

// CachePath returns the file that caches the image called name, or "" if
// the source has no cache.
func (s *URLSource) CachePath(name string) string {
	if s.opts.CacheDir == "" {
		return ""
	}
	return filepath.Join(s.opts.CacheDir, url.PathEscape(name))
}

// Open returns the image called name: from the cache if it is there,
// otherwise downloaded (and then cached). The whole answer is read before
// Open returns, so the reader never fails.
func (s *URLSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if !validImageName(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cache := s.CachePath(name)
	if cache != "" {
		if f, err := os.Open(cache); err == nil {
			return f, nil
		}
	}
	data, err := s.fetch(ctx, name)
	if err != nil {
		return nil, err
	}
	if cache != "" {
		err := atomicfile.Write(cache, func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("style: %w", err)
		}
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// fetch downloads name with retries.
func (s *URLSource) fetch(ctx context.Context, name string) ([]byte, error) {
	u := s.URL(name)
	wait := s.opts.Backoff
	for attempt := 1; ; attempt++ {
		data, retryAfter, err := s.attempt(ctx, u)
		if err == nil {
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if retryAfter < 0 || attempt >= s.opts.Attempts {
			if retryAfter >= 0 {
				return nil, fmt.Errorf("style: GET %s: giving up after %d attempts: %w", u, attempt, err)
			}
			return nil, err
		}
		d := wait/2 + rand.N(wait/2+1)
		if retryAfter > d {
			d = retryAfter
		}
		d = min(d, s.opts.MaxBackoff)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, s.opts.MaxBackoff)
	}
}

// attempt makes one request. retry is negative when the error is final,
// otherwise the minimum wait the server asked for (0 if none).
func (s *URLSource) attempt(ctx context.Context, u string) (data []byte, retry time.Duration, err error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, -1, ctx.Err()
	}
	defer func() { <-s.sem }()
	actx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return nil, -1, fmt.Errorf("style: GET %s: %w", u, err)
	}
	req.Header.Set("User-Agent", s.opts.UserAgent)
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, 0, err // network error or timeout: retry
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		herr := &HTTPError{URL: u, StatusCode: resp.StatusCode}
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			return nil, parseRetryAfter(resp.Header.Get("Retry-After")), herr
		default:
			return nil, -1, herr
		}
	}
	max := s.opts.MaxBytes
	if resp.ContentLength > max {
		return nil, -1, fmt.Errorf("style: GET %s: %d bytes, more than %d: %w", u, resp.ContentLength, max, ErrImageTooLarge)
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, 0, fmt.Errorf("style: GET %s: %w", u, err) // cut off: retry
	}
	if int64(len(data)) > max {
		return nil, -1, fmt.Errorf("style: GET %s: more than %d bytes: %w", u, max, ErrImageTooLarge)
	}
	return data, 0, nil
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(min(n, 1<<20)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// PrefetchOptions configures Prefetch. The zero value of each field
// selects its default.
type PrefetchOptions struct {
	// Workers is the number of images opened at once; 0 means 16. A
	// URLSource bounds its requests further with URLOptions.Concurrent.
	Workers int
	// Progress, if not nil, is called with Stage "download", Done and Total
	// counted in distinct images, after each image, from the worker
	// goroutines one call at a time.
	Progress func(Progress)
}

// Prefetch opens and reads every distinct image in names from src, which
// fills the cache of a URLSource (downloads need far more concurrency than
// feature extraction, so fetching first keeps the extractor busy). Images
// that fail are returned in the order of names; the run goes on. It
// returns ctx.Err() if ctx is cancelled, once the images in flight are done.
func Prefetch(ctx context.Context, src ImageSource, names []string, opts *PrefetchOptions) ([]ImageFailure, error) {
	start := time.Now()
	var o PrefetchOptions
	if opts != nil {
		o = *opts
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	seen := make(map[string]struct{}, len(names))
	var todo []string
	for _, n := range names {
		if _, ok := seen[n]; !ok {
			seen[n] = struct{}{}
			todo = append(todo, n)
		}
	}
	errs := make([]error, len(todo))
	var mu sync.Mutex // serialises the progress reports
	var done int64    // images finished, under mu
	engine.For(o.Workers, len(todo), func(_, i int) {
		if ctx.Err() != nil {
			return // interrupted: the rest is not opened
		}
		rc, err := src.Open(ctx, todo[i])
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err != nil && ctx.Err() != nil {
			return // interrupted, not failed
		}
		errs[i] = err
		if o.Progress != nil {
			mu.Lock()
			done++
			o.Progress(Progress{Stage: "download", Done: done, Total: int64(len(todo)), Elapsed: time.Since(start)})
			mu.Unlock()
		}
	})
	var failed []ImageFailure
	for i, err := range errs {
		if err != nil {
			failed = append(failed, ImageFailure{Name: todo[i], Err: err})
		}
	}
	return failed, ctx.Err()
}
