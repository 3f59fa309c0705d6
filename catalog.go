package style

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/stylespace/style/internal/ann"
	"github.com/stylespace/style/internal/atomicfile"
	"github.com/stylespace/style/internal/engine"
)

// Item is one entry of a Catalog: an identified, categorised point of the
// style space.
type Item struct {
	ID        string    // unique, non-empty identifier, for example an image file name
	Category  string    // free-form category such as "shoes"; "" means none
	Embedding []float32 // style-space vector of length Catalog.Dim()
}

// Match is one result of a recommendation query.
type Match struct {
	Index    int     // position of the item in the catalogue, 0 <= Index < Len()
	ID       string  // the item's ID
	Category string  // the item's category
	Distance float64 // Euclidean distance to the query; smaller means more compatible
}

// Limits of a Catalog, enforced by Add and by LoadCatalog before anything
// is allocated from a file header.
const (
	maxCatalogItems = 1 << 28 // items in one catalogue: 268,435,456
	maxCatalogDim   = 1 << 16 // length of each embedding: 65,536
	maxCatalogIDLen = 1 << 12 // bytes in an ID, a category name or a metadata key or value: 4,096
)

// ErrUnknownItem is matched by errors.Is when an ID is not in a catalogue.
var ErrUnknownItem = errors.New("style: unknown catalogue item")

// Catalog is a catalogue of items embedded in the style space, searched
// exactly for the items closest to a query: the most compatible ones.
//
// The embeddings are stored contiguously (item i occupies
// [i*Dim(), (i+1)*Dim()) of one []float32), so a query scans memory
// linearly. The zero value is an empty catalogue whose dimension is fixed by
// the first Add.
//
// A catalogue holds at most 2^28 items of at most 65,536 values; IDs,
// category names and metadata keys and values are at most 4,096 bytes.
//
// Methods that only read (Len, Dim, Item, Index, FeatureTo, Recommend,
// RecommendItem, RecommendBatch, Save) are safe for concurrent use with
// each other; Add, AddImages and changes to Meta are not safe for
// concurrent use with anything.
//
// Catalog implements FeatureSource, so a catalogue can be fed directly to
// code that reads feature vectors by index.
type Catalog struct {
	// Meta holds free-form catalogue-level metadata, for example the
	// backbone and head the embeddings were computed with. It is saved and
	// loaded with the catalogue; keys and values are limited to 4,096
	// bytes each, and there may be at most 65,535 pairs. A nil map is
	// fine.
	Meta map[string]string

	dim   int
	ids   []string
	cat   []uint32  // category index of each item
	vecs  []float32 // len(ids) * dim
	cats  []string  // category names in order of first appearance
	catIx map[string]uint32
	byID  map[string]int
	keys  []itemKey // version of each item's image, the zero key if unknown

	disk catalogDisk // the file the catalogue was loaded from or saved to
	ann  *ann.Index  // approximate index over vecs (see BuildIndex); nil if none
}

var _ FeatureSource = (*Catalog)(nil)

// Len returns the number of items.
func (c *Catalog) Len() int { return len(c.ids) }

// Dim returns the length of the embeddings, 0 for an empty catalogue whose
// dimension is not fixed yet.
func (c *Catalog) Dim() int { return c.dim }

// Add appends an item, copying its embedding. The first Add to an empty
// zero-value catalogue fixes Dim.
//
// Add returns an error, and leaves the catalogue unchanged, if the ID is
// empty, longer than 4,096 bytes or already present, the category name is
// longer than 4,096 bytes, the embedding holds a NaN or an infinity, or
// the catalogue already holds 2^28 items. It panics if the embedding is
// empty, longer than 65,536 values, or its length differs from Dim.
func (c *Catalog) Add(it Item) error {
	if _, dup := c.byID[it.ID]; dup {
		return fmt.Errorf("style: Catalog.Add: duplicate ID %q", it.ID)
	}
	return c.put(it, itemKey{}, "Catalog.Add")
}

// put adds it, or replaces in place the item with its ID, recording key
// as the version of its image. It checks the item as Add does; fn names
// the caller in errors.
func (c *Catalog) put(it Item, key itemKey, fn string) error {
	d := len(it.Embedding)
	if c.dim == 0 {
		if d == 0 || d > maxCatalogDim {
			panic(fmt.Sprintf("style: %s: embedding length %d out of range [1, %d]", fn, d, maxCatalogDim))
		}
	} else if d != c.dim {
		panic(fmt.Sprintf("style: %s: embedding length %d, catalogue dimension %d", fn, d, c.dim))
	}
	old, replace := c.byID[it.ID]
	switch {
	case it.ID == "":
		return fmt.Errorf("style: %s: empty ID", fn)
	case len(it.ID) > maxCatalogIDLen:
		return fmt.Errorf("style: %s: ID of %d bytes, more than %d", fn, len(it.ID), maxCatalogIDLen)
	case len(it.Category) > maxCatalogIDLen:
		return fmt.Errorf("style: %s: item %q: category of %d bytes, more than %d", fn, it.ID, len(it.Category), maxCatalogIDLen)
	case !replace && len(c.ids) >= maxCatalogItems:
		return fmt.Errorf("style: %s: catalogue full (%d items)", fn, maxCatalogItems)
	}
	for j, v := range it.Embedding {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("style: %s: item %q: embedding[%d] = %v", fn, it.ID, j, v)
		}
	}
	c.disk.dirty = true
	c.ann = nil // built over other embeddings
	c.dim = d
	if c.byID == nil {
		c.byID = make(map[string]int)
		c.catIx = make(map[string]uint32)
	}
	ci, ok := c.catIx[it.Category]
	if !ok {
		ci = uint32(len(c.cats))
		c.cats = append(c.cats, it.Category)
		c.catIx[it.Category] = ci
	}
	if replace {
		c.cat[old] = ci
		copy(c.row(old), it.Embedding)
		c.keys[old] = key
		return nil
	}
	c.byID[it.ID] = len(c.ids)
	c.ids = append(c.ids, it.ID)
	c.cat = append(c.cat, ci)
	c.vecs = append(c.vecs, it.Embedding...)
	c.keys = append(c.keys, key)
	return nil
}

