package style

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style/internal/engine"
)

// searchTestCatalog builds a catalogue of n items of dimension d whose
// embeddings come from gen(i, j), with three categories.
func searchTestCatalog(t testing.TB, n, d int, gen func(i, j int) float32) *Catalog {
	var c Catalog
	for i := range n {
		e := make([]float32, d)
		for j := range e {
			e[j] = gen(i, j)
		}
		require.NoError(t, c.Add(Item{ID: fmt.Sprintf("it%d", i), Category: fmt.Sprint(i % 3), Embedding: e}))
	}
	return &c
}

// TestRecommendBatchScreenedMatchesDirect checks that the matrix-product
// screening of RecommendBatch returns exactly what Recommend returns (IDs,
// order and float64 distances compared with ==, no tolerance) on data
// built to stress the error bound: near-duplicates whose distances are far
// below the cancellation error of |q|²+|x|²-2q·x, large norms, ties and
// subnormal differences.
func TestRecommendBatchScreenedMatchesDirect(t *testing.T) {
	old := batchGEMMMin
	batchGEMMMin = 1
	t.Cleanup(func() { batchGEMMMin = old })
	rng := rand.New(rand.NewPCG(1, 2))
	n, ks, workers := 2500, []int{1, 10, 100}, []int{1, 2, 3} // several item blocks and a partial one
	if testing.Short() {
		n, ks, workers = 1100, []int{1, 100}, []int{1, 3} // still two item blocks, one partial
	}
	base := make([]float32, 37)
	for j := range base {
		base[j] = float32(rng.NormFloat64())
	}
	centres := make([][]float32, 8)
	for c := range centres {
		centres[c] = make([]float32, 37)
		for j := range centres[c] {
			centres[c][j] = 10 * float32(rng.NormFloat64())
		}
	}
	datasets := []struct {
		name string
		d    int
		gen  func(i, j int) float32
	}{
		{"random", 37, func(i, j int) float32 { return float32(rng.NormFloat64()) }},
		{"clustered", 37, func(i, j int) float32 { return centres[i%8][j] + 0.01*float32(rng.NormFloat64()) }},
		{"nearDuplicates", 37, func(i, j int) float32 { return 1000 + base[j] + 1e-4*float32(rng.IntN(5)) }},
		{"largeNorm", 37, func(i, j int) float32 { return 1e15 * (1 + 1e-6*float32(rng.NormFloat64())) }},
		{"ties", 16, func(i, j int) float32 { return float32(rng.IntN(3)) }},
		{"subnormal", 8, func(i, j int) float32 { return 1e-38 * float32(rng.IntN(4)) }},
	}
	for _, ds := range datasets {
		c := searchTestCatalog(t, n, ds.d, ds.gen)
		qs := make([][]float32, 70)
		for i := range qs {
			qs[i] = c.Item(rng.IntN(n)).Embedding
			if i%2 == 1 { // a perturbed copy
				for j := range qs[i] {
					qs[i][j] += qs[i][j] * 1e-7 * float32(rng.NormFloat64())
				}
			}
		}
		opts := []RecommendOptions{
			{},
			{ExcludeCategory: "1"},
			{ExcludeID: "it5", Filter: func(it Item) bool { return !strings.HasSuffix(it.ID, "7") }},
		}
		for _, k := range ks {
			for oi, o := range opts {
				want := make([][]Match, len(qs))
				for i, q := range qs {
					o1 := o
					o1.Workers = 1
					want[i] = c.Recommend(q, k, &o1)
				}
				for _, w := range workers {
					o.Workers = w
					got, err := c.RecommendBatch(context.Background(), qs, k, &o)
					require.NoError(t, err)
					for i := range qs {
						require.Equal(t, want[i], got[i], "%s k=%d opts %d workers %d query %d", ds.name, k, oi, w, i)
					}
				}
			}
		}
	}
}

// TestRecommendKernelsAgree checks that Recommend gives the same results
// with each distance kernel (forced through each ISA level).
func TestRecommendKernelsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	c := searchTestCatalog(t, 1000, 33, func(i, j int) float32 { return float32(rng.IntN(4)) })
	q := c.Item(3).Embedding
	var ref []Match
	for _, isa := range engine.ISAs() {
		restore := engine.ForceISA(isa)
		got := c.Recommend(q, 50, &RecommendOptions{Workers: 2, ExcludeCategory: "2"})
		restore()
		if ref == nil {
			ref = got
		} else {
			require.Equal(t, ref, got, "ISA %s differs", isa)
		}
	}
}

