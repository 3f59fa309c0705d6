package style

import "math"

// bhTree is a Barnes-Hut space-partitioning tree over the embedding: a
// quadtree in 2-D and an octree in 3-D. Cells are squares (cubes) split at
// their centre; a cell with at most leafSize points, or at the maximum
// depth, is a leaf. The tree is rebuilt every iteration into buffers kept
// across iterations, so a rebuild does not allocate once they have grown.
type bhTree struct {
	n, dims  int
	leafSize int
	nodes    []bhNode
	perm     []int32   // points in tree order; each node owns a range
	pos      []float64 // positions in tree order, for cache-friendly leaves
	code     []uint8   // scratch: child cell of each point
	scratch  []int32   // scratch: partition buffer
}

type bhNode struct {
	com    [3]float64 // centre of mass
	center [3]float64 // cell centre
	half   float64    // half the cell width
	width2 float64    // squared cell width
	lo, hi int32      // range of perm owned by the node
	child  int32      // index of the first child, -1 for a leaf
	nchild int32      // number of non-empty children, stored consecutively
}

const bhMaxDepth = 48

func newBHTree(n, dims, leafSize int) *bhTree {
	return &bhTree{n: n, dims: dims, leafSize: leafSize,
		nodes: make([]bhNode, 0, 2*n+16), perm: make([]int32, n), pos: make([]float64, n*dims),
		code: make([]uint8, n), scratch: make([]int32, n)}
}

// build rebuilds the tree over the row-major positions y.
func (t *bhTree) build(y []float64) {
	dims := t.dims
	var lo, hi [3]float64
	for a := 0; a < dims; a++ {
		lo[a], hi[a] = math.Inf(1), math.Inf(-1)
	}
	for i := 0; i < t.n; i++ {
		t.perm[i] = int32(i)
		for a := 0; a < dims; a++ {
			v := y[i*dims+a]
			lo[a] = math.Min(lo[a], v)
			hi[a] = math.Max(hi[a], v)
		}
	}
	var center [3]float64
	half := 0.0
	for a := 0; a < dims; a++ {
		center[a] = (lo[a] + hi[a]) / 2
		half = math.Max(half, (hi[a]-lo[a])/2)
	}
	half = half*(1+1e-9) + 1e-12
	t.nodes = t.nodes[:0]
	t.nodes = append(t.nodes, bhNode{})
	t.buildNode(0, 0, int32(t.n), center, half, 0, y)
	for k, i := range t.perm {
		copy(t.pos[k*dims:k*dims+dims], y[int(i)*dims:int(i)*dims+dims])
	}
}

func (t *bhTree) buildNode(id int32, lo, hi int32, center [3]float64, half float64, depth int, y []float64) {
	dims := t.dims
	nd := bhNode{center: center, half: half, width2: 4 * half * half, lo: lo, hi: hi, child: -1}
	cnt := hi - lo
	if int(cnt) <= t.leafSize || depth >= bhMaxDepth {
		for k := lo; k < hi; k++ {
			i := int(t.perm[k])
			for a := 0; a < dims; a++ {
				nd.com[a] += y[i*dims+a]
			}
		}
		for a := 0; a < dims; a++ {
			nd.com[a] /= float64(cnt)
		}
		t.nodes[id] = nd
		return
	}
	// Partition the points into the 2^dims child cells (stable).
	nc := 1 << dims
	var counts [8]int32
	for k := lo; k < hi; k++ {
		i := int(t.perm[k])
		c := uint8(0)
		for a := 0; a < dims; a++ {
			if y[i*dims+a] >= center[a] {
				c |= 1 << a
			}
		}
		t.code[k] = c
		counts[c]++
	}
	var starts [9]int32
	starts[0] = lo
	for c := 0; c < nc; c++ {
		starts[c+1] = starts[c] + counts[c]
	}
	fill := starts
	for k := lo; k < hi; k++ {
		c := t.code[k]
		t.scratch[fill[c]] = t.perm[k]
		fill[c]++
	}
	copy(t.perm[lo:hi], t.scratch[lo:hi])
	nonEmpty := int32(0)
	for c := 0; c < nc; c++ {
		if counts[c] > 0 {
			nonEmpty++
		}
	}
	first := int32(len(t.nodes))
	for c := int32(0); c < nonEmpty; c++ {
		t.nodes = append(t.nodes, bhNode{})
	}
	nd.child, nd.nchild = first, nonEmpty
	ch := first
	h2 := half / 2
	for c := 0; c < nc; c++ {
		if counts[c] == 0 {
			continue
		}
		var cc [3]float64
		for a := 0; a < dims; a++ {
			if c&(1<<a) != 0 {
				cc[a] = center[a] + h2
			} else {
				cc[a] = center[a] - h2
			}
		}
		t.buildNode(ch, starts[c], starts[c+1], cc, h2, depth+1, y)
		for a := 0; a < dims; a++ {
			nd.com[a] += t.nodes[ch].com[a] * float64(counts[c])
		}
		ch++
	}
	for a := 0; a < dims; a++ {
		nd.com[a] /= float64(cnt)
	}
	t.nodes[id] = nd
}

