package style

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
)

// vpTree is a vantage-point tree over the rows of a row-major n x d matrix
// for exact k-nearest-neighbour search in Euclidean distance (Yianilos
// 1993). Each internal node splits its points by their distance to a
// vantage point at the median distance; small subsets are leaf buckets
// scanned linearly.
type vpTree struct {
	data  []float64
	d     int
	idx   []int32 // points, permuted so that each node owns a range
	nodes []vpNode
}

type vpNode struct {
	vp          int32   // vantage point (index into data), -1 for a leaf
	radius      float64 // median distance from vp
	lo, hi      int32   // range of idx owned by a leaf
	left, right int32   // children: inside and outside radius, -1 if empty
}

const vpLeafSize = 12

func newVPTree(data []float64, n, d int, seed uint64) *vpTree {
	t := &vpTree{data: data, d: d, idx: make([]int32, n)}
	for i := range t.idx {
		t.idx[i] = int32(i)
	}
	rng := rand.New(rand.NewPCG(seed, 0x7670_7472))
	dist := make([]float64, n)
	t.build(0, n, rng, dist)
	return t
}

func (t *vpTree) build(lo, hi int, rng *rand.Rand, dist []float64) int32 {
	if lo >= hi {
		return -1
	}
	id := int32(len(t.nodes))
	if hi-lo <= vpLeafSize {
		t.nodes = append(t.nodes, vpNode{vp: -1, lo: int32(lo), hi: int32(hi), left: -1, right: -1})
		return id
	}
	t.nodes = append(t.nodes, vpNode{})
	r := lo + rng.IntN(hi-lo)
	t.idx[lo], t.idx[r] = t.idx[r], t.idx[lo]
	vp := t.idx[lo]
	vpRow := t.row(int(vp))
	type pd struct {
		d float64
		i int32
	}
	items := make([]pd, hi-lo-1)
	for k := lo + 1; k < hi; k++ {
		items[k-lo-1] = pd{math.Sqrt(sqDist(vpRow, t.row(int(t.idx[k])))), t.idx[k]}
	}
	slices.SortFunc(items, func(a, b pd) int {
		if a.d != b.d {
			if a.d < b.d {
				return -1
			}
			return 1
		}
		return int(a.i - b.i)
	})
	for k, it := range items {
		t.idx[lo+1+k] = it.i
	}
	mid := lo + 1 + len(items)/2
	radius := items[len(items)/2].d
	left := t.build(lo+1, mid, rng, dist)
	right := t.build(mid, hi, rng, dist)
	t.nodes[id] = vpNode{vp: vp, radius: radius, left: left, right: right}
	return id
}

func (t *vpTree) row(i int) []float64 { return t.data[i*t.d : (i+1)*t.d] }

// sqDist returns the squared Euclidean distance between a and b.
func sqDist(a, b []float64) float64 { return sqDistBounded(a, b, math.Inf(1)) }

// sqDistBounded returns the squared Euclidean distance between a and b,
// or some value greater than bound as soon as the partial sum exceeds it:
// in high dimension most candidates are rejected halfway.
func sqDistBounded(a, b []float64, bound float64) float64 {
	b = b[:len(a)]
	var s float64
	k := 0
	for ; k+16 <= len(a); k += 16 {
		var s0, s1, s2, s3 float64
		for u := k; u < k+16; u += 4 {
			d0 := a[u] - b[u]
			d1 := a[u+1] - b[u+1]
			d2 := a[u+2] - b[u+2]
			d3 := a[u+3] - b[u+3]
			s0 += d0 * d0
			s1 += d1 * d1
			s2 += d2 * d2
			s3 += d3 * d3
		}
		s += (s0 + s1) + (s2 + s3)
		if s > bound {
			return s
		}
	}
	for ; k < len(a); k++ {
		d := a[k] - b[k]
		s += d * d
	}
	return s
}

// knnHeap is a bounded max-heap of neighbours ordered by distance, then
// index, so that ties are resolved the same way every time.
type knnHeap struct {
	k    int
	dist []float64 // Euclidean distances
	idx  []int32
}

func (h *knnHeap) less(a, b int) bool { // a is "bigger" (farther) than b
	if h.dist[a] != h.dist[b] {
		return h.dist[a] > h.dist[b]
	}
	return h.idx[a] > h.idx[b]
}