// removeWhere removes the items for which drop returns true, keeping the
// order of the others, and returns how many it removed. Category names no
// longer used stay in the table (Save writes only the used ones).
func (c *Catalog) removeWhere(drop func(i int) bool) int {
	n := 0
	for i := range c.ids {
		if drop(i) {
			delete(c.byID, c.ids[i])
			continue
		}
		if n != i {
			c.ids[n], c.cat[n], c.keys[n] = c.ids[i], c.cat[i], c.keys[i]
			copy(c.vecs[n*c.dim:(n+1)*c.dim], c.row(i))
			c.byID[c.ids[n]] = n
		}
		n++
	}
	removed := len(c.ids) - n
	if removed > 0 {
		clear(c.ids[n:])
		c.ids, c.cat, c.keys, c.vecs = c.ids[:n], c.cat[:n], c.keys[:n], c.vecs[:n*c.dim]
		c.disk.dirty = true
		c.ann = nil
	}
	return removed
}

// Item returns item i with a copy of its embedding. It panics if i is out
// of range.
func (c *Catalog) Item(i int) Item {
	if i < 0 || i >= len(c.ids) {
		panic(fmt.Sprintf("style: Catalog.Item: index %d out of range [0, %d)", i, len(c.ids)))
	}
	return Item{ID: c.ids[i], Category: c.cats[c.cat[i]], Embedding: slices.Clone(c.row(i))}
}

// imageExts are the image file extensions: the ones DirSource.Names lists
// and Catalog.Index removes and adds, in the order it tries them.
var imageExts = [...]string{".jpg", ".jpeg", ".png", ".gif"}

// Index returns the position of the item called name, trying in turn:
//
//  1. the item whose ID is name;
//  2. if name ends in an image extension (".jpg", ".jpeg", ".png" or
//     ".gif", in any case), the item whose ID is name without it;
//  3. the item whose ID is name with ".jpg", ".jpeg", ".png" or ".gif"
//     added, in that order.
//
// So the ID of a product finds the item of its photo "<ID>.jpg", and the
// file name of a photo finds the item of its product ID.
func (c *Catalog) Index(name string) (int, bool) {
	if i, ok := c.byID[name]; ok {
		return i, true
	}
	if ext := path.Ext(name); len(ext) < len(name) && slices.Contains(imageExts[:], strings.ToLower(ext)) {
		if i, ok := c.byID[name[:len(name)-len(ext)]]; ok {
			return i, true
		}
	}
	for _, ext := range imageExts {
		if i, ok := c.byID[name+ext]; ok {
			return i, true
		}
	}
	return 0, false
}

// FeatureTo copies the embedding of item i into dst and returns dst. It
// panics if i is out of range or len(dst) != Dim().
func (c *Catalog) FeatureTo(dst []float32, i int) []float32 {
	if i < 0 || i >= len(c.ids) {
		panic(fmt.Sprintf("style: Catalog.FeatureTo: index %d out of range [0, %d)", i, len(c.ids)))
	}
	if len(dst) != c.dim {
		panic(fmt.Sprintf("style: Catalog.FeatureTo: len(dst) = %d, dimension %d", len(dst), c.dim))
	}
	copy(dst, c.row(i))
	return dst
}

// row returns the embedding of item i, aliasing the catalogue's storage.
func (c *Catalog) row(i int) []float32 {
	return c.vecs[i*c.dim : (i+1)*c.dim : (i+1)*c.dim]
}

// RecommendOptions restricts and tunes a recommendation query. A nil
// *RecommendOptions means the zero value: every item is a candidate and all
// CPUs are used.
type RecommendOptions struct {
	// Filter, if not nil, reports whether an item may be recommended. It
	// is called only for items close enough to enter the results (so
	// possibly for few of the catalogue's items), in no particular order,
	// and concurrently from several goroutines when Workers > 1. The Item's
	// Embedding aliases the catalogue's storage: read it, never modify or
	// retain it. Nil means every item may be recommended.
	Filter func(Item) bool

	// ExcludeID, if not "", removes the item with this ID from the
	// results, typically the query item itself. An ID that is not in the
	// catalogue excludes nothing.
	ExcludeID string

	// ExcludeCategory, if not "", removes the items of this category from
	// the results, as in "no more shoes for these shoes".
	ExcludeCategory string

	// ExcludeSameCategory makes RecommendItem remove the items of the
	// query item's category (if it has one). Recommend and RecommendBatch,
	// whose queries are bare vectors, ignore it. False keeps them.
	ExcludeSameCategory bool

	// Workers is the number of goroutines scanning the catalogue; 0 means
	// runtime.GOMAXPROCS(0). Small catalogues are scanned serially. The
	// results are identical for any number of workers. A negative number
	// makes Recommend panic and RecommendItem and RecommendBatch return an
	// error.
	Workers int

	// Approximate chooses between the exact scan and the approximate
	// index of the catalogue (see Catalog.BuildIndex). 0, the default,
	// uses the index when the catalogue has one and holds at least
	// 50,000 items, below which an exact scan takes a couple of
	// milliseconds or less; a positive value uses the index whenever
	// there is one; a negative value always scans exactly. Without an
	// index every search is exact. An approximate search returns matches
	// ordered and with distances as the exact one does, but may miss
	// some of the true nearest items (about 3% of the top 10 at the
	// default Ef on 1,000,000 clustered items). The options' exclusions
	// and Filter are applied during the search, so an excluded item is
	// never returned; when they reject so many of the items that the
	// index would have to visit a large part of the graph, the search
	// falls back to the exact scan.
	Approximate int

	// Ef is the size of the candidate list of an approximate search: 0
	// means 64; larger values raise recall and cost time (on 1,000,000
	// clustered items, recall@10 0.955 at 48, 0.970 at 64, 0.995 at 96).
	// Values below k are raised to k. It has no effect on exact searches.
	Ef int
}

