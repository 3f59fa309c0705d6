package style

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync"

	"github.com/stylespace/style/internal/engine"
)

// The batch search screens items with matrix products and computes the
// exact distance (engine.SqDistBounded's) only for the items that may
// enter a query's top k, so its results, distances included, are
// bit-identical to those of search.
//
// For a block of queries Q and a block of items X, D = Q Xᵀ comes from
// Sgemm and the squared distance is approximated by
//
//	a = |q|² + |x|² - 2 q·x
//
// with the norms summed in float32. Write u = 2⁻²⁴ and γ = d·u/(1-d·u)
// for dimension d. Each of the three float32 sums (any order, fused or
// not) is within γ times its sum of absolute terms of the true value, and
// |q·x| <= (|q|²+|x|²)/2, so |a - D*| <= 2γ/(1-γ)·(qn+xn) <= 3γ·(qn+xn)
// for the true squared distance D* and the computed norms qn, xn. The
// screening evaluates xs - 2·dot in float32, with xs = (1-cγ)·xn rounded
// to float32, adding at most 4u·(qn+xn) more; since u <= γ, c = 8 covers
// the 3γ + 4u with room to spare, so
//
//	L = (1-cγ)·(qn+xn) - 2·dot  <=  D*.
//
// The reported distance D (SqDistBounded: a difference, a square and at
// most d/4+5 chained additions per term, all rounded, so at most d+10
// roundings of a non-negative term) satisfies D >= D*·(1-(d+10)u) - η,
// where η = (d+8)·2⁻¹²⁶ exceeds the absolute error, at most 2⁻¹⁵⁰ per
// operation, of the subnormal results on either side (the relative bounds
// above hold for normal results only). An item is skipped only when
// L > (w+η)/(1-(d+10)u) for the current k-th distance w of the query;
// then D > w, and search would reject it as well (it keeps an item only
// when D < w). Skipped items never reach the filter either, as in
// search. Items whose squared norm overflows float32 are never screened
// out (their xs is -Inf), nor is anything for a query whose threshold is
// not finite (an overflowing |q|², a NaN query, w = +Inf), so those
// distances are all computed exactly.
const screenC = 8

// batchGEMMMin is the least number of queries RecommendBatch sends
// through the matrix-product screening; fewer go one by one through
// search. Tests lower it.
var batchGEMMMin = 8

// Block sizes of the batch search: queries per Sgemm and items per Sgemm
// (64×1024 dot products, 256 KiB, stay in L2 with the item block).
const (
	batchQueryBlock = 64
	batchItemBlock  = 1024
)

// batchScratch is one worker's buffers.
type batchScratch struct {
	dots []float32 // batchQueryBlock × batchItemBlock
	xs   []float32 // (1-cγ)·|x|² of the block's items
	q    []float32 // the query block, contiguous
	zero []float32 // d zeros: |x|² is engine.SqDist16 from the origin
}

var batchPool = sync.Pool{New: func() any { return new(batchScratch) }}

