package ann

import (
	"math"
	"math/rand/v2"
	"sync"

	"github.com/stylespace/style/internal/engine"
)

// clusters describes seeded synthetic embeddings: Gaussian clusters
// whose centres are N(0, 1) in every component and whose points spread
// along r random directions of the cluster (standard deviation 1 each)
// plus isotropic noise (standard deviation 0.1 per component). Real
// embeddings of one style vary in few directions; the r = d case (see
// isotropic) is the much harder spread of a plain Gaussian cloud.
type clusters struct {
	d, r    int
	noise   float64
	centres [][]float32
	bases   [][]float32 // per cluster, r rows of d
}

func newClusters(seed uint64, d, nc, r int, noise float64) *clusters {
	rng := rand.New(rand.NewPCG(seed, 0xc1))
	c := &clusters{d: d, r: r, noise: noise}
	for range nc {
		ctr := make([]float32, d)
		for j := range ctr {
			ctr[j] = float32(rng.NormFloat64())
		}
		b := make([]float32, r*d)
		for j := range b {
			b[j] = float32(rng.NormFloat64() / math.Sqrt(float64(d)))
		}
		c.centres = append(c.centres, ctr)
		c.bases = append(c.bases, b)
	}
	return c
}

// points returns n points drawn with the given seed, in parallel chunks
// whose seeds depend only on the chunk, so the data does not depend on
// the number of goroutines.
func (c *clusters) points(seed uint64, n int) []float32 {
	const chunk = 4096
	out := make([]float32, n*c.d)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for lo := 0; lo < n; lo += chunk {
		hi := min(n, lo+chunk)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			rng := rand.New(rand.NewPCG(seed, uint64(lo)))
			z := make([]float64, c.r)
			for i := lo; i < hi; i++ {
				k := rng.IntN(len(c.centres))
				for t := range z {
					z[t] = rng.NormFloat64()
				}
				v := out[i*c.d : (i+1)*c.d]
				b := c.bases[k]
				for j := range v {
					s := float64(c.centres[k][j]) + c.noise*rng.NormFloat64()
					for t, zt := range z {
						s += zt * float64(b[t*c.d+j])
					}
					v[j] = float32(s)
				}
			}
		})
	}
	wg.Wait()
	return out
}

// exactKNN returns the k nearest rows of vecs to q (squared distances,
// ties by index) by computing every distance, with accept as in Search.
// Its distances are engine.SqDistBounded's, which TestSqDistBounded checks
// against a plain loop.
func exactKNN(vecs []float32, d int, q []float32, k int, accept func(int) bool) []Result {
	var h maxHeap
	for i := range len(vecs) / d {
		if accept != nil && !accept(i) {
			continue
		}
		s, _ := engine.SqDistBounded(q, vecs[i*d:(i+1)*d], inf32)
		x := item{s, int32(i)}
		if len(h) < k {
			h.push(x)
		} else if k > 0 && less(x, h[0]) {
			h.pop()
			h.push(x)
		}
	}
	var out []Result
	if len(h) > 0 {
		out = make([]Result, len(h))
	}
	for j := len(out) - 1; j >= 0; j-- {
		x := h.pop()
		out[j] = Result{Index: x.i, Dist: x.d}
	}
	return out
}

// recall returns the fraction of the exact neighbours that got found.
func recall(got, exact []Result) float64 {
	if len(exact) == 0 {
		return 1
	}
	hit := 0
	for _, e := range exact {
		for _, g := range got {
			if g.Index == e.Index {
				hit++
				break
			}
		}
	}
	return float64(hit) / float64(len(exact))
}
