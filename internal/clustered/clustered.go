// Package clustered generates the seeded synthetic embeddings that the
// approximate index and the catalogue are tested and measured on.
package clustered

import (
	"math"
	"math/rand/v2"
	"sync"
)

// Clusters describes seeded synthetic embeddings: Gaussian clusters
// whose centres are N(0, 1) in every component and whose points spread
// along r random directions of the cluster (standard deviation 1 each)
// plus isotropic noise (standard deviation 0.1 per component). Real
// embeddings of one style vary in few directions; r = d gives the much
// harder spread of a plain Gaussian cloud.
type Clusters struct {
	d, r    int
	noise   float64
	centres [][]float32
	bases   [][]float32 // per cluster, r rows of d
}

// New draws nc clusters of dimension d, each spreading along r
// directions, with the given seed and noise (the standard deviation of
// the isotropic part).
func New(seed uint64, d, nc, r int, noise float64) *Clusters {
	rng := rand.New(rand.NewPCG(seed, 0xc1))
	c := &Clusters{d: d, r: r, noise: noise}
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

// Points returns n points drawn with the given seed, in parallel chunks
// whose seeds depend only on the chunk, so the data does not depend on
// the number of goroutines.
func (c *Clusters) Points(seed uint64, n int) []float32 {
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
