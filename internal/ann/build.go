package ann

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/stylespace/style/internal/engine"
)

// maxBatch is the largest number of nodes inserted against one frozen
// graph. Batches double from 1 up to it; each node also considers the
// nodes before it in its batch, by exact distances, so a larger batch
// costs up to maxBatch/2 more distances per node but fewer barriers.
const maxBatch = 256

// testHookNode, if set, is called before each node's neighbour search.
var testHookNode func()

// edge is a link from node j (in the batch being inserted) to node e on
// layer l, with squared distance d.
type edge struct {
	l int32
	e int32
	j int32
	d float32
}

// buildScratch is one build goroutine's buffers.
type buildScratch struct {
	s     searcher
	intra []float32 // distances to the earlier nodes of the batch
	cands []item
	sel   []item
	ids   []uint32
}

// Build indexes n = len(vecs)/dim vectors stored row-major in vecs. The
// index keeps vecs, which must not be modified while it is in use.
//
// The graph is built in batches of nodes inserted in index order: the
// neighbour searches of a batch run in parallel against the graph as it
// was at the start of the batch, plus the earlier nodes of the batch by
// exact distance; the links are then added per target node in a fixed
// order. The result therefore depends only on vecs, dim and the Config
// (Seed included), not on Workers or scheduling.
//
// progress, if not nil, is called from Build's goroutine after each batch
// with the number of nodes inserted so far and n. Build checks ctx between
// nodes and returns ctx.Err() when it is cancelled.
//
// It returns an error for an invalid Config, non-finite vector
// components, or more than math.MaxInt32 vectors. It panics if dim < 1 or
// len(vecs) is not a multiple of dim.
func Build(ctx context.Context, vecs []float32, dim int, cfg *Config, progress func(done, total int)) (*Index, error) {
	if dim < 1 {
		panic(fmt.Sprintf("style: ann: dimension %d", dim))
	}
	if len(vecs)%dim != 0 {
		panic(fmt.Sprintf("style: ann: %d values are not rows of %d", len(vecs), dim))
	}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	switch {
	case c.M == 0:
		c.M = DefaultM
	case c.M < 2 || c.M > MaxM:
		return nil, fmt.Errorf("style: ann: M %d out of range [2, %d]", c.M, MaxM)
	}
	switch {
	case c.EfConstruction == 0:
		c.EfConstruction = DefaultEfConstruction
	case c.EfConstruction < 1 || c.EfConstruction > MaxEfConstruction:
		return nil, fmt.Errorf("style: ann: EfConstruction %d out of range [1, %d]", c.EfConstruction, MaxEfConstruction)
	}
	switch {
	case c.Workers == 0:
		c.Workers = runtime.GOMAXPROCS(0)
	case c.Workers < 0:
		return nil, fmt.Errorf("style: ann: negative Workers %d", c.Workers)
	}
	n := len(vecs) / dim
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("style: ann: %d vectors, more than %d", n, math.MaxInt32)
	}
	for k, v := range vecs {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("style: ann: vector %d component %d is %v", k/dim, k%dim, v)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	ix := newIndex(vecs, dim, c.M, max(c.EfConstruction, c.M), c.Seed)
	for i := range ix.levels {
		ix.levels[i] = uint8(level(c.Seed, i, c.M))
	}
	ix.layout()
	ix.fingerprint = fingerprint(vecs)
	if n == 0 {
		return ix, nil
	}
	ix.entry, ix.maxLevel = 0, int(ix.levels[0])

	b := &builder{ix: ix, ctx: ctx, workers: c.Workers}
	b.scratch = make([]buildScratch, c.Workers)
	for pos := 1; pos < n; {
		end := min(n, pos+min(pos, maxBatch))
		if err := b.batch(int32(pos), int32(end)); err != nil {
			return nil, err
		}
		pos = end
		if progress != nil {
			progress(pos, n)
		}
	}
	return ix, nil
}

// newIndex returns an index over vecs with the parameters set and levels
// allocated.
func newIndex(vecs []float32, dim, m, efc int, seed uint64) *Index {
	n := len(vecs) / dim
	return &Index{
		vecs: vecs, dim: dim, n: n,
		m: m, m0: 2 * m, efc: efc, seed: seed,
		levels: make([]uint8, n),
		entry:  -1,
	}
}