// Recommend returns the k items closest to query in Euclidean distance
// (the most compatible ones), closest first, ties broken by lower index.
// Fewer than k matches are returned when fewer items pass the options'
// filters. The search is exact unless the catalogue has an index (see
// BuildIndex and RecommendOptions.Approximate).
//
// A query that contains NaN has all distances NaN; they are treated as
// +Inf, so such a query returns items in index order with Distance +Inf.
//
// Recommend panics if k or opts.Workers is negative or, for a non-empty
// catalogue, if len(query) != Dim().
func (c *Catalog) Recommend(query []float32, k int, opts *RecommendOptions) []Match {
	if k < 0 {
		panic("style: Catalog.Recommend: negative k")
	}
	var o RecommendOptions
	if opts != nil {
		o = *opts
	}
	if o.Workers < 0 {
		panic(fmt.Sprintf("style: Catalog.Recommend: negative Workers %d", o.Workers))
	}
	c.checkQuery(query)
	if k == 0 || len(c.ids) == 0 {
		return []Match{}
	}
	f := c.makeFilter(&o, -1)
	return c.query(query, k, &f, &o, o.Workers)
}

// RecommendItem returns the k items most compatible with the catalogue
// item id, as Recommend does for its embedding, always excluding the item
// itself (in addition to opts.ExcludeID) and, if opts.ExcludeSameCategory
// is set, the items of its category. id must be an item's ID exactly (see
// Index to find one). It returns an error matching ErrUnknownItem if id is
// not in the catalogue, and an error for a negative opts.Workers. It
// panics if k is negative.
func (c *Catalog) RecommendItem(id string, k int, opts *RecommendOptions) ([]Match, error) {
	if k < 0 {
		panic("style: Catalog.RecommendItem: negative k")
	}
	qi, ok := c.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownItem, id)
	}
	var o RecommendOptions
	if opts != nil {
		o = *opts
	}
	if o.Workers < 0 {
		return nil, fmt.Errorf("style: Catalog.RecommendItem: negative Workers %d", o.Workers)
	}
	if k == 0 {
		return []Match{}, nil
	}
	f := c.makeFilter(&o, qi)
	return c.query(c.row(qi), k, &f, &o, o.Workers), nil
}