// searchBatch answers every query as search does, for k >= 1 and a
// non-empty catalogue. Work units are (query block, item range) pairs;
// with fewer query blocks than workers the items are split into ranges
// too, and each query's range heaps are merged as in search, so the
// result does not depend on the number of workers.
func (c *Catalog) searchBatch(ctx context.Context, queries [][]float32, k int, f *candFilter, workers int) ([][]Match, error) {
	n := len(c.ids)
	kk := min(k, n)
	nq := len(queries)
	qBlocks := (nq + batchQueryBlock - 1) / batchQueryBlock
	ranges := 1
	if qBlocks < workers {
		ranges = min((workers+qBlocks-1)/qBlocks, max(1, n/batchItemBlock))
	}
	units := qBlocks * ranges
	workers = max(1, min(workers, units))

	// heaps[r*nq+i] is query i's heap over item range r.
	heapMem := make([]hit, ranges*nq*kk)
	heaps := make([][]hit, ranges*nq)
	for j := range heaps {
		heaps[j] = heapMem[j*kk : j*kk : (j+1)*kk]
	}
	qn := make([]float64, nq)
	for i, q := range queries {
		var s float32
		for _, v := range q {
			s += v * v
		}
		qn[i] = float64(s)
	}

	// One scratch per worker, from the pool for the call.
	scratch := make([]*batchScratch, workers)
	engine.For(workers, units, func(w, u int) {
		if ctx.Err() != nil {
			return
		}
		s := scratch[w]
		if s == nil {
			s = batchPool.Get().(*batchScratch)
			scratch[w] = s
		}
		qb, r := u/ranges, u%ranges
		q0, q1 := qb*batchQueryBlock, min(nq, (qb+1)*batchQueryBlock)
		lo, hi := r*n/ranges, (r+1)*n/ranges
		c.screenUnit(queries[q0:q1], qn[q0:q1], heaps[r*nq+q0:r*nq+q1], lo, hi, kk, f, s)
	})
	for _, s := range scratch {
		if s != nil {
			batchPool.Put(s)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Merge and sort each query's heaps as search does; the results
	// share one backing array.
	total := 0
	for i := range nq {
		m := 0
		for r := range ranges {
			m += len(heaps[r*nq+i])
		}
		total += min(m, kk)
	}
	matches := make([]Match, total)
	out := make([][]Match, nq)
	var all []hit
	for i := range nq {
		all = all[:0]
		for r := range ranges {
			all = append(all, heaps[r*nq+i]...)
		}
		slices.SortFunc(all, func(a, b hit) int {
			if r := cmp.Compare(a.d, b.d); r != 0 {
				return r
			}
			return cmp.Compare(a.i, b.i)
		})
		all = all[:min(kk, len(all))]
		res := matches[:len(all):len(all)]
		matches = matches[len(all):]
		for j, h := range all {
			ix := int(h.i)
			res[j] = Match{Index: ix, ID: c.ids[ix], Category: c.cats[c.cat[ix]], Distance: math.Sqrt(float64(h.d))}
		}
		out[i] = res
	}
	return out, nil
}

// screenUnit runs the queries qs (squared norms qn) over the items
// [lo, hi), updating their heaps hs in increasing item order.
func (c *Catalog) screenUnit(qs [][]float32, qn []float64, hs [][]hit, lo, hi, k int, f *candFilter, s *batchScratch) {
	d := c.dim
	u := math.Ldexp(1, -24)
	gamma := float64(d) * u / (1 - float64(d)*u)
	shrink := 1 - screenC*gamma
	eta := float64(d+8) * math.Ldexp(1, -126)
	grow := 1 / (1 - float64(d+10)*u)
	inf := float32(math.Inf(1))

	nqb := len(qs)
	if cap(s.dots) < batchQueryBlock*batchItemBlock {
		s.dots = make([]float32, batchQueryBlock*batchItemBlock)
		s.xs = make([]float32, batchItemBlock)
	}
	// The query block, packed contiguously.
	if cap(s.q) < nqb*d {
		s.q = make([]float32, batchQueryBlock*d)
	}
	qbuf := s.q[:nqb*d]
	if len(s.zero) != d {
		s.zero = make([]float32, d)
	}
	for i, q := range qs {
		copy(qbuf[i*d:], q)
	}
	// threshold returns the float32 T, rounded down, such that
	// xs - 2·dot > T proves the item cannot enter query i's heap.
	threshold := func(h []hit, i int) float32 {
		if len(h) < k {
			return inf
		}
		t := (float64(h[0].d)+eta)*grow - shrink*qn[i]
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return inf // qn or w overflowed, or a NaN query: screen nothing
		}
		t32 := float32(t)
		if float64(t32) > t {
			t32 = math.Nextafter32(t32, float32(math.Inf(-1)))
		}
		return t32
	}
	for b0 := lo; b0 < hi; b0 += batchItemBlock {
		b1 := min(hi, b0+batchItemBlock)
		nb := b1 - b0
		x := c.vecs[b0*d : b1*d]
		xs := s.xs[:nb]
		j := 0
		// |x|² is the squared distance to the origin.
		var part [64]float32
		for ; j+16 <= nb; j += 16 {
			engine.SqDist16(s.zero, x[j*d:(j+16)*d], d, inf, &part)
			for t := range 16 {
				xs[j+t] = screenNorm(shrink, engine.SqDistFinish(s.zero, x[(j+t)*d:(j+t+1)*d], part[4*t:4*t+4]))
			}
		}
		for ; j < nb; j++ {
			var t0, t1, t2, t3 float32
			v := x[j*d : (j+1)*d]
			e := 0
			for ; e+4 <= d; e += 4 {
				t0 += v[e] * v[e]
				t1 += v[e+1] * v[e+1]
				t2 += v[e+2] * v[e+2]
				t3 += v[e+3] * v[e+3]
			}
			for ; e < d; e++ {
				t0 += v[e] * v[e]
			}
			xs[j] = screenNorm(shrink, (t0+t1)+(t2+t3))
		}
		dots := s.dots[:nqb*nb]
		engine.Sgemm(false, true, nqb, nb, d, 1, qbuf, d, x, d, 0, dots, nb, 1)
		for i, q := range qs {
			h := hs[i]
			t := threshold(h, i)
			row := dots[i*nb : (i+1)*nb]
			for j := range nb {
				if xs[j]-2*row[j] > t {
					continue
				}
				ix := b0 + j
				if f.skip(c, ix) {
					continue
				}
				h = c.offerExact(h, k, f, ix, q)
				t = threshold(h, i)
			}
			hs[i] = h
		}
	}
}

// screenNorm returns xs = shrink·xn rounded to float32, or -Inf when the
// squared norm xn overflowed float32: the bound does not hold then, and
// -Inf - 2·dot is never above a threshold, so the item is never screened
// out.
func screenNorm(shrink float64, xn float32) float32 {
	if math.IsInf(float64(xn), 0) {
		return float32(math.Inf(-1))
	}
	return float32(shrink * float64(xn))
}
