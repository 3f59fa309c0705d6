package style

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxDownloadBytes caps a download whose size is not known (a URL other
// than the architecture's default without DownloadOptions.Size): 1 GiB.
const maxDownloadBytes = 1 << 30

// stallBytes is the progress a download must make in every
// DownloadOptions.StallTimeout.
const stallBytes = 1 << 20

// defaultStallTimeout is DownloadOptions.StallTimeout's default.
const defaultStallTimeout = 60 * time.Second

// DownloadOptions configures DownloadWeights. A nil *DownloadOptions
// means all defaults, which fetch the architecture's published weights,
// torchvision's ImageNet weights:
//
//   - VGG16: https://download.pytorch.org/models/vgg16-397923af.pth
//     (legacy PyTorch format, 553,433,881 bytes, SHA-256 starting with
//     397923af);
//   - ResNet50: IMAGENET1K_V1,
//     https://download.pytorch.org/models/resnet50-0676ba61.pth
//     (102,530,333 bytes, SHA-256 starting with 0676ba61), the weights of
//     the original training recipe that pretrained=True loads. Setting
//     URL to https://download.pytorch.org/models/resnet50-11ad3fa6.pth
//     selects IMAGENET1K_V2 (torchvision's newer recipe and its DEFAULT;
//     102,540,417 bytes, SHA-256 starting with 11ad3fa6), whose prefix
//     and size are then known too.
//
// DownloadWeights does not modify it.
type DownloadOptions struct {
	// URL of the weight file. "" means the architecture's default.
	URL string
	// SHA256Prefix is the expected start of the file's hex SHA-256 (any
	// length up to 64). "" means the published file's prefix when URL is
	// "" or one of the architecture's published files (see above), and is
	// an error for any other URL: downloads are always verified.
	SHA256Prefix string
	// Size is the file's size in bytes. A response announcing another size
	// (Content-Length, or the total of Content-Range) is refused before
	// anything is written, and one that runs longer is cut off and its
	// download deleted. 0 means the published file's size when URL is ""
	// or one of the architecture's published files, and for any other URL
	// an unknown size, with downloads capped at 1 GiB. Negative is an
	// error.
	Size int64
	// StallTimeout is how long a download may go without progress: a
	// request fails when less than 1 MiB arrives in any StallTimeout,
	// waiting for the response included (a server that hangs, or trickles
	// bytes, is abandoned). A stalled request that made some progress is
	// resumed within the same call, as a dropped connection is. 0 means
	// 60 s (at least 17 KB/s); negative is an error.
	StallTimeout time.Duration
	// CacheDir holds the partial download and the converted file. ""
	// means the "style" directory in os.UserCacheDir().
	CacheDir string
	// Client makes the requests. nil means http.DefaultClient.
	Client *http.Client
	// Progress, if not nil, is called with Stage "download", Done the
	// bytes of the file on disk so far and Total its size (0 until known),
	// at most every 256 KiB and once at the end.
	Progress func(Progress)

	// divisor is the width divisor of the network the file must hold (see
	// ReadWeights); 0 means 1. Tests set it to serve small networks.
	divisor int
}

// downloadAttempts is how many requests one DownloadWeights call makes at
// most, each resuming where the previous one stopped, as long as every
// attempt makes progress.
const downloadAttempts = 5

// DownloadWeights returns the path of a converted weight file of
// architecture arch in the cache directory, downloading and converting it
// first if needed, the way Keras' weights="imagenet" does. By default the
// file is the architecture's published weights (see DownloadOptions); the
// result is a full-width network for LoadNetwork.
//
// If the converted file (the URL's base name with extension .safetensors)
// is in the cache and valid, it is returned without any network access.
// Otherwise the file at the URL is fetched into NAME.part, resuming a
// previous partial download with an HTTP Range request (a server that
// ignores Range and answers 200 restarts it from the start); a connection
// dropped midway, or a request that stalls (see
// DownloadOptions.StallTimeout), is resumed within the same call a few
// times, as long as each attempt makes progress. The file may not exceed
// its expected size (see DownloadOptions.Size): sizes announced by the
// server are checked before anything is written, and a longer response is
// cut off. The complete file's SHA-256 must start with the expected
// prefix: on a mismatch the partial file is deleted and an error returned.
// The file is then read with ReadWeights and written with
// Weights.WriteSafetensors (the result records the source name and hash),
// and the download deleted.
//
// Cancelling ctx stops the download and returns an error wrapping
// ctx.Err(); the partial file is kept so that the next call resumes it.
// Concurrent calls sharing a cache directory, in one process or several,
// must be serialised by the caller. An unknown arch is an error.
func DownloadWeights(ctx context.Context, arch Arch, opts *DownloadOptions) (string, error) {
	spec, err := lookupArch("DownloadWeights", arch)
	if err != nil {
		return "", err
	}
	var o DownloadOptions
	if opts != nil {
		o = *opts
	}
	def := spec.downloads[0]
	if o.URL == "" {
		o.URL = def.url
	}
	for _, d := range spec.downloads {
		if o.URL == d.url {
			def = d
		}
	}
	if o.SHA256Prefix == "" {
		if o.URL != def.url {
			urls := make([]string, len(spec.downloads))
			for i, d := range spec.downloads {
				urls[i] = d.url
			}
			return "", fmt.Errorf("style: download %s: DownloadOptions.SHA256Prefix must be set for a URL other than the default %s", o.URL, strings.Join(urls, " or "))
		}
		o.SHA256Prefix = def.sha256Prefix
	}
	switch {
	case o.Size < 0:
		return "", fmt.Errorf("style: download %s: negative DownloadOptions.Size %d", o.URL, o.Size)
	case o.Size == 0 && o.URL == def.url:
		o.Size = def.size
	}
	switch {
	case o.StallTimeout < 0:
		return "", fmt.Errorf("style: download %s: negative DownloadOptions.StallTimeout %v", o.URL, o.StallTimeout)
	case o.StallTimeout == 0:
		o.StallTimeout = defaultStallTimeout
	}
	o.SHA256Prefix = strings.ToLower(o.SHA256Prefix)
	if len(o.SHA256Prefix) > 64 || strings.Trim(o.SHA256Prefix, "0123456789abcdef") != "" {
		return "", fmt.Errorf("style: download %s: SHA256Prefix %q is not a hex prefix of a SHA-256", o.URL, o.SHA256Prefix)
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("style: download: no cache directory: %w", err)
		}
		o.CacheDir = filepath.Join(dir, "style")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return "", fmt.Errorf("style: download: %w", err)
	}
	base := path.Base(u.Path)
	if base == "." || base == "/" || base == ".." || strings.ContainsAny(base, `\:`) {
		base = string(arch) + ".pth"
	}
	stem := strings.TrimSuffix(base, path.Ext(base))
	converted := filepath.Join(o.CacheDir, stem+".safetensors")
	part := filepath.Join(o.CacheDir, base+".part")

	if cachedConversionOK(converted, spec, o.SHA256Prefix) {
		return converted, nil
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("style: download: %w", err)
	}
	sum, err := downloadResumable(ctx, &o, part)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(sum, o.SHA256Prefix) {
		os.Remove(part)
		return "", fmt.Errorf("style: download %s: SHA-256 %s does not start with %s; the download was deleted", o.URL, sum, o.SHA256Prefix)
	}
	w, err := readWeights(part, arch, max(o.divisor, 1), sum)
	if err != nil {
		return "", fmt.Errorf("style: download %s: converting: %w", o.URL, err)
	}
	w.Source = base
	if err := w.WriteSafetensors(converted); err != nil {
		return "", err
	}
	os.Remove(part)
	return converted, nil
}