func (h *knnHeap) tau() float64 {
	if len(h.dist) < h.k {
		return math.Inf(1)
	}
	return h.dist[0]
}

func (h *knnHeap) push(d float64, i int32) {
	if len(h.dist) == h.k {
		if d > h.dist[0] || (d == h.dist[0] && i > h.idx[0]) {
			return
		}
		h.dist[0], h.idx[0] = d, i
		h.down(0)
		return
	}
	h.dist = append(h.dist, d)
	h.idx = append(h.idx, i)
	c := len(h.dist) - 1
	for c > 0 {
		p := (c - 1) / 2
		if !h.less(c, p) {
			break
		}
		h.dist[c], h.dist[p] = h.dist[p], h.dist[c]
		h.idx[c], h.idx[p] = h.idx[p], h.idx[c]
		c = p
	}
}

func (h *knnHeap) down(p int) {
	n := len(h.dist)
	for {
		c := 2*p + 1
		if c >= n {
			return
		}
		if c+1 < n && h.less(c+1, c) {
			c++
		}
		if !h.less(c, p) {
			return
		}
		h.dist[c], h.dist[p] = h.dist[p], h.dist[c]
		h.idx[c], h.idx[p] = h.idx[p], h.idx[c]
		p = c
	}
}

// search finds the k nearest neighbours of point q (excluding q itself).
func (t *vpTree) search(q int, h *knnHeap) {
	h.dist, h.idx = h.dist[:0], h.idx[:0]
	if len(t.nodes) > 0 {
		t.searchNode(0, q, t.row(q), h)
	}
}

func (t *vpTree) searchNode(id int32, q int, qr []float64, h *knnHeap) {
	nd := &t.nodes[id]
	if nd.vp < 0 {
		for k := nd.lo; k < nd.hi; k++ {
			j := t.idx[k]
			if int(j) == q {
				continue
			}
			tau := h.tau()
			d2 := sqDistBounded(qr, t.row(int(j)), tau*tau)
			if d2 <= tau*tau {
				h.push(math.Sqrt(d2), j)
			}
		}
		return
	}
	d := math.Sqrt(sqDist(qr, t.row(int(nd.vp))))
	if int(nd.vp) != q && d <= h.tau() {
		h.push(d, nd.vp)
	}
	if d < nd.radius {
		if nd.left >= 0 && d-h.tau() <= nd.radius {
			t.searchNode(nd.left, q, qr, h)
		}
		if nd.right >= 0 && d+h.tau() >= nd.radius {
			t.searchNode(nd.right, q, qr, h)
		}
	} else {
		if nd.right >= 0 && d+h.tau() >= nd.radius {
			t.searchNode(nd.right, q, qr, h)
		}
		if nd.left >= 0 && d-h.tau() <= nd.radius {
			t.searchNode(nd.left, q, qr, h)
		}
	}
}

// sparseP is a symmetric sparse matrix in compressed-row form.
type sparseP struct {
	n      int
	rowPtr []int
	col    []int32
	val    []float64
}

// knnAffinityTask finds the neighbours of a range of points and their
// conditional probabilities p(j|i) at the requested perplexity.
type knnAffinityTask struct {
	ctx        context.Context
	tree       *vpTree
	k          int
	perplexity float64
	nbr        []int32   // n x k neighbours
	cond       []float64 // n x k conditional probabilities
}

func (t *knnAffinityTask) run(lo, hi int) {
	h := &knnHeap{k: t.k, dist: make([]float64, 0, t.k), idx: make([]int32, 0, t.k)}
	d2 := make([]float64, t.k)
	order := make([]int, t.k)
	for i := lo; i < hi; i++ {
		if i%64 == 0 && t.ctx.Err() != nil {
			return
		}
		t.tree.search(i, h)
		// Sort the neighbours by distance, then index.
		for a := range order {
			order[a] = a
		}
		slices.SortFunc(order, func(a, b int) int {
			if h.dist[a] != h.dist[b] {
				if h.dist[a] < h.dist[b] {
					return -1
				}
				return 1
			}
			return int(h.idx[a] - h.idx[b])
		})
		nb := t.nbr[i*t.k : (i+1)*t.k]
		for a, o := range order {
			nb[a] = h.idx[o]
			d2[a] = h.dist[o] * h.dist[o]
		}
		perplexityRow(t.cond[i*t.k:(i+1)*t.k], d2, t.perplexity)
	}
}