// RecommendBatch runs Recommend for each query and returns the results in
// the order of the queries; they are identical to Recommend's, distances
// included, for any number of workers. From a few queries on, it screens
// the catalogue for blocks of queries at once with matrix products
// (|q|²+|x|²-2q·x, with a rigorous bound on its rounding error) and
// computes the exact distance only for items that may enter a query's
// top k, which is many times faster than separate queries. It checks ctx
// between queries and returns ctx.Err() if it is cancelled, and an error
// for a negative opts.Workers. It panics if k is negative or a query's
// length differs from Dim() for a non-empty catalogue.
func (c *Catalog) RecommendBatch(ctx context.Context, queries [][]float32, k int, opts *RecommendOptions) ([][]Match, error) {
	if k < 0 {
		panic("style: Catalog.RecommendBatch: negative k")
	}
	var o RecommendOptions
	if opts != nil {
		o = *opts
	}
	if o.Workers < 0 {
		return nil, fmt.Errorf("style: Catalog.RecommendBatch: negative Workers %d", o.Workers)
	}
	for _, q := range queries {
		c.checkQuery(q)
	}
	out := make([][]Match, len(queries))
	f := c.makeFilter(&o, -1)
	workers := min(engine.Workers(o.Workers), len(queries))
	if k > 0 && len(c.ids) > 0 && len(queries) >= batchGEMMMin && !c.useIndex(o.Approximate) {
		return c.searchBatch(ctx, queries, k, &f, max(1, workers))
	}
	if workers <= 1 || k == 0 || len(c.ids) == 0 {
		for i, q := range queries {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if k == 0 || len(c.ids) == 0 {
				out[i] = []Match{}
				continue
			}
			out[i] = c.query(q, k, &f, &o, o.Workers)
		}
		return out, nil
	}
	// Each worker takes whole queries in turn; each result depends only
	// on its query, so the output is independent of the schedule.
	engine.For(workers, len(queries), func(_, i int) {
		if ctx.Err() == nil {
			out[i] = c.query(queries[i], k, &f, &o, 1)
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// query answers one query for k >= 1 and a non-empty catalogue, from the
// index or by an exact scan as o chooses.
func (c *Catalog) query(q []float32, k int, f *candFilter, o *RecommendOptions, workers int) []Match {
	if c.useIndex(o.Approximate) {
		return c.searchIndex(q, k, f, o.Ef, workers)
	}
	return c.search(q, k, f, workers)
}

func (c *Catalog) checkQuery(q []float32) {
	if len(c.ids) > 0 && len(q) != c.dim {
		panic(fmt.Sprintf("style: Catalog.Recommend: query length %d, catalogue dimension %d", len(q), c.dim))
	}
}

// candFilter is a query's resolved filter: exclusions by index and
// category index, then the caller's predicate.
type candFilter struct {
	exclude1, exclude2 int   // item indices to skip, -1 for none
	skipCat1, skipCat2 int64 // category indices to skip, -1 for none
	pred               func(Item) bool
}

const noCategory = -1

func (c *Catalog) makeFilter(o *RecommendOptions, self int) candFilter {
	f := candFilter{exclude1: self, exclude2: -1, skipCat1: noCategory, skipCat2: noCategory, pred: o.Filter}
	if o.ExcludeID != "" {
		if i, ok := c.byID[o.ExcludeID]; ok {
			f.exclude2 = i
		}
	}
	if o.ExcludeCategory != "" {
		if ci, ok := c.catIx[o.ExcludeCategory]; ok {
			f.skipCat1 = int64(ci)
		}
	}
	if self >= 0 && o.ExcludeSameCategory {
		if ci := c.cat[self]; c.cats[ci] != "" {
			f.skipCat2 = int64(ci)
		}
	}
	return f
}

// skip reports whether item i is excluded before any distance is
// computed.
func (f *candFilter) skip(c *Catalog, i int) bool {
	if i == f.exclude1 || i == f.exclude2 {
		return true
	}
	ci := int64(c.cat[i])
	return ci == f.skipCat1 || ci == f.skipCat2
}

// hit is a heap entry: a squared distance and an item index.
type hit struct {
	d float32
	i int32
}

// worse reports whether a ranks after b: larger distance, then larger
// index.
func worse(a, b hit) bool {
	return a.d > b.d || (a.d == b.d && a.i > b.i)
}

// maxHeap keeps the k best hits seen, the worst of them at the root.
type maxHeap []hit

func (h maxHeap) up(j int) {
	for j > 0 {
		p := (j - 1) / 2
		if !worse(h[j], h[p]) {
			break
		}
		h[j], h[p] = h[p], h[j]
		j = p
	}
}

func (h maxHeap) down(j int) {
	n := len(h)
	for {
		l := 2*j + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && worse(h[r], h[l]) {
			m = r
		}
		if !worse(h[m], h[j]) {
			return
		}
		h[j], h[m] = h[m], h[j]
		j = m
	}
}

// searchScratch holds the per-query buffers, recycled through a pool so a
// query allocates only its result.
type searchScratch struct {
	heaps [][]hit
	all   []hit
	f     candFilter // the query's filter, here so that it does not escape per query
}

var searchPool = sync.Pool{New: func() any { return new(searchScratch) }}

// minParFloats is the least number of embedding floats per worker worth a
// goroutine (about 0.3 ms of work). Tests lower it to exercise the
// parallel path on small catalogues.
var minParFloats = 1 << 20

func (c *Catalog) search(q []float32, k int, filter *candFilter, workers int) []Match {
	n := len(c.ids)
	workers = min(engine.Workers(workers), max(1, n*c.dim/minParFloats))
	kk := min(k, n)

	s := searchPool.Get().(*searchScratch)
	s.f = *filter
	f := &s.f
	defer func() {
		s.f = candFilter{} // do not retain the caller's predicate
		searchPool.Put(s)
	}()
	for len(s.heaps) < workers {
		s.heaps = append(s.heaps, nil)
	}
	for w := range workers {
		if cap(s.heaps[w]) < kk {
			s.heaps[w] = make([]hit, 0, kk)
		}
		s.heaps[w] = s.heaps[w][:0]
	}
	if workers == 1 {
		// Without the loop's closure, which would escape: a query
		// allocates only its result.
		s.heaps[0] = c.scan(q, 0, n, kk, f, s.heaps[0])
	} else {
		// Contiguous ranges, one per worker; the merge below sorts by
		// (distance, index), so the result does not depend on the split.
		engine.For(workers, workers, func(_, r int) {
			s.heaps[r] = c.scan(q, r*n/workers, (r+1)*n/workers, kk, f, s.heaps[r])
		})
	}
	all := s.all[:0]
	for w := range workers {
		all = append(all, s.heaps[w]...)
	}
	slices.SortFunc(all, func(a, b hit) int {
		if r := cmp.Compare(a.d, b.d); r != 0 {
			return r
		}
		return cmp.Compare(a.i, b.i)
	})
	all = all[:min(kk, len(all))]
	s.all = all
	out := make([]Match, len(all))
	for j, h := range all {
		i := int(h.i)
		out[j] = Match{Index: i, ID: c.ids[i], Category: c.cats[c.cat[i]], Distance: math.Sqrt(float64(h.d))}
	}
	return out
}

// scan pushes the items of [lo, hi) that pass f into h, keeping the k
// closest, and returns h.
func (c *Catalog) scan(q []float32, lo, hi, k int, f *candFilter, h []hit) []hit {
	d := c.dim
	i := lo
	inf := float32(math.Inf(1))
	// Blocks of 16 items through the distance kernel, which gives exactly
	// the distances of engine.SqDistBounded. It may abandon items farther
	// than the bound of the block's start; the bound only decreases, so
	// they would be rejected below all the same.
	// (The pure-Go kernel is slower than the item-by-item loop below,
	// whose bound tightens after every item.)
	var part [64]float32
	for ; engine.SqDist16Fast() && i+16 <= hi; i += 16 {
		bound := inf
		if len(h) == k {
			bound = h[0].d
		}
		abandoned := engine.SqDist16(q, c.vecs[i*d:(i+16)*d], d, bound, &part)
		if abandoned == 0xffff {
			continue
		}
		for j := range 16 {
			if abandoned&(1<<j) != 0 {
				continue
			}
			v := c.vecs[(i+j)*d : (i+j+1)*d : (i+j+1)*d]
			h = c.offer(h, k, f, i+j, v, engine.SqDistFinish(q, v, part[4*j:4*j+4]))
		}
	}
	for ; i < hi; i++ {
		if f.skip(c, i) {
			continue
		}
		h = c.offerExact(h, k, f, i, q)
	}
	return h
}

// offerExact computes the distance from q to item i, giving up as soon as it
// cannot enter the full heap h, and offers the item if it can.
func (c *Catalog) offerExact(h []hit, k int, f *candFilter, i int, q []float32) []hit {
	d := len(q)
	v := c.vecs[i*d : (i+1)*d : (i+1)*d]
	bound := float32(math.Inf(1))
	if len(h) == k {
		bound = h[0].d
	}
	dist, ok := engine.SqDistBounded(q, v, bound)
	if !ok {
		return h
	}
	return c.offer(h, k, f, i, v, dist)
}

// offer pushes item i, with embedding v at squared distance dist from the
// query, into the heap h of the k best if it passes f and beats the
// current worst, and returns h. Items must be offered in increasing index
// order: an item tied with the current worst never displaces it.
func (c *Catalog) offer(h []hit, k int, f *candFilter, i int, v []float32, dist float32) []hit {
	if dist != dist { // NaN query
		dist = float32(math.Inf(1))
	}
	if len(h) == k && dist >= h[0].d {
		return h
	}
	if f.skip(c, i) {
		return h
	}
	if f.pred != nil && !f.pred(Item{ID: c.ids[i], Category: c.cats[c.cat[i]], Embedding: v}) {
		return h
	}
	if len(h) < k {
		h = append(h, hit{dist, int32(i)})
		maxHeap(h).up(len(h) - 1)
	} else {
		h[0] = hit{dist, int32(i)}
		maxHeap(h).down(0)
	}
	return h
}

// The catalogue file format, version 2. All integers are little-endian.
//
//	offset  size  field
//	0       8     magic "STYLECAT"
//	8       4     version (2; 1 is read too)
//	12      4     dim: embedding length (0 only when items is 0)
//	16      8     items
//	24      4     categories: distinct category names
//	28      4     metas: metadata key/value pairs
//	32      8     stringBytes: length of the string section
//	40      4     reserved, 0
//	44      4     CRC-32C (Castagnoli) of bytes 0..43
//	48            string section: metas keys (in increasing order) and
//	              values, then the category
//	              names, then the item IDs, each a uvarint length and
//	              its bytes; then the CRC-32C of the section (4 bytes)
//	              category section: items uint32 category indices; CRC-32C
//	              key section (version 2 only): for each item, the size
//	              (int64) and modification time (int64, Unix nanoseconds)
//	              of the image it was made from, 0 and 0 if unknown; CRC-32C
//	              embedding section: items*dim float32; CRC-32C
//
// The file ends right after the last checksum. Readers check every count
// against the limits and the file size before allocating anything.
// Writers list the categories in order of first use by the items, and only
// those in use.
const (
	catalogMagic      = "STYLECAT"
	catalogVersion    = 2
	catalogHeaderSize = 48
	catalogKeySize    = 16 // bytes per item in the key section
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// itemKey identifies the version of the image a catalogue item was made
// from: its size and modification time. The zero key means unknown (an
// item added with Add, or from a source that cannot tell, such as a
// URLSource); such items are never considered changed.
type itemKey struct {
	size  int64
	mtime int64 // Unix nanoseconds
}

// catalogPrint identifies the content of a catalogue file: its size and a
// checksum of its section checksums. A journal records the print of the
// file it extends.
type catalogPrint struct {
	size int64
	sum  uint32
}

// printOf returns the print of a file of size bytes with these section
// checksums.
func printOf(size int64, crcs []uint32) catalogPrint {
	b := make([]byte, 0, 4*len(crcs))
	for _, c := range crcs {
		b = binary.LittleEndian.AppendUint32(b, c)
	}
	return catalogPrint{size: size, sum: crc32.Checksum(b, castagnoli)}
}

// Save writes the catalogue to path atomically, in the format LoadCatalog
// reads: readers see the old file or the complete new one, never a partial
// write. Then it removes the journal of path (see Catalog.AddImages),
// whose items the file now holds, and writes the catalogue's index, if it
// has one (see BuildIndex), atomically to path + ".ann", or removes that
// file if it has none. It returns an error, and leaves the file
// as it was, if a metadata key or value is longer than 4,096 bytes or
// there are more than 65,535 metadata pairs.
func (c *Catalog) Save(path string) error {
	var fp catalogPrint
	err := atomicfile.Write(path, func(w io.Writer) error {
		var err error
		fp, err = c.encode(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("style: %w", err)
	}
	// The file is written: from here on the catalogue is that file, with
	// no journal yet, even if what follows fails, so that a journal opened
	// later starts afresh for this file.
	c.disk = catalogDisk{path: path, print: fp, meta: maps.Clone(c.Meta)}
	if err := os.Remove(journalPath(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("style: %w", err)
	}
	return c.saveIndex(path)
}

// encode writes the catalogue to w in the format LoadCatalog reads and
// returns the print of what it wrote.
func (c *Catalog) encode(w io.Writer) (catalogPrint, error) {
	if len(c.Meta) > math.MaxUint16 {
		return catalogPrint{}, fmt.Errorf("style: catalogue: %d metadata pairs, more than %d", len(c.Meta), math.MaxUint16)
	}
	keys := slices.Sorted(maps.Keys(c.Meta))
	var strs []byte
	for _, k := range keys {
		v := c.Meta[k]
		if len(k) > maxCatalogIDLen || len(v) > maxCatalogIDLen {
			return catalogPrint{}, fmt.Errorf("style: catalogue: metadata %q: key or value longer than %d bytes", k, maxCatalogIDLen)
		}
		strs = appendString(strs, k)
		strs = appendString(strs, v)
	}
	// The categories in use, in order of first use.
	remap := make([]uint32, len(c.cats))
	for j := range remap {
		remap[j] = math.MaxUint32
	}
	ncat := 0
	for _, ci := range c.cat {
		if remap[ci] == math.MaxUint32 {
			remap[ci] = uint32(ncat)
			ncat++
			strs = appendString(strs, c.cats[ci])
		}
	}
	for _, s := range c.ids {
		strs = appendString(strs, s)
	}

	cw := &countWriter{w: w}
	hdr := make([]byte, catalogHeaderSize)
	copy(hdr, catalogMagic)
	binary.LittleEndian.PutUint32(hdr[8:], catalogVersion)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(c.dim))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(len(c.ids)))
	binary.LittleEndian.PutUint32(hdr[24:], uint32(ncat))
	binary.LittleEndian.PutUint32(hdr[28:], uint32(len(keys)))
	binary.LittleEndian.PutUint64(hdr[32:], uint64(len(strs)))
	crcs := []uint32{crc32.Checksum(hdr[:44], castagnoli)}
	binary.LittleEndian.PutUint32(hdr[44:], crcs[0])
	cw.Write(hdr)
	cw.Write(strs)
	crcs = append(crcs, crc32.Checksum(strs, castagnoli))
	cw.writeCRC(crcs[1])

	// Category indices, keys and embeddings go through one reusable
	// buffer.
	buf := make([]byte, 0, 64<<10)
	crc := uint32(0)
	flush := func(last bool) {
		if len(buf) > 0 && (last || len(buf)+catalogKeySize > cap(buf)) {
			crc = crc32.Update(crc, castagnoli, buf)
			cw.Write(buf)
			buf = buf[:0]
		}
	}
	section := func() {
		flush(true)
		crcs = append(crcs, crc)
		cw.writeCRC(crc)
		crc = 0
	}
	for _, ci := range c.cat {
		buf = binary.LittleEndian.AppendUint32(buf, remap[ci])
		flush(false)
	}
	section()
	for _, k := range c.keys {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(k.size))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(k.mtime))
		flush(false)
	}
	section()
	for _, v := range c.vecs {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		flush(false)
	}
	section()
	return printOf(cw.n, crcs), cw.err
}

// uvarintLen returns the length of the minimal uvarint encoding of x.
func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// countWriter counts bytes and keeps the first error, after which it
// writes nothing.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (cw *countWriter) Write(p []byte) (int, error) {
	if cw.err != nil {
		return 0, cw.err
	}
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	cw.err = err
	return n, err
}

func (cw *countWriter) writeCRC(crc uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], crc)
	cw.Write(b[:])
}

// LoadCatalog reads a catalogue written by Save, with the items that
// Catalog.AddImages recorded in its journal (path + ".journal") since: a
// catalogue being indexed when its process was killed is loaded as of its
// last checkpoint, and indexing it again resumes from there. A journal
// record cut short by the crash is dropped. A file that is not a
// catalogue, truncated, too long, fails a checksum, declares counts beyond
// the limits of a Catalog (see there) or holds
// invalid content (duplicate or empty IDs, NaN embeddings, category indices
// out of range) gives a *FormatError naming the file and the byte offset.
// Nothing is allocated from the header before it is checked against the
// file's size.
//
// If path + ".ann" holds an index (see Catalog.BuildIndex and Save) built
// over exactly the loaded embeddings, LoadCatalog attaches it. The index
// is a cache of the catalogue: one built over other embeddings (a stale
// index, for example after items were added or journaled since, detected
// by a checksum of all the embeddings) or malformed is ignored, and
// searches are then exact until BuildIndex builds a new one.
//
// path may also name the manifest of a sharded output, or the folder
// holding it (manifest.json; see "Sharded outputs" at OpenFeatureStore for
// its format): the shards' catalogues are then loaded as one, their items
// in manifest order, each shard's in its file's order. Every shard's
// catalogue file is checked against the SHA-256 and item count the
// manifest records; a shard catalogue's journal and index are not read
// (the manifest pins the file), so the merged catalogue has no index
// until BuildIndex. The shards' metadata must be equal (it becomes the
// catalogue's), and no ID may be in two shards. A problem gives a
// *FormatError naming the manifest and the shard. The merged catalogue
// has no file: Save writes it anew.
func LoadCatalog(path string) (*Catalog, error) {
	if m := catalogManifestOf(path); m != "" {
		return loadShardedCatalog(m)
	}
	c, err := loadCatalogFile(path)
	if err != nil {
		return nil, err
	}
	if err := replayJournal(c, path); err != nil {
		return nil, err
	}
	c.loadIndex(path) // without a valid index, searches are exact
	return c, nil
}

// loadCatalogFile reads the catalogue file at path, without its journal
// and index.
func loadCatalogFile(path string) (*Catalog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("style: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("style: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("style: %s: not a regular file", path)
	}
	return decodeCatalog(bufio.NewReaderSize(f, int(min(1<<20, st.Size()))), st.Size(), path)
}

// catalogReader reads sections while tracking the offset for errors.
type catalogReader struct {
	r    io.Reader
	off  int64
	name string
}

func (cr *catalogReader) errorf(off int64, format string, args ...any) error {
	return &FormatError{Path: cr.name, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// read fills b, reporting a short read as a truncated file.
func (cr *catalogReader) read(b []byte, what string) error {
	n, err := io.ReadFull(cr.r, b)
	cr.off += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &FormatError{Path: cr.name, Offset: cr.off, Msg: "truncated in " + what, Err: io.ErrUnexpectedEOF}
	}
	if err != nil {
		return fmt.Errorf("style: read %s: %w", cr.name, err)
	}
	return nil
}

func (cr *catalogReader) checkCRC(crc uint32, what string) error {
	var b [4]byte
	if err := cr.read(b[:], what+" checksum"); err != nil {
		return err
	}
	if got := binary.LittleEndian.Uint32(b[:]); got != crc {
		return cr.errorf(cr.off-4, "%s checksum mismatch (stored %08x, computed %08x)", what, got, crc)
	}
	return nil
}

// decodeCatalog reads a catalogue from r, whose total size is size bytes.
func decodeCatalog(r io.Reader, size int64, name string) (*Catalog, error) {
	cr := &catalogReader{r: r, name: name}
	hdr := make([]byte, catalogHeaderSize)
	if size < catalogHeaderSize {
		return nil, cr.errorf(size, "truncated: %d bytes, shorter than the %d-byte header", size, catalogHeaderSize)
	}
	if err := cr.read(hdr, "header"); err != nil {
		return nil, err
	}
	if string(hdr[:8]) != catalogMagic {
		return nil, cr.errorf(0, "not a style catalogue (bad magic %q)", hdr[:8])
	}
	version := binary.LittleEndian.Uint32(hdr[8:])
	if version != 1 && version != catalogVersion {
		return nil, cr.errorf(8, "unsupported catalogue version %d (want 1 or %d)", version, catalogVersion)
	}
	crcs := []uint32{crc32.Checksum(hdr[:44], castagnoli)}
	if got := binary.LittleEndian.Uint32(hdr[44:]); got != crcs[0] {
		return nil, cr.errorf(44, "header checksum mismatch (stored %08x, computed %08x)", got, crcs[0])
	}
	dim := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	items := binary.LittleEndian.Uint64(hdr[16:])
	ncat := uint64(binary.LittleEndian.Uint32(hdr[24:]))
	nmeta := uint64(binary.LittleEndian.Uint32(hdr[28:]))
	sbytes := binary.LittleEndian.Uint64(hdr[32:])
	switch {
	case items > maxCatalogItems:
		return nil, cr.errorf(16, "%d items, more than %d", items, maxCatalogItems)
	case dim > maxCatalogDim:
		return nil, cr.errorf(12, "dimension %d, more than %d", dim, maxCatalogDim)
	case dim == 0 && items > 0:
		return nil, cr.errorf(12, "dimension 0 with %d items", items)
	case ncat > items:
		return nil, cr.errorf(24, "%d categories for %d items", ncat, items)
	case nmeta > math.MaxUint16:
		return nil, cr.errorf(28, "%d metadata pairs, more than %d", nmeta, math.MaxUint16)
	case binary.LittleEndian.Uint32(hdr[40:]) != 0:
		return nil, cr.errorf(40, "reserved field is not zero")
	}
	// Every string takes at least its one-byte length and at most the
	// length plus maxCatalogIDLen bytes.
	nstr := 2*nmeta + ncat + items
	if sbytes < nstr || sbytes > nstr*(3+maxCatalogIDLen) {
		return nil, cr.errorf(32, "string section of %d bytes cannot hold %d strings", sbytes, nstr)
	}
	// All counts are bounded above, so this cannot overflow.
	want := int64(catalogHeaderSize) + int64(sbytes) + 4 + 4*int64(items) + 4 + 4*int64(items)*int64(dim) + 4
	if version >= 2 {
		want += catalogKeySize*int64(items) + 4
	}
	if size != want {
		if size < want {
			return nil, cr.errorf(size, "truncated: file is %d bytes, header declares %d", size, want)
		}
		return nil, cr.errorf(want, "%d bytes of trailing data after the catalogue", size-want)
	}

	// Strings.
	strOff := cr.off
	strs := make([]byte, sbytes)
	if err := cr.read(strs, "string section"); err != nil {
		return nil, err
	}
	crcs = append(crcs, crc32.Checksum(strs, castagnoli))
	if err := cr.checkCRC(crcs[1], "string section"); err != nil {
		return nil, err
	}
	pos := 0
	next := func(what string) (string, error) {
		l, n := binary.Uvarint(strs[pos:])
		if n <= 0 || n != uvarintLen(l) {
			return "", cr.errorf(strOff+int64(pos), "bad length of %s", what)
		}
		if l > maxCatalogIDLen || l > uint64(len(strs)-pos-n) {
			return "", cr.errorf(strOff+int64(pos), "%s of %d bytes does not fit", what, l)
		}
		s := string(strs[pos+n : pos+n+int(l)])
		pos += n + int(l)
		return s, nil
	}
	c := &Catalog{dim: int(dim)}
	if nmeta > 0 {
		c.Meta = make(map[string]string, nmeta)
	}
	prevKey := ""
	for range nmeta {
		at := strOff + int64(pos)
		k, err := next("metadata key")
		if err != nil {
			return nil, err
		}
		v, err := next("metadata value")
		if err != nil {
			return nil, err
		}
		if k <= prevKey && len(c.Meta) > 0 {
			return nil, cr.errorf(at, "metadata key %q out of order", k)
		}
		c.Meta[k] = v
		prevKey = k
	}
	c.cats = make([]string, ncat)
	c.catIx = make(map[string]uint32, ncat)
	for j := range c.cats {
		at := strOff + int64(pos)
		s, err := next("category name")
		if err != nil {
			return nil, err
		}
		if _, dup := c.catIx[s]; dup {
			return nil, cr.errorf(at, "duplicate category %q", s)
		}
		c.cats[j] = s
		c.catIx[s] = uint32(j)
	}
	c.ids = make([]string, items)
	c.byID = make(map[string]int, items)
	for j := range c.ids {
		at := strOff + int64(pos)
		s, err := next("item ID")
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, cr.errorf(at, "item %d has an empty ID", j)
		}
		if _, dup := c.byID[s]; dup {
			return nil, cr.errorf(at, "duplicate item ID %q", s)
		}
		c.ids[j] = s
		c.byID[s] = j
	}
	if pos != len(strs) {
		return nil, cr.errorf(strOff+int64(pos), "%d unused bytes in the string section", len(strs)-pos)
	}

	// Category indices and embeddings, read through one buffer.
	buf := make([]byte, min(64<<10, max(catalogKeySize*items, 4*items*dim)))
	c.cat = make([]uint32, items)
	crc := uint32(0)
	firstNew := uint32(0) // version 2: the next category index to appear
	for j := 0; j < len(c.cat); {
		n := min(len(buf)/4, len(c.cat)-j)
		b := buf[:4*n]
		at := cr.off
		if err := cr.read(b, "category section"); err != nil {
			return nil, err
		}
		crc = crc32.Update(crc, castagnoli, b)
		for t := range n {
			ci := binary.LittleEndian.Uint32(b[4*t:])
			if uint64(ci) >= ncat {
				return nil, cr.errorf(at+int64(4*t), "item %d: category index %d out of range [0, %d)", j+t, ci, ncat)
			}
			if version >= 2 {
				if ci > firstNew {
					return nil, cr.errorf(at+int64(4*t), "item %d: category index %d before category %d is used", j+t, ci, firstNew)
				}
				if ci == firstNew {
					firstNew++
				}
			}
			c.cat[j+t] = ci
		}
		j += n
	}
	if err := cr.checkCRC(crc, "category section"); err != nil {
		return nil, err
	}
	if version >= 2 && uint64(firstNew) != ncat {
		return nil, cr.errorf(24, "%d categories, %d in use", ncat, firstNew)
	}
	crcs = append(crcs, crc)
	c.keys = make([]itemKey, items)
	if version >= 2 {
		crc = 0
		for j := 0; j < len(c.keys); {
			n := min(len(buf)/catalogKeySize, len(c.keys)-j)
			b := buf[:catalogKeySize*n]
			if err := cr.read(b, "key section"); err != nil {
				return nil, err
			}
			crc = crc32.Update(crc, castagnoli, b)
			for t := range n {
				c.keys[j+t] = itemKey{size: int64(binary.LittleEndian.Uint64(b[16*t:])), mtime: int64(binary.LittleEndian.Uint64(b[16*t+8:]))}
			}
			j += n
		}
		if err := cr.checkCRC(crc, "key section"); err != nil {
			return nil, err
		}
	}
	crcs = append(crcs, crc)
	c.vecs = make([]float32, items*dim)
	crc = 0
	for j := 0; j < len(c.vecs); {
		n := min(len(buf)/4, len(c.vecs)-j)
		b := buf[:4*n]
		at := cr.off
		if err := cr.read(b, "embedding section"); err != nil {
			return nil, err
		}
		crc = crc32.Update(crc, castagnoli, b)
		for t := range n {
			v := math.Float32frombits(binary.LittleEndian.Uint32(b[4*t:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, cr.errorf(at+int64(4*t), "item %d: embedding[%d] = %v", (j+t)/int(dim), (j+t)%int(dim), v)
			}
			c.vecs[j+t] = v
		}
		j += n
	}
	if err := cr.checkCRC(crc, "embedding section"); err != nil {
		return nil, err
	}
	crcs = append(crcs, crc)
	c.disk = catalogDisk{path: name, print: printOf(size, crcs), meta: maps.Clone(c.Meta)}
	return c, nil
}