// layout sets upperOff from the levels and allocates the link arrays.
func (ix *Index) layout() {
	ix.upperOff = make([]uint32, ix.n)
	words := 0
	for i, l := range ix.levels {
		if l > 0 {
			ix.upperOff[i] = uint32(words)
			words += int(l) * (ix.m + 1)
		}
	}
	ix.links0 = make([]uint32, ix.n*(ix.m0+1))
	ix.upper = make([]uint32, words)
}

// builder holds the state of one Build.
type builder struct {
	ix      *Index
	ctx     context.Context
	workers int
	scratch []buildScratch

	// Per batch: the selected neighbours of each node, m slots per layer
	// from fwdOff[slot]+l·m, fwdLen[lvlOff[slot]+l] of them used.
	fwd    []item
	fwdLen []int32
	fwdOff []int32
	lvlOff []int32
	edges  []edge
	groups []int32 // starts of the runs of edges with the same (l, e)
}

// parallel runs fn(w, i) for i in [0, n) on up to b.workers goroutines,
// w being the goroutine's number, taking chunk items at a time. It stops
// early when the context is cancelled.
func (b *builder) parallel(n, chunk int, fn func(w, i int)) {
	workers := min(b.workers, (n+chunk-1)/chunk)
	var next atomic.Int64
	run := func(w int) {
		for b.ctx.Err() == nil {
			lo := int(next.Add(int64(chunk))) - chunk
			if lo >= n {
				return
			}
			for i := lo; i < min(n, lo+chunk); i++ {
				fn(w, i)
			}
		}
	}
	if workers <= 1 {
		run(0)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { run(w) })
	}
	wg.Wait()
}

// batch inserts the nodes [lo, hi).
func (b *builder) batch(lo, hi int32) error {
	ix := b.ix
	m := ix.m
	nb := int(hi - lo)

	// Where each node's selections go.
	b.fwdOff = slices.Grow(b.fwdOff[:0], nb)[:nb]
	b.lvlOff = slices.Grow(b.lvlOff[:0], nb)[:nb]
	slots, lvls := 0, 0
	for s := range nb {
		b.fwdOff[s] = int32(slots)
		b.lvlOff[s] = int32(lvls)
		L := int(ix.levels[int(lo)+s]) + 1
		slots += L * m
		lvls += L
	}
	b.fwd = slices.Grow(b.fwd[:0], slots)[:slots]
	b.fwdLen = slices.Grow(b.fwdLen[:0], lvls)[:lvls]

	// 1. Neighbour searches against the frozen graph, in parallel.
	entry, top := ix.entry, ix.maxLevel
	b.parallel(nb, 1, func(w, s int) { b.selectFor(&b.scratch[w], lo, lo+int32(s), entry, top) })
	if err := b.ctx.Err(); err != nil {
		return err
	}

	// 2. Forward links, the entry point, and the reverse edges.
	b.edges = b.edges[:0]
	for s := range nb {
		j := lo + int32(s)
		L := int(ix.levels[j])
		for l := 0; l <= L; l++ {
			sel := b.selection(s, l)
			ids := b.scratch[0].ids[:0]
			for _, x := range sel {
				ids = append(ids, uint32(x.i))
				b.edges = append(b.edges, edge{l: int32(l), e: x.i, j: j, d: x.d})
			}
			b.scratch[0].ids = ids
			ix.setNeighbors(j, l, ids)
		}
		if L > ix.maxLevel {
			ix.entry, ix.maxLevel = j, L
		}
	}
	slices.SortFunc(b.edges, func(x, y edge) int {
		if c := cmp.Compare(x.l, y.l); c != 0 {
			return c
		}
		if c := cmp.Compare(x.e, y.e); c != 0 {
			return c
		}
		return cmp.Compare(x.j, y.j)
	})
	b.groups = b.groups[:0]
	for k := range b.edges {
		if k == 0 || b.edges[k].e != b.edges[k-1].e || b.edges[k].l != b.edges[k-1].l {
			b.groups = append(b.groups, int32(k))
		}
	}
	ng := len(b.groups)
	b.groups = append(b.groups, int32(len(b.edges)))

	// 3. Reverse links, in parallel over target nodes: each (e, l) is
	// updated by one goroutine, taking its new neighbours in index order.
	b.parallel(ng, 16, func(w, g int) {
		b.link(&b.scratch[w], b.edges[b.groups[g]:b.groups[g+1]])
	})
	return b.ctx.Err()
}

// selection returns the neighbours selected for slot s of the batch on
// layer l.
func (b *builder) selection(s, l int) []item {
	off := int(b.fwdOff[s]) + l*b.ix.m
	return b.fwd[off : off+int(b.fwdLen[int(b.lvlOff[s])+l])]
}