// perplexityRow sets p to the Gaussian conditional distribution over the
// squared distances d2 whose entropy is log(perplexity), finding the
// precision beta by bisection (as scikit-learn's _binary_search_perplexity,
// tolerance 1e-5 nats, but with distances shifted by their minimum so that
// large distances cannot underflow every weight). It returns the entropy
// reached.
func perplexityRow(p, d2 []float64, perplexity float64) float64 {
	want := math.Log(perplexity)
	dmin := math.Inf(1)
	for _, v := range d2 {
		dmin = math.Min(dmin, v)
	}
	beta, lo, hi := 1.0, math.Inf(-1), math.Inf(1)
	// Start from a scale matched to the distances.
	if spread := d2[len(d2)-1] - dmin; spread > 0 {
		beta = 1 / spread
	}
	var h float64
	for step := 0; step < 200; step++ {
		sum, sd := 0.0, 0.0
		for j, v := range d2 {
			e := math.Exp(-(v - dmin) * beta)
			p[j] = e
			sum += e
			sd += (v - dmin) * e
		}
		h = math.Log(sum) + beta*sd/sum
		for j := range p {
			p[j] /= sum
		}
		diff := h - want
		if math.Abs(diff) <= 1e-5 {
			break
		}
		if diff > 0 {
			lo = beta
			if math.IsInf(hi, 1) {
				beta *= 2
			} else {
				beta = (beta + hi) / 2
			}
		} else {
			hi = beta
			if math.IsInf(lo, -1) {
				beta /= 2
			} else {
				beta = (beta + lo) / 2
			}
		}
	}
	return h
}

// tsneAffinities computes the symmetric sparse affinities P = (P + P^T) /
// sum over the k nearest neighbours of every point.
func tsneAffinities(ctx context.Context, pool *tsnePool, data []float64, n, d, k int, perplexity float64, seed uint64) (*sparseP, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tree := newVPTree(data, n, d, seed)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	task := &knnAffinityTask{ctx: ctx, tree: tree, k: k, perplexity: perplexity,
		nbr: make([]int32, n*k), cond: make([]float64, n*k)}
	pool.run(task, n, 64)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return symmetrize(task.nbr, task.cond, n, k), nil
}

// symmetrize returns (C + C^T) / sum(C + C^T) for the conditional matrix C
// given as k neighbours per row, with columns sorted in each row.
func symmetrize(nbr []int32, cond []float64, n, k int) *sparseP {
	count := make([]int, n+1)
	for i := 0; i < n; i++ {
		for a := 0; a < k; a++ {
			count[i+1]++
			count[int(nbr[i*k+a])+1]++
		}
	}
	for i := 0; i < n; i++ {
		count[i+1] += count[i]
	}
	cols := make([]int32, count[n])
	vals := make([]float64, count[n])
	fill := slices.Clone(count[:n])
	for i := 0; i < n; i++ {
		for a := 0; a < k; a++ {
			j := int(nbr[i*k+a])
			v := cond[i*k+a]
			cols[fill[i]], vals[fill[i]] = int32(j), v
			fill[i]++
			cols[fill[j]], vals[fill[j]] = int32(i), v
			fill[j]++
		}
	}
	P := &sparseP{n: n, rowPtr: make([]int, n+1)}
	P.col = make([]int32, 0, count[n])
	P.val = make([]float64, 0, count[n])
	type cv struct {
		c int32
		v float64
	}
	var row []cv
	for i := 0; i < n; i++ {
		row = row[:0]
		for e := count[i]; e < count[i+1]; e++ {
			row = append(row, cv{cols[e], vals[e]})
		}
		slices.SortStableFunc(row, func(a, b cv) int { return int(a.c - b.c) })
		for e := 0; e < len(row); e++ {
			if e > 0 && row[e].c == row[e-1].c {
				P.val[len(P.val)-1] += row[e].v
				continue
			}
			P.col = append(P.col, row[e].c)
			P.val = append(P.val, row[e].v)
		}
		P.rowPtr[i+1] = len(P.col)
	}
	sum := 0.0
	for _, v := range P.val {
		sum += v
	}
	sum = math.Max(sum, math.SmallestNonzeroFloat64)
	for e := range P.val {
		P.val[e] /= sum
	}
	return P
}
