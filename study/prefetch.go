package study

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/stylespace/style"
	"github.com/stylespace/style/internal/engine"
)

// PrefetchOptions configures Prefetch. A nil *PrefetchOptions means the
// zero value, and the zero value of each field selects its default.
type PrefetchOptions struct {
	// Concurrent is the number of images opened at once; 0 means 16, and
	// a negative number is an error. Downloads need far more concurrency
	// than there are CPUs; a style.URLSource bounds its requests further
	// with URLOptions.Concurrent.
	Concurrent int
	// Progress, if not nil, is called with Stage "download", Done and Total
	// counted in distinct images, after each image, from the goroutines
	// opening them, one call at a time.
	Progress func(style.Progress)
}

// Prefetch opens and reads every distinct image in names from src, which
// fills the cache of a style.URLSource: fetching first, with many
// downloads at once, keeps the feature extraction that follows busy.
// Images that fail are returned in the order of names; the run goes on.
// It returns ctx.Err() if ctx is cancelled, once the images in flight are
// done.
func Prefetch(ctx context.Context, src style.ImageSource, names []string, opts *PrefetchOptions) ([]style.ImageFailure, error) {
	start := time.Now()
	var o PrefetchOptions
	if opts != nil {
		o = *opts
	}
	if o.Concurrent < 0 {
		return nil, fmt.Errorf("study: Prefetch: negative Concurrent %d", o.Concurrent)
	}
	if o.Concurrent == 0 {
		o.Concurrent = 16
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
	engine.For(o.Concurrent, len(todo), func(_, i int) {
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
			o.Progress(style.Progress{Stage: "download", Done: done, Total: int64(len(todo)), Elapsed: time.Since(start)})
			mu.Unlock()
		}
	})
	var failed []style.ImageFailure
	for i, err := range errs {
		if err != nil {
			failed = append(failed, style.ImageFailure{Name: todo[i], Err: err})
		}
	}
	return failed, ctx.Err()
}