// tsneBHTask computes the Barnes-Hut repulsive forces of a range of points,
// taken in tree order for locality.
type tsneBHTask struct{ s *tsneState }

func (t *tsneBHTask) run(lo, hi int) {
	s := t.s
	tr := s.bh
	theta2 := s.c.theta * s.c.theta
	var stack [bhMaxDepth*8 + 8]int32
	if s.dims == 2 {
		for k := lo; k < hi; k++ {
			i := int(tr.perm[k])
			fx, fy, z := tr.repulse2(i, tr.pos[2*k], tr.pos[2*k+1], theta2, stack[:0])
			s.rep[2*i], s.rep[2*i+1] = fx, fy
			s.zpart[i] = z
		}
		return
	}
	for k := lo; k < hi; k++ {
		i := int(tr.perm[k])
		f, z := tr.repulse3(i, tr.pos[3*k:3*k+3], theta2, stack[:0])
		copy(s.rep[3*i:3*i+3], f[:])
		s.zpart[i] = z
	}
}

// repulse2 returns sum_j q_ij^2 (y_i - y_j) and sum_j q_ij over j != i with
// q_ij = 1/(1+|y_i-y_j|^2), summarising far cells by their centre of mass.
func (t *bhTree) repulse2(i int, x, y, theta2 float64, stack []int32) (fx, fy, z float64) {
	stack = append(stack, 0)
	nodes, perm, pos := t.nodes, t.perm, t.pos
	for len(stack) > 0 {
		nd := &nodes[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		dx, dy := x-nd.com[0], y-nd.com[1]
		d2 := dx*dx + dy*dy
		if nd.width2 < theta2*d2 && (math.Abs(x-nd.center[0]) > nd.half || math.Abs(y-nd.center[1]) > nd.half) {
			q := 1 / (1 + d2)
			m := float64(nd.hi - nd.lo)
			z += m * q
			mq2 := m * q * q
			fx += mq2 * dx
			fy += mq2 * dy
			continue
		}
		if nd.child < 0 {
			for k := nd.lo; k < nd.hi; k++ {
				if int(perm[k]) == i {
					continue
				}
				ex, ey := x-pos[2*k], y-pos[2*k+1]
				q := 1 / (1 + ex*ex + ey*ey)
				z += q
				q2 := q * q
				fx += q2 * ex
				fy += q2 * ey
			}
			continue
		}
		for c := nd.child + nd.nchild - 1; c >= nd.child; c-- {
			stack = append(stack, c)
		}
	}
	return fx, fy, z
}

// repulse3 is repulse2 in three dimensions.
func (t *bhTree) repulse3(i int, p []float64, theta2 float64, stack []int32) (f [3]float64, z float64) {
	stack = append(stack, 0)
	nodes, perm, pos := t.nodes, t.perm, t.pos
	x, y, w := p[0], p[1], p[2]
	for len(stack) > 0 {
		nd := &nodes[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		dx, dy, dw := x-nd.com[0], y-nd.com[1], w-nd.com[2]
		d2 := dx*dx + dy*dy + dw*dw
		if nd.width2 < theta2*d2 && (math.Abs(x-nd.center[0]) > nd.half || math.Abs(y-nd.center[1]) > nd.half || math.Abs(w-nd.center[2]) > nd.half) {
			q := 1 / (1 + d2)
			m := float64(nd.hi - nd.lo)
			z += m * q
			mq2 := m * q * q
			f[0] += mq2 * dx
			f[1] += mq2 * dy
			f[2] += mq2 * dw
			continue
		}
		if nd.child < 0 {
			for k := nd.lo; k < nd.hi; k++ {
				if int(perm[k]) == i {
					continue
				}
				ex, ey, ew := x-pos[3*k], y-pos[3*k+1], w-pos[3*k+2]
				q := 1 / (1 + ex*ex + ey*ey + ew*ew)
				z += q
				q2 := q * q
				f[0] += q2 * ex
				f[1] += q2 * ey
				f[2] += q2 * ew
			}
			continue
		}
		for c := nd.child + nd.nchild - 1; c >= nd.child; c-- {
			stack = append(stack, c)
		}
	}
	return f, z
}
