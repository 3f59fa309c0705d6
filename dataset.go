package style

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"time"

	"github.com/stylespace/style/internal/engine"
)

// ExtractOptions configures ExtractFeatures. The zero value of each field
// selects its default.
type ExtractOptions struct {
	// Workers is the number of images loaded and run through the feature
	// extractor at once; 0 means runtime.GOMAXPROCS(0).
	Workers int
	// Progress, if not nil, is called with Stage "features", Done and Total
	// counted in distinct images (those already in the store count as
	// done), after each image. It runs on the goroutine that called
	// ExtractFeatures.
	Progress func(Progress)
}

// ImageFailure names an image that could not be loaded or whose features
// could not be computed, and why.
type ImageFailure struct {
	Name string
	Err  error
}

// String returns the name and the reason.
func (f ImageFailure) String() string { return f.Name + ": " + f.Err.Error() }

// ExtractReport summarises an ExtractFeatures run.
type ExtractReport struct {
	Total     int            // distinct names asked for
	Skipped   int            // already in the store, not recomputed
	Extracted int            // computed and stored by this run
	Failed    []ImageFailure // images left out, in the order of the names
	Elapsed   time.Duration
}

// ExtractFeatures computes the features of every distinct image in names
// that store does not hold yet, reading it from src and running it through
// fx, and stores them. Images already in the store are skipped, so a run
// interrupted by a crash or a cancelled ctx resumes where it stopped.
//
// Images that fail to load, to decode or to go through fx are listed in the
// report and left out, as are images whose features the store rejects
// (NaN, beyond ±MaxFloat16) or whose name is too long for it; the run goes
// on. A store error (a full disk, say)
// stops the run and is returned. When ctx is cancelled the images in flight
// are finished (their features stored), the store is synced, and ctx.Err()
// is returned with the report so far. The store is synced before returning
// in every case. The store's dimension and backbone must match fx's.
//
// Records are stored in the order images finish, which depends on timing;
// use store.Index to find an image, never its position in names.
func ExtractFeatures(ctx context.Context, store *FeatureStore, src ImageSource, fx FeatureExtractor, names []string, opts *ExtractOptions) (*ExtractReport, error) {
	start := time.Now()
	var o ExtractOptions
	if opts != nil {
		o = *opts
	}
	o.Workers = engine.Workers(o.Workers)
	if fx.FeatureLen() != store.Dim() {
		return nil, fmt.Errorf("style: ExtractFeatures: extractor gives %d features, store %s holds %d", fx.FeatureLen(), store.Dir(), store.Dim())
	}
	if fx.Backbone() != store.Backbone() {
		return nil, fmt.Errorf("style: ExtractFeatures: extractor backbone %+v differs from store %s backbone %+v", fx.Backbone(), store.Dir(), store.Backbone())
	}
	if store.readOnly {
		return nil, ErrStoreReadOnly
	}

	rep := &ExtractReport{}
	todo, total := pendingNames(names, store.Index)
	rep.Total, rep.Skipped = total, total-len(todo)
	progress := func() {
		if o.Progress != nil {
			o.Progress(Progress{Stage: "features", Done: int64(rep.Skipped + rep.Extracted + len(rep.Failed)),
				Total: int64(rep.Total), Elapsed: time.Since(start)})
		}
	}
	progress()

	type result struct {
		pos   int
		err   error // image failure
		fatal error // store failure
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The workers run in the background while this goroutine collects
	// their results; no image is started once ctx is cancelled.
	results := make(chan result)
	go func() {
		defer close(results)
		engine.For(o.Workers, len(todo), func(_, pos int) {
			if ctx.Err() != nil {
				return
			}
			r := result{pos: pos}
			name := todo[pos]
			img, err := OpenImage(ctx, src, name)
			if err == nil {
				var feat []float32
				feat, err = fx.Features(img)
				if err == nil && len(feat) != store.Dim() {
					err = fmt.Errorf("style: extractor returned %d features, want %d", len(feat), store.Dim())
				}
				if err == nil {
					_, perr := store.Put(name, feat)
					var ie *storeInputError
					switch {
					case perr == nil, errors.Is(perr, fs.ErrExist):
						// Stored, by this run or a concurrent one.
					case errors.As(perr, &ie):
						err = perr // this image only
					default:
						r.fatal = perr
					}
				}
			}
			if err != nil {
				if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
					return // interrupted, not failed: it will be retried
				}
				r.err = err
			}
			results <- r
		})
	}()

	var fatal error
	var failed []result
	for r := range results {
		switch {
		case r.fatal != nil:
			if fatal == nil {
				fatal = r.fatal
				cancel()
			}
		case r.err != nil:
			failed = append(failed, r)
			rep.Failed = append(rep.Failed, ImageFailure{}) // counted now, filled below
		default:
			rep.Extracted++
		}
		progress()
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i].pos < failed[j].pos })
	for i, r := range failed {
		rep.Failed[i] = ImageFailure{Name: todo[r.pos], Err: r.err}
	}
	serr := store.Sync()
	rep.Elapsed = time.Since(start)
	switch {
	case fatal != nil:
		return rep, fatal
	case serr != nil:
		return rep, serr
	}
	// Without a fatal error the local context is cancelled only through
	// its parent.
	return rep, ctx.Err()
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

// pendingNames returns the distinct names, in first-appearance order, that
// done does not know yet, and the number of distinct names.
func pendingNames(names []string, done func(string) (int, bool)) (todo []string, distinct int) {
	seen := make(map[string]struct{}, len(names))
	for _, n := range names {
		if _, ok := seen[n]; ok {
			continue
		}
		seen[n] = struct{}{}
		if _, ok := done(n); !ok {
			todo = append(todo, n)
		}
	}
	return todo, len(seen)
}
