package style

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"sync"
	"time"

	"github.com/stylespace/style/internal/engine"
)

// ExtractOptions configures ExtractFeatures and Catalog.AddImages. A nil
// *ExtractOptions means the zero value, and the zero value of each field
// selects its default.
type ExtractOptions struct {
	// Workers is the number of images loaded and run through the feature
	// extractor at once; 0 means runtime.GOMAXPROCS(0), and a negative
	// number is an error. It does not change the result.
	Workers int
	// Progress, if not nil, is called after each image, with Done and
	// Total counted in distinct images (those already stored count as
	// done) and Stage "features" (ExtractFeatures) or "index"
	// (Catalog.AddImages). It runs on the goroutine that made the call.
	Progress func(Progress)
	// Category, if not nil, returns the category of the catalogue item
	// made from the image called name ("" for none). Only
	// Catalog.AddImages uses it, on the goroutine that called AddImages;
	// ExtractFeatures ignores it. Nil means no categories.
	Category func(name string) string
	// CatalogPath, if not "", is the file the catalogue given to
	// Catalog.AddImages is loaded from (LoadCatalog) and saved to (Save);
	// AddImages then makes its work durable as it goes, in a journal
	// beside the file (see Catalog.AddImages). ExtractFeatures ignores it.
	CatalogPath string
	// Prune makes Catalog.AddImages take names as the complete list of
	// images: items whose ID is not among names are removed before
	// indexing. ExtractFeatures ignores it.
	Prune bool
}

// ImageFailure names an image that could not be loaded, or whose features
// could not be computed or stored, and why.
type ImageFailure struct {
	Name string
	Err  error
}

// ExtractReport summarises a run of ExtractFeatures or Catalog.AddImages.
type ExtractReport struct {
	Total   int            // distinct names asked for
	Skipped int            // already stored, not recomputed
	Done    int            // computed and stored by this run
	Failed  []ImageFailure // images left out, in the order of the names
	Elapsed time.Duration
	// FailedBy counts the failures by cause, for a summary such as
	// "1,640 of 1,640 images not found": "not found" (the error matches
	// fs.ErrNotExist: a missing file, an HTTP 404 or 410), "invalid name"
	// (ErrInvalidName), "too large" (ErrImageTooLarge), "decode"
	// (ErrFormat: not an image, or a damaged one), "network" (a download
	// that failed otherwise: connection errors, timeouts, other HTTP
	// statuses, a host taken as down) and "other" (the extractor's
	// errors, a rejected vector...). Causes without failures are absent;
	// the map is nil when nothing failed.
	FailedBy map[string]int
}

// failureCause returns the ExtractReport.FailedBy key of an image's error.
func failureCause(err error) string {
	var herr *httpStatusError
	var nerr net.Error
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "not found"
	case errors.Is(err, ErrInvalidName):
		return "invalid name"
	case errors.Is(err, ErrImageTooLarge):
		return "too large"
	case errors.Is(err, ErrFormat):
		return "decode"
	case errors.Is(err, errHostDown), errors.As(err, &herr), errors.As(err, &nerr),
		errors.Is(err, io.ErrUnexpectedEOF): // an answer cut short
		return "network"
	}
	return "other"
}

// storeSyncInterval is the longest time ExtractFeatures lets pass between
// two checkpoints of the store while it stores records.
const storeSyncInterval = 30 * time.Second

