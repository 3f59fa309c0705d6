package ann

import (
	"fmt"
	"math"

	"github.com/stylespace/style/internal/engine"
)

// item is a node and its squared distance to the query. Heaps order items
// by (d, i), so ties are broken the same way on every run.
type item struct {
	d float32
	i int32
}

func less(a, b item) bool {
	return a.d < b.d || (a.d == b.d && a.i < b.i)
}

// minHeap pops the nearest item first.
type minHeap []item

func (h *minHeap) push(x item) {
	s := append(*h, x)
	j := len(s) - 1
	for j > 0 {
		p := (j - 1) / 2
		if !less(s[j], s[p]) {
			break
		}
		s[j], s[p] = s[p], s[j]
		j = p
	}
	*h = s
}

func (h *minHeap) pop() item {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	j := 0
	for {
		c := 2*j + 1
		if c >= n {
			break
		}
		if c+1 < n && less(s[c+1], s[c]) {
			c++
		}
		if !less(s[c], s[j]) {
			break
		}
		s[j], s[c] = s[c], s[j]
		j = c
	}
	*h = s
	return top
}

// maxHeap keeps the farthest item on top.
type maxHeap []item

func (h *maxHeap) push(x item) {
	s := append(*h, x)
	j := len(s) - 1
	for j > 0 {
		p := (j - 1) / 2
		if !less(s[p], s[j]) {
			break
		}
		s[j], s[p] = s[p], s[j]
		j = p
	}
	*h = s
}

func (h *maxHeap) pop() item {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	j := 0
	for {
		c := 2*j + 1
		if c >= n {
			break
		}
		if c+1 < n && less(s[c], s[c+1]) {
			c++
		}
		if !less(s[j], s[c]) {
			break
		}
		s[j], s[c] = s[c], s[j]
		j = c
	}
	*h = s
	return top
}

// searcher is the scratch space of one search at a time: a visited mark
// per node (stamped with the search's epoch, so it is never cleared) and
// the two heaps.
type searcher struct {
	visited []uint32
	epoch   uint32
	cand    minHeap
	res     maxHeap
	ids     []uint32 // unvisited neighbours of the node being expanded
	sink    uint32   // keeps touch's loads
}

// reset prepares s for a new search over n nodes.
func (s *searcher) reset(n int) {
	if len(s.visited) != n {
		s.visited = make([]uint32, n)
		s.epoch = 0
	}
	s.epoch++
	if s.epoch == 0 { // wrapped: stale marks could collide
		clear(s.visited)
		s.epoch = 1
	}
	s.cand = s.cand[:0]
	s.res = s.res[:0]
}

var inf32 = float32(math.Inf(1))

// touch loads one word of every 64-byte line of the vectors of ids and
// returns a value derived from them. Loads that need nothing but an
// address run many at a time, so the cache misses and page walks of the
// scattered vectors overlap instead of stalling the distance loops one
// vector after another (Go has no prefetch instruction).
func (ix *Index) touch(ids []uint32) uint32 {
	var t0, t1 uint32
	d := ix.dim
	for _, e := range ids {
		v := ix.vecs[int(e)*d : int(e)*d+d]
		k := 0
		for ; k+16 < len(v); k += 32 {
			t0 ^= math.Float32bits(v[k])
			t1 ^= math.Float32bits(v[k+16])
		}
		if k < len(v) {
			t0 ^= math.Float32bits(v[k])
		}
	}
	return t0 ^ t1
}

// dist returns the squared distance from q to node i, +Inf for NaN, or
// false if it exceeds bound.
func (ix *Index) dist(q []float32, i int32, bound float32) (float32, bool) {
	d, ok := engine.SqDistBounded(q, ix.vec(i), bound)
	if d != d {
		return inf32, inf32 <= bound
	}
	return d, ok
}

// greedy moves from ep (a node and its squared distance to q) on layer l
// to ever nearer neighbours, and returns the node where none is nearer.
func (ix *Index) greedy(q []float32, ep item, l int) item {
	for changed := true; changed; {
		changed = false
		for _, e := range ix.neighbors(ep.i, l) {
			d, ok := ix.dist(q, int32(e), ep.d)
			if ok && less(item{d, int32(e)}, ep) {
				ep = item{d, int32(e)}
				changed = true
			}
		}
	}
	return ep
}