// selectFor chooses the neighbours of node j on each of its layers, from
// the graph frozen with the given entry point and top layer, and from the
// batch nodes [lo, j).
func (b *builder) selectFor(sc *buildScratch, lo, j, entry int32, top int) {
	if testHookNode != nil {
		testHookNode()
	}
	ix := b.ix
	q := ix.vec(j)
	L := int(ix.levels[j])
	s := int(j - lo)

	// Exact distances to the earlier nodes of the batch.
	sc.intra = sc.intra[:0]
	for i := lo; i < j; i++ {
		d, _ := engine.SqDistBounded(q, ix.vec(i), inf32)
		sc.intra = append(sc.intra, d)
	}

	d, _ := engine.SqDistBounded(q, ix.vec(entry), inf32)
	ep := item{d, entry}
	for l := top; l > L; l-- {
		ep = ix.greedy(q, ep, l)
	}
	for l := L; l >= 0; l-- {
		sc.cands = sc.cands[:0]
		if l <= top {
			ix.searchLayer(&sc.s, q, ep, ix.efc, l, nil, 0)
			sc.cands = append(sc.cands, sc.s.res...)
		}
		full := len(sc.cands) >= ix.efc
		var worst item
		if full {
			worst = sc.s.res[0]
		}
		for k, d := range sc.intra {
			i := lo + int32(k)
			x := item{d, i}
			if int(ix.levels[i]) >= l && (!full || less(x, worst)) {
				sc.cands = append(sc.cands, x)
			}
		}
		slices.SortFunc(sc.cands, cmpItem)
		if len(sc.cands) > ix.efc {
			sc.cands = sc.cands[:ix.efc]
		}
		if l <= top && len(sc.s.res) > 0 {
			// The nearest frozen node enters the next layer down.
			for _, x := range sc.s.res {
				if less(x, ep) {
					ep = x
				}
			}
		}
		sel := ix.heuristic(sc.cands, q, ix.m, &sc.sel)
		off := int(b.fwdOff[s]) + l*ix.m
		copy(b.fwd[off:], sel)
		b.fwdLen[int(b.lvlOff[s])+l] = int32(len(sel))
	}
}

func cmpItem(a, b item) int {
	if c := cmp.Compare(a.d, b.d); c != 0 {
		return c
	}
	return cmp.Compare(a.i, b.i)
}

// heuristic selects up to m of the candidates, sorted by (distance to q,
// index), the way of Malkov & Yashunin's Algorithm 4: a candidate is kept
// unless it is nearer to an already kept node than to q, which spreads
// the links in all directions instead of into one cluster.
func (ix *Index) heuristic(cands []item, q []float32, m int, buf *[]item) []item {
	sel := (*buf)[:0]
	for _, c := range cands {
		if len(sel) == m {
			break
		}
		v := ix.vec(c.i)
		keep := true
		for _, r := range sel {
			if d, ok := engine.SqDistBounded(v, ix.vec(r.i), c.d); ok && d < c.d {
				keep = false
				break
			}
		}
		if keep {
			sel = append(sel, c)
		}
	}
	*buf = sel
	return sel
}

// link adds the reverse edges es (all to the same node e on the same
// layer, in increasing order of their source) to e's neighbour list,
// pruning it with the heuristic when it overflows.
func (b *builder) link(sc *buildScratch, es []edge) {
	ix := b.ix
	e, l := es[0].e, int(es[0].l)
	capacity := ix.m
	if l == 0 {
		capacity = ix.m0
	}
	cur := ix.neighbors(e, l)
	ids := append(sc.ids[:0], cur...)
	if len(cur)+len(es) <= capacity {
		for _, x := range es {
			ids = append(ids, uint32(x.j))
		}
	} else {
		q := ix.vec(e)
		sc.s.sink ^= ix.touch(cur)
		sc.cands = sc.cands[:0]
		for _, x := range cur {
			d, _ := engine.SqDistBounded(q, ix.vec(int32(x)), inf32)
			sc.cands = append(sc.cands, item{d, int32(x)})
		}
		for _, x := range es {
			sc.cands = append(sc.cands, item{x.d, x.j})
		}
		slices.SortFunc(sc.cands, cmpItem)
		ids = ids[:0]
		for _, x := range ix.heuristic(sc.cands, q, capacity, &sc.sel) {
			ids = append(ids, uint32(x.i))
		}
	}
	sc.ids = ids
	ix.setNeighbors(e, l, ids)
}