// ExtractFeatures computes the features of every distinct image in names
// that store does not hold yet, reading it from src and running it through
// fx, and stores them. Images already in the store are skipped, so a run
// interrupted by a crash or a cancelled ctx resumes where it stopped.
//
// The records are stored in the order of names, whatever the number of
// workers, so the same names give the same store. Images that fail to
// load, to decode or to go through fx are listed in the report and left
// out, as are images whose features the store rejects (NaN, beyond the
// float16 range) or whose name is too long for it; the run goes on. A
// store error (a full disk, say) stops the run and is returned.
//
// The store is checkpointed (see FeatureStore) every
// StoreOptions.CheckpointEvery records and at least every 30 seconds while
// records are stored, and before returning. When ctx is cancelled the
// images in flight are finished and stored, and ctx.Err() is returned with
// the report so far. The store's dimension and backbone must match fx's
// (a backbone mismatch matches ErrBackboneMismatch), and the store must be
// writable. fx must be safe for concurrent use.
func ExtractFeatures(ctx context.Context, store *FeatureStore, src ImageSource, fx FeatureExtractor, names []string, opts *ExtractOptions) (*ExtractReport, error) {
	o, err := extractSettings(opts, "ExtractFeatures")
	if err != nil {
		return nil, err
	}
	if fx.FeatureLen() != store.Dim() {
		return nil, fmt.Errorf("style: ExtractFeatures: extractor gives %d features, store %s holds %d", fx.FeatureLen(), store.dir, store.Dim())
	}
	if fx.Backbone() != store.Backbone() {
		return nil, fmt.Errorf("style: ExtractFeatures: %w: extractor backbone %+v differs from store %s backbone %+v",
			ErrBackboneMismatch, fx.Backbone(), store.dir, store.Backbone())
	}
	if store.readOnly {
		return nil, store.errReadOnly()
	}
	x := &extraction[*[]byte]{
		workers:  o.Workers,
		stage:    "features",
		progress: o.Progress,
		compute: func(ctx context.Context, name string) (*[]byte, error) {
			feat, err := extractImage(ctx, src, fx, name)
			if err != nil {
				return nil, err
			}
			return store.encodeRecord(name, feat)
		},
		commit: func(name string, rec *[]byte) (failed, fatal error) {
			defer store.bufs.Put(rec)
			store.mu.Lock()
			_, err := store.appendLocked(name, *rec)
			store.mu.Unlock()
			if err != nil && !errors.Is(err, fs.ErrExist) { // ErrExist: stored by a concurrent Put
				return nil, err
			}
			return nil, nil
		},
		checkpoint:         store.sync,
		checkpointEvery:    store.every,
		checkpointInterval: storeSyncInterval,
	}
	return x.run(ctx, names, func(n string) bool {
		_, ok := store.Index(n)
		return ok
	})
}

// extractSettings returns the options with Workers resolved, or an error
// for a negative Workers.
func extractSettings(opts *ExtractOptions, fn string) (ExtractOptions, error) {
	var o ExtractOptions
	if opts != nil {
		o = *opts
	}
	if o.Workers < 0 {
		return o, fmt.Errorf("style: %s: negative Workers %d", fn, o.Workers)
	}
	o.Workers = engine.Workers(o.Workers)
	return o, nil
}

// extractImage opens and decodes the image called name and returns its
// features.
func extractImage(ctx context.Context, src ImageSource, fx FeatureExtractor, name string) ([]float32, error) {
	img, err := OpenImage(ctx, src, name)
	if err != nil {
		return nil, err
	}
	feat, err := fx.Features(img)
	if err != nil {
		return nil, err
	}
	if len(feat) != fx.FeatureLen() {
		return nil, fmt.Errorf("style: extractor returned %d features for %s, want %d", len(feat), name, fx.FeatureLen())
	}
	return feat, nil
}

// finiteFeatures returns an error naming the image if feat holds a NaN or
// an infinity.
func finiteFeatures(feat []float32, name string) error {
	for j, v := range feat {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("style: extractor returned feature %d = %v for %s", j, v, name)
		}
	}
	return nil
}

// extraction is the loop shared by ExtractFeatures and Catalog.AddImages:
// skip what is done, compute the rest on worker goroutines, commit the
// results in the order of the names on the calling goroutine, checkpoint
// now and then, and report failures.
type extraction[T any] struct {
	workers  int // resolved: at least 1
	stage    string
	progress func(Progress)

	// compute returns the result for the image called name. It runs on
	// the worker goroutines; an error fails that image only.
	compute func(ctx context.Context, name string) (T, error)
	// commit stores a computed result, in the order of the names, on the
	// calling goroutine. failed fails that image only; fatal stops the
	// run, and is returned.
	commit func(name string, v T) (failed, fatal error)
	// checkpoint, if not nil, makes what was committed durable. It runs
	// on the calling goroutine after checkpointEvery commits or when
	// checkpointInterval has passed since the last one (whichever comes
	// first; 0 disables a criterion), and after the last commit. An error
	// stops the run, and is returned.
	checkpoint         func() error
	checkpointEvery    int
	checkpointInterval time.Duration
}

// extractWindow bounds, in multiples of the number of workers, how far the
// workers may run ahead of the oldest result not yet committed: the
// results waiting for it are held in memory.
const extractWindow = 8

