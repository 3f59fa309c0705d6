package style

import (
	"context"
	"math"
	"slices"
)

// ballTree is a ball tree over the rows of a row-major n x d matrix for
// exact k-nearest-neighbour search in Euclidean distance (Omohundro 1989;
// Moore 2000). Each node holds a range of points with their centroid and
// the radius of the ball around it; a node is split in two by 2-means. In high dimension, where a
// vantage-point tree's shells prune almost nothing, tight balls still prune
// whole clusters: a query need not look inside a ball when its distance to
// the centroid minus the radius exceeds the current k-th distance.
type ballTree struct {
	ctx    context.Context
	data   []float64
	d      int
	idx    []int32 // points, permuted so that each node owns a range
	nodes  []ballNode
	cent   []float64 // node centroids, d per node
	sorted []float64 // the points in the order of idx
}

type ballNode struct {
	lo, hi      int32   // range of idx
	radius      float64 // largest distance from the centroid to a point
	left, right int32   // children, -1 for a leaf
}

const ballLeafSize = 24

func newBallTree(data []float64, n, d int) *ballTree {
	return newBallTreeContext(context.Background(), data, n, d)
}

// newBallTreeContext builds the tree, giving up early (with an incomplete
// tree) when ctx is cancelled; the caller checks ctx.Err().
func newBallTreeContext(ctx context.Context, data []float64, n, d int) *ballTree {
	t := &ballTree{ctx: ctx, data: data, d: d, idx: make([]int32, n)}
	for i := range t.idx {
		t.idx[i] = int32(i)
	}
	proj := make([]float64, n)
	t.build(0, n, proj)
	// A copy of the points in tree order, so that a leaf is scanned
	// through contiguous memory.
	t.sorted = make([]float64, n*d)
	for k, i := range t.idx {
		copy(t.sorted[k*d:(k+1)*d], t.row(int(i)))
	}
	return t
}

func (t *ballTree) row(i int) []float64 { return t.data[i*t.d : (i+1)*t.d] }

func (t *ballTree) build(lo, hi int, proj []float64) int32 {
	d := t.d
	id := int32(len(t.nodes))
	t.nodes = append(t.nodes, ballNode{lo: int32(lo), hi: int32(hi), left: -1, right: -1})
	c := make([]float64, d)
	for k := lo; k < hi; k++ {
		for j, v := range t.row(int(t.idx[k])) {
			c[j] += v
		}
	}
	for j := range c {
		c[j] /= float64(hi - lo)
	}
	t.cent = append(t.cent, c...)
	// The farthest point a from the centroid, then the farthest b from a.
	far := func(from []float64) int {
		best, bd := lo, -1.0
		for k := lo; k < hi; k++ {
			if v := sqDist(from, t.row(int(t.idx[k]))); v > bd {
				best, bd = k, v
			}
		}
		return best
	}
	ka := far(c)
	radius := math.Sqrt(sqDist(c, t.row(int(t.idx[ka]))))
	t.nodes[id].radius = radius
	if hi-lo <= ballLeafSize || radius == 0 || (hi-lo > 2048 && t.ctx.Err() != nil) {
		return id
	}
	// Two centres by a few rounds of 2-means seeded with a and b, so that
	// the split follows the gaps between clusters rather than the noise
	// that dominates the far points in high dimension.
	a := slices.Clone(t.row(int(t.idx[ka])))
	b := slices.Clone(t.row(int(t.idx[far(a)])))
	sa, sb := make([]float64, d), make([]float64, d)
	for round := 0; round < 6; round++ {
		clear(sa)
		clear(sb)
		na, nb := 0, 0
		for k := lo; k < hi; k++ {
			r := t.row(int(t.idx[k]))
			if sqDist(r, a) <= sqDist(r, b) {
				na++
				for j, v := range r {
					sa[j] += v
				}
			} else {
				nb++
				for j, v := range r {
					sb[j] += v
				}
			}
		}
		if na == 0 || nb == 0 {
			break
		}
		for j := range a {
			a[j], b[j] = sa[j]/float64(na), sb[j]/float64(nb)
		}
	}
	// Split at the median of the projections on b - a.
	type pk struct {
		p float64
		i int32
	}
	items := make([]pk, hi-lo)
	for k := lo; k < hi; k++ {
		r := t.row(int(t.idx[k]))
		p := 0.0
		for j := range r {
			p += r[j] * (b[j] - a[j])
		}
		items[k-lo] = pk{p, t.idx[k]}
	}
	slices.SortFunc(items, func(x, y pk) int {
		if x.p != y.p {
			if x.p < y.p {
				return -1
			}
			return 1
		}
		return int(x.i - y.i)
	})
	for k, it := range items {
		t.idx[lo+k] = it.i
	}
	// Split halfway between a and b, which follows the gaps between
	// clusters, unless that leaves one side with under 1/16 of the
	// points: then at the median, to bound the depth.
	half := 0.0
	for j := range a {
		half += (b[j] - a[j]) * (a[j] + b[j]) / 2
	}
	mid, _ := slices.BinarySearchFunc(items, half, func(x pk, v float64) int {
		if x.p < v {
			return -1
		}
		return 1
	})
	mid += lo
	if n := hi - lo; (mid-lo)*16 < n || (hi-mid)*16 < n {
		mid = lo + n/2
	}
	left := t.build(lo, mid, proj)
	right := t.build(mid, hi, proj)
	t.nodes[id].left, t.nodes[id].right = left, right
	return id
}

