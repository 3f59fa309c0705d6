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
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stylespace/style/internal/atomicfile"
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
	if d, ok := src.(imageOpener); ok {
		return d.openImage(ctx, name)
	}
	rc, err := src.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return DecodeImage(rc, name)
}

// imageOpener is implemented by the sources that decode an image anyway
// (URLSource checks what it caches), so that OpenImage does not decode it
// twice.
type imageOpener interface {
	openImage(ctx context.Context, name string) (image.Image, error)
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

// Close releases the folder.
func (d *DirSource) Close() error { return d.root.Close() }

// Names returns the names of the images in the folder, recursively, in
// name order: the slash-separated paths, relative to the folder, of the
// files whose extension is .jpg, .jpeg, .png or .gif (in any case), as
// Open takes them. Symbolic links to files inside the folder are listed;
// links that lead outside it (which Open refuses), broken links and links
// to folders are not followed, nor are names Open would refuse. An error
// reading a folder stops the listing and is returned.
func (d *DirSource) Names() ([]string, error) {
	var names []string
	err := fs.WalkDir(d.root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || !isImageFileName(p) || !validImageName(p) {
			return nil
		}
		switch {
		case e.Type().IsRegular():
		case e.Type()&fs.ModeSymlink != 0:
			// os.Root resolves the link, refusing one that leaves the
			// folder.
			if fi, err := d.root.Stat(filepath.FromSlash(p)); err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		default:
			return nil
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("style: listing the images of %s: %w", d.dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// isImageFileName reports whether name ends in .jpg, .jpeg, .png or .gif,
// in any case.
func isImageFileName(name string) bool {
	return slices.Contains(imageExts[:], strings.ToLower(path.Ext(name)))
}

// Open opens the image file called name in the folder. It fails for names
// escaping the folder (ErrInvalidName), missing files (fs.ErrNotExist),
// anything but a regular file, and files larger than 64 MiB, DecodeImage's
// limit (ErrImageTooLarge).
func (d *DirSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fi, err := d.stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("style: %s: %s is not a regular file", d.dir, name)
	}
	if fi.Size() > maxImageBytes {
		return nil, fmt.Errorf("style: %s: %s has %d bytes, more than %d: %w", d.dir, name, fi.Size(), maxImageBytes, ErrImageTooLarge)
	}
	f, err := d.root.Open(filepath.FromSlash(name))
	if err != nil {
		return nil, dirSourceError(d.dir, name, err)
	}
	return f, nil
}

// stat returns the file information of the file called name, or an
// error matching ErrInvalidName for a name that escapes the folder.
func (d *DirSource) stat(name string) (fs.FileInfo, error) {
	if !validImageName(name) || !filepath.IsLocal(filepath.FromSlash(name)) {
		return nil, fmt.Errorf("%w: %q in folder %s", ErrInvalidName, name, d.dir)
	}
	fi, err := d.root.Stat(filepath.FromSlash(name))
	if err != nil {
		return nil, dirSourceError(d.dir, name, err)
	}
	return fi, nil
}

// imageKey returns the size and modification time of the image file
// called name.
func (d *DirSource) imageKey(name string) (itemKey, error) {
	fi, err := d.stat(name)
	if err != nil {
		return itemKey{}, err
	}
	return itemKey{size: fi.Size(), mtime: fi.ModTime().UnixNano()}, nil
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
	// path-escaped name, written atomically. Only an answer that decodes
	// as an image (see DecodeImage) is kept: one that does not (an HTML
	// error page, a truncated file) is an error matching ErrFormat. A
	// cached image is returned without any request; a cached file that no
	// longer decodes is removed and the image downloaded once more. The
	// folder is created if needed.
	CacheDir string
	// Concurrent bounds the requests in flight at once; 0 means 8.
	Concurrent int
	// Timeout bounds each attempt (request and body); 0 means 30 seconds.
	Timeout time.Duration
	// Attempts is how many times a request is tried in all before giving
	// up; 0 means 5. Retries happen on network errors, timeouts, HTTP 429
	// and 5xx, never on other statuses such as 404. An answer other than
	// 200 OK gives an error naming the URL and the status, which matches
	// fs.ErrNotExist for 404 Not Found and 410 Gone.
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
	// MaxFailures is the number of consecutive attempts failing to reach
	// the host (connection errors, timeouts, answers cut short; any HTTP
	// answer resets the count) after which the host is taken as down:
	// that attempt and every later request of the source fail at once
	// with an error naming the host. 0 means 20; a negative number never
	// gives up on the host.
	MaxFailures int
}

// URLSource downloads images from a URL prefix: the image called name is at
// Prefix + url.PathEscape(name), as https://m.media-amazon.com/images/I/<name>
// served the study's images. It bounds concurrent requests, times out and
// retries with exponential backoff, caps the size of an answer and can keep
// a cache on disk. A URLSource is safe for concurrent use.
type URLSource struct {
	prefix string
	host   string
	opts   URLOptions
	sem    chan struct{}

	mu    sync.Mutex
	fails int   // consecutive attempts that did not reach the host
	down  error // once fails reached opts.MaxFailures
}

// httpStatusError reports an HTTP answer other than 200 OK. A 404 or 410
// matches fs.ErrNotExist.
type httpStatusError struct {
	url  string
	code int
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("style: GET %s: %d %s", e.url, e.code, http.StatusText(e.code))
}

func (e *httpStatusError) Is(target error) bool {
	return target == fs.ErrNotExist && (e.code == http.StatusNotFound || e.code == http.StatusGone)
}

// Defaults of URLOptions, also the limits of LoadImage and ReadPairs.
const (
	urlTimeout   = 30 * time.Second
	urlUserAgent = "stylespace-style"
)

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
	s := &URLSource{prefix: prefix, host: u.Host}
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
		o.Timeout = urlTimeout
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
		o.UserAgent = urlUserAgent
	}
	if o.MaxFailures == 0 {
		o.MaxFailures = 20
	}
	if o.CacheDir != "" {
		if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("style: image cache: %w", err)
		}
	}
	s.sem = make(chan struct{}, o.Concurrent)
	return s, nil
}

// url returns the address of the image called name.
func (s *URLSource) url(name string) string { return s.prefix + url.PathEscape(name) }

// cachePath returns the file that caches the image called name, or "" if
// the source has no cache.
func (s *URLSource) cachePath(name string) string {
	if s.opts.CacheDir == "" {
		return ""
	}
	return filepath.Join(s.opts.CacheDir, url.PathEscape(name))
}

// Open returns the image called name: from the cache if it is there,
// otherwise downloaded, checked to decode as an image, and cached. The
// whole answer is read before Open returns, so the reader never fails.
func (s *URLSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	data, _, err := s.load(ctx, name, false)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// openImage returns the decoded image called name, as OpenImage does
// with Open, decoding it only once.
func (s *URLSource) openImage(ctx context.Context, name string) (image.Image, error) {
	_, img, err := s.load(ctx, name, true)
	return img, err
}

// load returns the image called name from the cache, or downloaded and
// then cached, with the decoded image if decode is set. A downloaded
// image is decoded in full before it is cached; a cached one is decoded
// in full with decode and only checked by its header otherwise, and
// removed and downloaded again if that fails.
func (s *URLSource) load(ctx context.Context, name string, decode bool) ([]byte, image.Image, error) {
	if !validImageName(name) {
		return nil, nil, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	cache := s.cachePath(name)
	if cache != "" {
		if data, err := os.ReadFile(cache); err == nil && int64(len(data)) <= s.opts.MaxBytes {
			if decode {
				if img, err := decodeImageBytes(data, cache); err == nil {
					return data, img, nil
				}
			} else if _, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
				return data, nil, nil
			}
			// Not an image (an answer cached by an earlier version, a
			// damaged file): fetched once more below.
			os.Remove(cache)
		}
	}
	data, err := s.fetch(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	img, err := decodeImageBytes(data, s.url(name))
	if err != nil {
		return nil, nil, err
	}
	if cache != "" {
		err := atomicfile.Write(cache, func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("style: %w", err)
		}
	}
	return data, img, nil
}

// fetch downloads name with retries.
func (s *URLSource) fetch(ctx context.Context, name string) ([]byte, error) {
	u := s.url(name)
	wait := s.opts.Backoff
	for attempt := 1; ; attempt++ {
		data, retryAfter, err := s.attempt(ctx, u)
		if err == nil {
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, errHostDown) {
			return nil, err
		}
		if retryAfter < 0 || attempt >= s.opts.Attempts {
			if retryAfter >= 0 {
				return nil, fmt.Errorf("%w (giving up after %d attempts)", err, attempt)
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

// errHostDown is wrapped by the errors of a URLSource whose host is taken
// as down.
var errHostDown = errors.New("host unreachable")

// hostDownError reports a host that failed n attempts in a row.
type hostDownError struct {
	host string
	n    int
	last error
}

func (e *hostDownError) Error() string {
	return fmt.Sprintf("style: host %s unreachable after %d consecutive failures: %v", e.host, e.n, e.last)
}

func (e *hostDownError) Unwrap() []error { return []error{errHostDown, e.last} }

// reached records the outcome of an attempt that was not cancelled by its
// caller: ok when the host answered (whatever the status). It returns the
// error that takes the host down when this failure is the last one
// allowed, else err.
func (s *URLSource) reached(ok bool, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.fails = 0
		return err
	}
	s.fails++
	if s.down == nil && s.opts.MaxFailures > 0 && s.fails >= s.opts.MaxFailures {
		s.down = &hostDownError{host: s.host, n: s.fails, last: err}
	}
	if s.down != nil {
		return s.down
	}
	return err
}

// attempt makes one request, within the source's bound on concurrent
// requests. retry is negative when the error is final, otherwise the
// minimum wait the server asked for (0 if none).
func (s *URLSource) attempt(ctx context.Context, u string) (data []byte, retry time.Duration, err error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, -1, ctx.Err()
	}
	defer func() { <-s.sem }()
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down != nil {
		return nil, -1, down
	}
	data, retry, err = httpGet(ctx, s.opts.Client, u, s.opts.Timeout, s.opts.MaxBytes, s.opts.UserAgent, ErrImageTooLarge)
	if ctx.Err() != nil {
		return data, retry, err
	}
	// Network errors, timeouts and answers cut short are the retried
	// errors that are not HTTP statuses.
	var herr *httpStatusError
	reachedHost := err == nil || retry < 0 || errors.As(err, &herr)
	return data, retry, s.reached(reachedHost, err)
}

// httpGet makes one GET request of u with client, within timeout, and
// returns the body of a 200 OK answer of at most max bytes; a larger one
// is an error wrapping tooLarge, if not nil. retry is negative when the
// error is final, otherwise the minimum wait the server asked for (0 if
// none). Every error names u.
func httpGet(ctx context.Context, client *http.Client, u string, timeout time.Duration, max int64, userAgent string, tooLarge error) (data []byte, retry time.Duration, err error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return nil, -1, fmt.Errorf("style: GET %s: %w", u, err)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, named below
		}
		return nil, 0, fmt.Errorf("style: GET %s: %w", u, err) // network error or timeout: retry
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		herr := &httpStatusError{url: u, code: resp.StatusCode}
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			return nil, parseRetryAfter(resp.Header.Get("Retry-After")), herr
		default:
			return nil, -1, herr
		}
	}
	large := func(size string) error {
		if tooLarge == nil {
			return fmt.Errorf("style: GET %s: %s bytes, more than %d", u, size, max)
		}
		return fmt.Errorf("style: GET %s: %s bytes, more than %d: %w", u, size, max, tooLarge)
	}
	if resp.ContentLength > max {
		return nil, -1, large(strconv.FormatInt(resp.ContentLength, 10))
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, 0, fmt.Errorf("style: GET %s: %w", u, err) // cut off: retry
	}
	if int64(len(data)) > max {
		return nil, -1, large("at least " + strconv.FormatInt(max+1, 10))
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

// isURL reports whether s is an http or https URL rather than a file path.
func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// openPathOrURL returns the contents of the file or http(s) URL
// pathOrURL. A URL is fetched with http.DefaultClient in one attempt,
// within 30 seconds, and may hold at most max bytes (more is an error
// wrapping tooLarge, if not nil); a file is opened, and the caller bounds
// what it reads.
func openPathOrURL(ctx context.Context, pathOrURL string, max int64, tooLarge error) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !isURL(pathOrURL) {
		f, err := os.Open(pathOrURL)
		if err != nil {
			return nil, fmt.Errorf("style: %w", err)
		}
		return f, nil
	}
	data, _, err := httpGet(ctx, http.DefaultClient, pathOrURL, urlTimeout, max, urlUserAgent, tooLarge)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// LoadImage reads and decodes a JPEG, PNG or GIF image from a file or an
// http or https URL. A URL is fetched with http.DefaultClient in one
// attempt, within 30 seconds (ctx may set a shorter deadline), and may
// hold at most 64 MiB (ErrImageTooLarge), the defaults of URLSource; an
// answer other than 200 OK is an error naming the URL and the status,
// which matches fs.ErrNotExist for 404 and 410. The image is checked and
// decoded by DecodeImage.
func LoadImage(ctx context.Context, pathOrURL string) (image.Image, error) {
	rc, err := openPathOrURL(ctx, pathOrURL, maxImageBytes, ErrImageTooLarge)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return DecodeImage(rc, pathOrURL)
}