// TestRecommendBatchAllocs checks that the screened batch path allocates
// a bounded number of times: a few per call, plus the handful each Sgemm
// call makes (its worker team), one call per 64 queries × 1024 items; the
// per-query path allocates at least once per query and the buffers
// proportional to the work (dot products, packed queries) are pooled.
func TestRecommendBatchAllocs(t *testing.T) {
	if engine.RaceEnabled {
		t.Skip("the race detector makes sync.Pool drop items, so allocations are not counted")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	c := searchTestCatalog(t, 3000, 16, func(i, j int) float32 { return float32(rng.NormFloat64()) })
	qs := make([][]float32, 200)
	for i := range qs {
		qs[i] = c.Item(i).Embedding
	}
	opts := &RecommendOptions{Workers: 1}
	c.RecommendBatch(context.Background(), qs, 10, opts)
	// 4 query blocks × 3 item blocks = 12 Sgemm calls of at most 8
	// allocations each, plus 6 of the call itself and slack for pool churn.
	n := testing.AllocsPerRun(5, func() { c.RecommendBatch(context.Background(), qs, 10, opts) })
	assert.LessOrEqual(t, n, float64(12*8+12), "allocations of RecommendBatch of %d queries", len(qs))
}

// TestRecommendBatchScreenedEdgeCases compares the screened batch path
// with Recommend for k beyond the catalogue size, for items and queries
// whose squared norms overflow float32 while their distances do not, and
// for queries with NaN, infinite or overflowing values, whose distances are NaN or +Inf and
// must not be screened out by the comparisons with the bound.
func TestRecommendBatchScreenedEdgeCases(t *testing.T) {
	old := batchGEMMMin
	batchGEMMMin = 1
	t.Cleanup(func() { batchGEMMMin = old })
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{20, 1030} {
		c := searchTestCatalog(t, n, 12, func(i, j int) float32 { return float32(rng.NormFloat64()) })
		// Norms beyond MaxFloat32 (12·(1.5e19)² ≈ 2.7e39) with finite
		// distances between the items and to the query.
		huge := searchTestCatalog(t, n, 12, func(i, j int) float32 { return 1.5e19 * float32(1+1e-3*rng.NormFloat64()) })
		hq := huge.Item(n / 2).Embedding
		hq[0] *= 1.0001
		got, err := huge.RecommendBatch(context.Background(), [][]float32{hq, huge.Item(1).Embedding}, 5, nil)
		require.NoError(t, err)
		for i, q := range [][]float32{hq, huge.Item(1).Embedding} {
			require.Equal(t, huge.Recommend(q, 5, nil), got[i], "n=%d overflowing norms, query %d", n, i)
		}
		// A finite query norm and an item whose norm overflows although it
		// is the closest item: item n-1 at distance 9.7e18 from the query,
		// the others at 1.4e19.
		edge := searchTestCatalog(t, n, 2, func(i, j int) float32 {
			if j == 1 {
				return float32(i) * 1e6
			}
			if i == n-1 {
				return 1.87e19 // |x|² = 3.5e38 > MaxFloat32, 2q·x = 3.37e38 < MaxFloat32
			}
			return -5e18
		})
		eq := []float32{9e18, 0}
		got, err = edge.RecommendBatch(context.Background(), [][]float32{eq}, 1, nil)
		require.NoError(t, err)
		want := edge.Recommend(eq, 1, nil)
		require.Equal(t, want, got[0], "n=%d overflowing item norm", n)
		require.Equal(t, n-1, want[0].Index, "n=%d overflowing item norm: the closest item", n)
		nan := float32(math.NaN())
		inf := float32(math.Inf(1))
		qs := [][]float32{
			c.Item(0).Embedding,
			{nan, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			{inf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			{1e30, 1e30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			{1e19, -1e19, 1e19, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		}
		for _, k := range []int{3, 50, 2000} {
			got, err := c.RecommendBatch(context.Background(), qs, k, &RecommendOptions{Workers: 2})
			require.NoError(t, err)
			for i, q := range qs {
				require.Equal(t, c.Recommend(q, k, &RecommendOptions{Workers: 1}), got[i], "n=%d k=%d query %d", n, k, i)
			}
		}
	}
}

// TestRecommendBatchScreenedCancel checks that the screened path returns
// the context's error when it is cancelled.
func TestRecommendBatchScreenedCancel(t *testing.T) {
	old := batchGEMMMin
	batchGEMMMin = 1
	t.Cleanup(func() { batchGEMMMin = old })
	rng := rand.New(rand.NewPCG(11, 12))
	c := searchTestCatalog(t, 300, 8, func(i, j int) float32 { return float32(rng.NormFloat64()) })
	qs := [][]float32{c.Item(1).Embedding, c.Item(2).Embedding}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, w := range []int{1, 2} {
		got, err := c.RecommendBatch(ctx, qs, 3, &RecommendOptions{Workers: w})
		require.ErrorIs(t, err, context.Canceled, "workers %d", w)
		require.Nil(t, got, "workers %d: cancelled batch", w)
	}
}