// search finds the k nearest neighbours of point q (excluding q itself).
func (t *ballTree) search(q int, h *knnHeap) {
	h.dist, h.idx = h.dist[:0], h.idx[:0]
	qr := t.row(q)
	t.searchNode(0, q, qr, math.Sqrt(sqDist(qr, t.cent[:t.d])), h)
}

// searchNode visits node id, whose centroid is at distance dc from the
// query.
func (t *ballTree) searchNode(id int32, q int, qr []float64, dc float64, h *knnHeap) {
	nd := &t.nodes[id]
	if dc-nd.radius > h.tau() {
		return
	}
	if nd.left < 0 {
		for k := nd.lo; k < nd.hi; k++ {
			j := t.idx[k]
			if int(j) == q {
				continue
			}
			tau := h.tau()
			d2 := sqDistBounded64(qr, t.sorted[int(k)*t.d:int(k+1)*t.d], tau*tau)
			if d2 <= tau*tau {
				h.push(math.Sqrt(d2), j)
			}
		}
		return
	}
	d := t.d
	dl := math.Sqrt(sqDist(qr, t.cent[int(nd.left)*d:int(nd.left+1)*d]))
	dr := math.Sqrt(sqDist(qr, t.cent[int(nd.right)*d:int(nd.right+1)*d]))
	if dl <= dr {
		t.searchNode(nd.left, q, qr, dl, h)
		t.searchNode(nd.right, q, qr, dr, h)
	} else {
		t.searchNode(nd.right, q, qr, dr, h)
		t.searchNode(nd.left, q, qr, dl, h)
	}
}

// sqDist returns the squared Euclidean distance between a and b.
func sqDist(a, b []float64) float64 { return sqDistBounded64(a, b, math.Inf(1)) }

// sqDistBounded64 returns the squared Euclidean distance between a and b,
// or some value greater than bound as soon as the partial sum exceeds it:
// in high dimension most candidates are rejected halfway.
func sqDistBounded64(a, b []float64, bound float64) float64 {
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

// sparseP is a symmetric sparse matrix in compressed-row form.
type sparseP struct {
	n      int
	rowPtr []int
	col    []int32
	val    []float64
	plogp  []float64 // per row: sum of p log p
}

// setPLogP fills P.plogp.
func (P *sparseP) setPLogP() {
	P.plogp = make([]float64, P.n)
	for i := range P.plogp {
		s := 0.0
		for _, p := range P.val[P.rowPtr[i]:P.rowPtr[i+1]] {
			if p > 0 {
				s += p * math.Log(p)
			}
		}
		P.plogp[i] = s
	}
}

// permute returns P with its rows and columns reordered so that new index
// a is old index order[a].
func (P *sparseP) permute(order []int32) *sparseP {
	n := P.n
	inv := make([]int32, n)
	for a, i := range order {
		inv[i] = int32(a)
	}
	Q := &sparseP{n: n, rowPtr: make([]int, n+1), col: make([]int32, 0, len(P.col)), val: make([]float64, 0, len(P.val))}
	type cv struct {
		c int32
		v float64
	}
	var row []cv
	for a, i := range order {
		row = row[:0]
		for e := P.rowPtr[i]; e < P.rowPtr[i+1]; e++ {
			row = append(row, cv{inv[P.col[e]], P.val[e]})
		}
		slices.SortFunc(row, func(x, y cv) int { return int(x.c - y.c) })
		for _, r := range row {
			Q.col = append(Q.col, r.c)
			Q.val = append(Q.val, r.v)
		}
		Q.rowPtr[a+1] = len(Q.col)
	}
	return Q
}

// knnAffinityTask finds the neighbours of a range of points and their
// conditional probabilities p(j|i) at the requested perplexity.
type knnAffinityTask struct {
	ctx        context.Context
	tree       *ballTree
	k          int
	perplexity float64
	nbr        []int32   // n x k neighbours
	cond       []float64 // n x k conditional probabilities
}

func (t *knnAffinityTask) run(lo, hi int) {
	h := &knnHeap{k: t.k, dist: make([]float64, 0, t.k), idx: make([]int32, 0, t.k)}
	d2 := make([]float64, t.k)
	order := make([]int, t.k)
	// Queries are taken in tree order: consecutive queries then search the
	// same leaves, which stay in cache. Each writes only its own row.
	for a := lo; a < hi; a++ {
		if a%64 == 0 && t.ctx.Err() != nil {
			return
		}
		i := int(t.tree.idx[a])
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
//
// It also returns the points in the order of the leaves of the ball tree,
// in which neighbours in the input have nearby indices.
func tsneAffinities(ctx context.Context, pool *tsnePool, data []float64, n, d, k int, perplexity float64) (*sparseP, []int32, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	tree := newBallTreeContext(ctx, data, n, d)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	task := &knnAffinityTask{ctx: ctx, tree: tree, k: k, perplexity: perplexity,
		nbr: make([]int32, n*k), cond: make([]float64, n*k)}
	pool.run(task, n, 64)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	return symmetrize(task.nbr, task.cond, n, k), tree.idx, nil
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