// run runs the loop over the distinct names that done does not know.
func (x *extraction[T]) run(ctx context.Context, names []string, done func(string) bool) (*ExtractReport, error) {
	start := time.Now()
	todo, total := pendingNames(names, done)
	rep := &ExtractReport{Total: total, Skipped: total - len(todo)}
	progress := func() {
		if x.progress != nil {
			x.progress(Progress{Stage: x.stage, Done: int64(rep.Skipped + rep.Done + len(rep.Failed)),
				Total: int64(rep.Total), Elapsed: time.Since(start)})
		}
	}
	progress()

	type result struct {
		pos         int
		v           T
		err         error
		interrupted bool // by the cancellation: neither done nor failed
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := max(1, min(x.workers, len(todo)))
	jobs := make(chan int)
	results := make(chan result, workers)
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for pos := range jobs {
				r := result{pos: pos}
				r.v, r.err = x.compute(wctx, todo[pos])
				r.interrupted = r.err != nil && wctx.Err() != nil &&
					(errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded))
				results <- r
			}
		}()
	}

	var fatal error
	sinceCk, lastCk := 0, time.Now()
	commit := func(r result) {
		if r.interrupted || fatal != nil {
			return
		}
		err := r.err
		if err == nil {
			var ferr error
			if err, ferr = x.commit(todo[r.pos], r.v); ferr != nil {
				fatal = ferr
				cancel()
				return
			}
		}
		if err != nil {
			rep.Failed = append(rep.Failed, ImageFailure{Name: todo[r.pos], Err: err})
			if rep.FailedBy == nil {
				rep.FailedBy = make(map[string]int)
			}
			rep.FailedBy[failureCause(err)]++
		} else {
			rep.Done++
			sinceCk++
		}
		progress()
		if x.checkpoint != nil && sinceCk > 0 &&
			(x.checkpointEvery > 0 && sinceCk >= x.checkpointEvery ||
				x.checkpointInterval > 0 && time.Since(lastCk) >= x.checkpointInterval) {
			if err := x.checkpoint(); err != nil {
				fatal = err
				cancel()
				return
			}
			sinceCk, lastCk = 0, time.Now()
		}
	}

	// Positions are handed out in order, at most extractWindow×workers
	// ahead of the next one to commit; results wait in pending for the
	// ones before them. After a cancellation or a fatal error nothing new
	// is handed out, and the loop ends when every result is in.
	window := extractWindow * workers
	pending := make(map[int]result, window)
	next, issued, received := 0, 0, 0
	for {
		stop := fatal != nil || wctx.Err() != nil
		var send chan<- int
		if !stop && issued < len(todo) && issued < next+window {
			send = jobs
		}
		if send == nil && received == issued {
			break
		}
		var stopped <-chan struct{}
		if !stop {
			stopped = wctx.Done()
		}
		select {
		case send <- issued:
			issued++
		case r := <-results:
			received++
			pending[r.pos] = r
			for {
				p, ok := pending[next]
				if !ok {
					break
				}
				delete(pending, next)
				next++
				commit(p)
			}
		case <-stopped:
		}
	}
	close(jobs)
	wg.Wait()

	var ckErr error
	if x.checkpoint != nil && sinceCk > 0 {
		ckErr = x.checkpoint()
	}
	rep.Elapsed = time.Since(start)
	switch {
	case fatal != nil:
		return rep, fatal
	case ckErr != nil:
		return rep, ckErr
	}
	// Without a fatal error the local context is cancelled only through
	// its parent.
	return rep, ctx.Err()
}

// pendingNames returns the distinct names, in first-appearance order, that
// done does not know yet, and the number of distinct names.
func pendingNames(names []string, done func(string) bool) (todo []string, distinct int) {
	seen := make(map[string]struct{}, len(names))
	for _, n := range names {
		if _, ok := seen[n]; ok {
			continue
		}
		seen[n] = struct{}{}
		if !done(n) {
			todo = append(todo, n)
		}
	}
	return todo, len(seen)
}

// LabeledPairs maps pairs of image names to pairs of store indices. Pairs
// with an image the store does not hold (one that failed to load, say) are
// left out and returned as dropped.
func (s *FeatureStore) LabeledPairs(pairs []Pair) (labeled []LabeledPair, dropped []Pair) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	labeled = make([]LabeledPair, 0, len(pairs))
	for _, p := range pairs {
		a, okA := s.index[p.A]
		b, okB := s.index[p.B]
		if !okA || !okB {
			dropped = append(dropped, p)
			continue
		}
		labeled = append(labeled, LabeledPair{A: a, B: b, Label: p.Label})
	}
	return labeled, dropped
}