// searchLayer runs the beam search of width ef on layer l from ep and
// leaves the ef nearest accepted nodes found in s.res. Rejected nodes
// are traversed but not kept. With budget > 0, it stops and returns false
// once it has computed more than budget distances.
func (ix *Index) searchLayer(s *searcher, q []float32, ep item, ef, l int, accept func(int) bool, budget int) bool {
	s.reset(ix.n)
	epoch := s.epoch
	visited := s.visited
	s.visited[ep.i] = epoch
	s.cand.push(ep)
	if accept == nil || accept(int(ep.i)) {
		s.res.push(ep)
	}
	evaluated := 1
	for len(s.cand) > 0 {
		c := s.cand.pop()
		if len(s.res) >= ef && less(s.res[0], c) {
			break
		}
		ids := s.ids[:0]
		for _, e := range ix.neighbors(c.i, l) {
			if visited[e] != epoch {
				visited[e] = epoch
				ids = append(ids, e)
			}
		}
		s.ids = ids
		s.sink ^= ix.touch(ids)
		for _, e := range ids {
			bound := inf32
			if len(s.res) >= ef {
				bound = s.res[0].d
			}
			evaluated++
			d, ok := ix.dist(q, int32(e), bound)
			if !ok {
				continue
			}
			x := item{d, int32(e)}
			if len(s.res) >= ef && !less(x, s.res[0]) {
				continue
			}
			s.cand.push(x)
			if accept == nil || accept(int(e)) {
				s.res.push(x)
				if len(s.res) > ef {
					s.res.pop()
				}
			}
		}
		if budget > 0 && evaluated > budget {
			return false
		}
	}
	return true
}

// Search appends to dst[:0] the k nearest items to q that accept keeps
// (nil keeps all), sorted by increasing (Dist, Index), and returns it
// with true; it returns fewer than k when fewer are reachable.
//
// ef is the width of the beam on the bottom layer: larger is slower and
// finds more of the true nearest neighbours; ef <= 0 means DefaultEf, and
// values below k are raised to k. With at most ef items the search is an
// exact scan.
//
// accept filters the results: rejected items are still traversed, so the
// search finds the accepted items near the query even across rejected
// ones, but it has to look at about 1/p times more items when a fraction
// p of them is accepted, and recall drops when the accepted items are few
// and scattered. When accept is not nil and the search has computed more
// than max(Len()/4, 4·ef·2M) distances (a quarter of an exact scan's, or
// a few times an unfiltered search's on small indexes), it gives up: it
// returns the accepted items found so far and false, and the caller
// should answer with an exact scan, which costs little more by then. A
// nil accept never gives up. accept is called from the calling goroutine
// only.
//
// Search is safe for concurrent use. It allocates nothing once dst has
// room for k results and its scratch space (pooled per index) has grown
// to its working size. It panics if len(q) != Dim() or k < 0.
func (ix *Index) Search(dst []Result, q []float32, k, ef int, accept func(i int) bool) ([]Result, bool) {
	if len(q) != ix.dim {
		panic(fmt.Sprintf("style: ann: query of length %d, index of dimension %d", len(q), ix.dim))
	}
	if k < 0 {
		panic(fmt.Sprintf("style: ann: negative k %d", k))
	}
	dst = dst[:0]
	if k == 0 || ix.n == 0 {
		return dst, true
	}
	if ef <= 0 {
		ef = DefaultEf
	}
	ef = max(ef, k)
	s, _ := ix.pool.Get().(*searcher)
	if s == nil {
		s = new(searcher)
	}
	defer ix.pool.Put(s)

	complete := true
	if ix.n <= ef {
		ix.scan(s, q, k, accept)
	} else {
		d, _ := ix.dist(q, ix.entry, inf32)
		ep := item{d, ix.entry}
		for l := ix.maxLevel; l > 0; l-- {
			ep = ix.greedy(q, ep, l)
		}
		budget := 0
		if accept != nil {
			budget = max(ix.n/4, 4*ef*ix.m0)
		}
		complete = ix.searchLayer(s, q, ep, ef, 0, accept, budget)
		for len(s.res) > k {
			s.res.pop()
		}
	}
	// Pop the farthest first into the tail of dst.
	m := len(s.res)
	if cap(dst) < m {
		dst = make([]Result, m)
	}
	dst = dst[:m]
	for j := m - 1; j >= 0; j-- {
		x := s.res.pop()
		dst[j] = Result{Index: x.i, Dist: x.d}
	}
	return dst, complete
}

// scan leaves the k nearest accepted items in s.res by computing every
// distance.
func (ix *Index) scan(s *searcher, q []float32, k int, accept func(int) bool) {
	s.res = s.res[:0]
	for i := range int32(ix.n) {
		bound := inf32
		if len(s.res) == k {
			bound = s.res[0].d
		}
		d, ok := ix.dist(q, i, bound)
		if !ok {
			continue
		}
		x := item{d, i}
		if len(s.res) == k && !less(x, s.res[0]) {
			continue
		}
		if accept != nil && !accept(int(i)) {
			continue
		}
		s.res.push(x)
		if len(s.res) > k {
			s.res.pop()
		}
	}
}
