package style

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stylespace/style/internal/ann"
	"github.com/stylespace/style/internal/atomicfile"
)

// Approximate search. A Catalog may carry an HNSW graph over its
// embeddings (internal/ann), built by BuildIndex and saved by Save next to
// the catalogue file, in path + ".ann". The graph is tied to the exact
// embeddings it was built over: any change to the items drops it, and a
// file whose checksum of the embeddings does not match the loaded
// catalogue (a stale index) is ignored by LoadCatalog, so a query is
// never answered from an index of other items.

// annMinItems is the least number of items from which Recommend uses an
// attached index on its own (RecommendOptions.Approximate 0). Below it an
// exact scan takes at most about 2 ms for 128-value embeddings, and
// costs no recall. A variable so that tests can lower it.
var annMinItems = 50000

// annConfig is the graph BuildIndex builds: M 16 and EfConstruction 200,
// recall@10 about 0.97 at the default ef of 64 on 1M clustered items.
// The seed is fixed so that the same catalogue gives the same index.
var annConfig = ann.Config{M: ann.DefaultM, EfConstruction: ann.DefaultEfConstruction, Seed: 1}

// indexPath returns the index file saved with the catalogue file path.
func indexPath(path string) string { return path + ".ann" }

// BuildIndex builds the approximate nearest-neighbour index (a
// hierarchical navigable small-world graph) of the catalogue and attaches
// it, replacing any other; Save then writes it next to the catalogue (see
// LoadCatalog). With an index, Recommend, RecommendItem and
// RecommendBatch answer catalogues of 50,000 items or more approximately
// (see RecommendOptions.Approximate): on 1,000,000 clustered 128-value
// embeddings, about 97% of the true 10 nearest at a fraction of a
// millisecond per query instead of tens of milliseconds. Building costs
// about 9 CPU-minutes for 1,000,000 such items, and about 150 bytes of
// memory per item besides the embeddings.
//
// workers is the number of goroutines building, 0 meaning
// runtime.GOMAXPROCS(0); the index is the same for any number. progress,
// if not nil, is called with Stage "index" as items are inserted. Adding,
// replacing or removing items drops the index. BuildIndex returns an
// error for a negative workers, and ctx.Err() if ctx is cancelled (the
// catalogue keeps its previous index then). It is not safe for
// concurrent use with other methods.
func (c *Catalog) BuildIndex(ctx context.Context, workers int, progress func(Progress)) error {
	if workers < 0 {
		return fmt.Errorf("style: Catalog.BuildIndex: negative workers %d", workers)
	}
	if len(c.ids) == 0 {
		c.ann = nil
		return nil
	}
	cfg := annConfig
	cfg.Workers = workers
	start := time.Now()
	var report func(done, total int)
	if progress != nil {
		report = func(done, total int) {
			progress(Progress{Stage: "index", Done: int64(done), Total: int64(total), Elapsed: time.Since(start)})
		}
	}
	ix, err := ann.Build(ctx, c.vecs, c.dim, &cfg, report)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("style: Catalog.BuildIndex: %w", err)
	}
	c.ann = ix
	return nil
}

// useIndex reports whether a query with the option approx goes through
// the index.
func (c *Catalog) useIndex(approx int) bool {
	if c.ann == nil || approx < 0 {
		return false
	}
	return approx > 0 || len(c.ids) >= annMinItems
}

// annScratch is a query's buffer of index results.
type annScratch struct {
	res []ann.Result
}

// searchIndex answers a query as search does, from the index: the same
// ordering and distances, for the items the graph finds. It falls back to
// search when the filter rejects so many items that the index gives up.
func (c *Catalog) searchIndex(q []float32, k int, f *candFilter, ef, workers int) []Match {
	var accept func(int) bool
	if f.exclude1 >= 0 || f.exclude2 >= 0 || f.skipCat1 != noCategory || f.skipCat2 != noCategory || f.pred != nil {
		accept = func(i int) bool {
			if f.skip(c, i) {
				return false
			}
			return f.pred == nil || f.pred(Item{ID: c.ids[i], Category: c.cats[c.cat[i]], Embedding: c.row(i)})
		}
	}
	s := annPool.Get().(*annScratch)
	defer annPool.Put(s)
	res, complete := c.ann.Search(s.res[:0], q, k, ef, accept)
	s.res = res
	if !complete {
		annFallbacks.Add(1)
		return c.search(q, k, f, workers)
	}
	out := make([]Match, len(res))
	for j, r := range res {
		i := int(r.Index)
		d := r.Dist
		if d != d { // NaN query, as in offer
			d = float32(math.Inf(1))
		}
		out[j] = Match{Index: i, ID: c.ids[i], Category: c.cats[c.cat[i]], Distance: math.Sqrt(float64(d))}
	}
	return out
}

// annFallbacks counts the approximate searches answered by the exact
// scan, for tests.
var annFallbacks atomic.Int64

var annPool = sync.Pool{New: func() any { return new(annScratch) }}

// saveIndex writes the attached index next to the catalogue file path, or
// removes an index file left there when there is none.
func (c *Catalog) saveIndex(path string) error {
	ip := indexPath(path)
	if c.ann == nil {
		if err := os.Remove(ip); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("style: %w", err)
		}
		return nil
	}
	if err := atomicfile.Write(ip, func(w io.Writer) error {
		_, err := c.ann.WriteTo(w)
		return err
	}); err != nil {
		return fmt.Errorf("style: %w", err)
	}
	return nil
}

// loadIndex attaches the index saved next to the catalogue file path if
// there is one and it was built over exactly c's embeddings. A missing,
// malformed or stale index leaves c without one (exact search): it is a
// cache of the catalogue, which BuildIndex rebuilds. The error says why
// no index was attached, nil if there was no file.
func (c *Catalog) loadIndex(path string) error {
	c.ann = nil
	ip := indexPath(path)
	f, err := os.Open(ip)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if len(c.ids) == 0 || !st.Mode().IsRegular() {
		return fmt.Errorf("style: %s: no index for this catalogue", ip)
	}
	ix, err := ann.Read(bufio.NewReaderSize(f, 1<<20), st.Size(), c.vecs, c.dim, ip)
	if err != nil {
		return err
	}
	c.ann = ix
	return nil
}