// cachedConversionOK reports whether the converted file exists, has a valid
// header, holds weights of spec's architecture (files written before
// "arch" was recorded have only the format) and records a source hash with
// the expected prefix.
func cachedConversionOK(p string, spec *archSpec, prefix string) bool {
	f, size, err := openSized(p)
	if err != nil {
		return false
	}
	defer f.Close()
	h, err := parseSafetensorsHeader(f, size, p)
	if err != nil {
		return false
	}
	arch, ok := h.meta["arch"]
	return h.meta["format"] == spec.formatName() && (!ok || Arch(arch) == spec.arch) &&
		strings.HasPrefix(h.meta["source_sha256"], prefix)
}

// downloadResumable completes the download of o.URL into part and returns
// the file's hex SHA-256.
func downloadResumable(ctx context.Context, o *DownloadOptions, part string) (string, error) {
	start := time.Now()
	var lastErr error
	for attempt := 0; attempt < downloadAttempts; attempt++ {
		before := fileSize(part)
		sum, done, err := downloadOnce(ctx, o, part, start)
		if err == nil && done {
			return sum, nil
		}
		if err == nil {
			err = errors.New("incomplete response")
		}
		lastErr = err
		if ctx.Err() != nil {
			lastErr = ctx.Err()
			break
		}
		if fileSize(part) <= before { // no progress: do not retry
			break
		}
	}
	if fileSize(part) == 0 { // nothing to resume from
		os.Remove(part)
		return "", fmt.Errorf("style: download %s: %w", o.URL, lastErr)
	}
	return "", fmt.Errorf("style: download %s: %w (partial file %s kept for resuming)", o.URL, lastErr, part)
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// errStalled is the cause of a request cancelled for lack of progress.
var errStalled = errors.New("stalled")

// downloadOnce makes one request, appending to part (or restarting it), and
// reports whether the file is complete, with its SHA-256.
func downloadOnce(ctx context.Context, o *DownloadOptions, part string, start time.Time) (sum string, done bool, err error) {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", false, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	// limit is the most bytes the file may have.
	limit := o.Size
	if limit == 0 {
		limit = maxDownloadBytes
	}
	// Hash what is already there, so the final hash covers the whole file.
	h := sha256.New()
	have, err := io.Copy(h, io.LimitReader(f, limit+1))
	if err != nil {
		return "", false, err
	}
	if have > limit {
		if err := restartPart(f, h); err != nil {
			return "", false, err
		}
		have = 0
	}

	// The request is cancelled when less than stallBytes arrive in a
	// StallTimeout, waiting for the response included.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var received atomic.Int64
	watchDone := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		tick := time.NewTicker(o.StallTimeout)
		defer tick.Stop()
		for {
			select {
			case <-watchDone:
				return
			case <-tick.C:
				if received.Swap(0) < stallBytes {
					cancel(errStalled)
					return
				}
			}
		}
	})
	defer watch.Wait()
	defer close(watchDone)
	defer func() {
		if err != nil && context.Cause(ctx) == errStalled {
			err = fmt.Errorf("less than %d bytes received in %v: %w", stallBytes, o.StallTimeout, errStalled)
		}
	}()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return "", false, err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()

	// checkTotal refuses a response announcing a file of another size than
	// expected, before anything is written.
	checkTotal := func(total int64, what string) error {
		switch {
		case o.Size > 0 && total != o.Size:
			return fmt.Errorf("%s announces a file of %d bytes, expected %d", what, total, o.Size)
		case total > limit:
			return fmt.Errorf("%s announces a file of %d bytes, more than the %d-byte limit", what, total, limit)
		}
		return nil
	}
	total := o.Size
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		first, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || first != have {
			// Not the bytes asked for: start again from scratch.
			if err := restartPart(f, h); err != nil {
				return "", false, err
			}
			return "", false, fmt.Errorf("server answered Range bytes=%d- with Content-Range %q; restarting", have, resp.Header.Get("Content-Range"))
		}
		if size > 0 {
			if err := checkTotal(size, "Content-Range "+strconv.Quote(resp.Header.Get("Content-Range"))); err != nil {
				return "", false, err
			}
			if resp.ContentLength >= 0 && have+resp.ContentLength != size {
				return "", false, fmt.Errorf("Content-Length %d disagrees with Content-Range %q", resp.ContentLength, resp.Header.Get("Content-Range"))
			}
			total = size
		}
	case resp.StatusCode == http.StatusOK:
		// A full response: the server ignored Range, or there was none.
		if resp.ContentLength >= 0 {
			if err := checkTotal(resp.ContentLength, "Content-Length"); err != nil {
				return "", false, err
			}
			total = resp.ContentLength
		}
		if have > 0 {
			if err := restartPart(f, h); err != nil {
				return "", false, err
			}
			have = 0
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		// The partial file may already be complete.
		_, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if ok && size == have && (o.Size == 0 || size == o.Size) {
			report(o, have, have, start)
			return hex.EncodeToString(h.Sum(nil)), true, nil
		}
		if err := restartPart(f, h); err != nil {
			return "", false, err
		}
		return "", false, fmt.Errorf("server refused Range bytes=%d-; restarting", have)
	default:
		return "", false, fmt.Errorf("HTTP status %s", resp.Status)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return "", false, err
	}
	pw := &progressWriter{o: o, done: have, total: total, start: start}
	body := &countingReader{r: io.LimitReader(resp.Body, limit-have+1), n: &received}
	n, err := io.Copy(io.MultiWriter(f, h, pw), body)
	report(o, have+n, total, start)
	if have+n > limit {
		if err := restartPart(f, h); err != nil {
			return "", false, err
		}
		return "", false, fmt.Errorf("response longer than the %d bytes expected; the download was deleted", limit)
	}
	if err != nil {
		return "", false, err
	}
	if total > 0 && have+n != total {
		return "", false, fmt.Errorf("response ended after %d of %d bytes", have+n, total)
	}
	if err := f.Sync(); err != nil {
		return "", false, err
	}
	return hex.EncodeToString(h.Sum(nil)), true, nil
}

// countingReader adds the bytes read through it to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n.Add(int64(k))
	return k, err
}

// restartPart empties the partial file and the running hash.
func restartPart(f *os.File, h hash.Hash) error {
	h.Reset()
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// parseContentRange parses "bytes FIRST-LAST/SIZE" or "bytes */SIZE"; size
// is 0 when given as "*".
func parseContentRange(s string) (first, size int64, ok bool) {
	s, ok = strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, sz, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, false
	}
	if sz != "*" {
		var err error
		if size, err = strconv.ParseInt(sz, 10, 64); err != nil || size < 0 {
			return 0, 0, false
		}
	}
	if rng == "*" {
		return -1, size, true
	}
	a, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false
	}
	return first, size, true
}

func report(o *DownloadOptions, done, total int64, start time.Time) {
	if o.Progress != nil {
		o.Progress(Progress{Stage: "download", Done: done, Total: total, Elapsed: time.Since(start)})
	}
}

// progressWriter reports progress as bytes go by.
type progressWriter struct {
	o           *DownloadOptions
	done, total int64
	last        int64
	start       time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.done-p.last >= 256<<10 {
		p.last = p.done
		report(p.o, p.done, p.total, p.start)
	}
	return len(b), nil
}
