package ann

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style/internal/clustered"
	"github.com/stylespace/style/internal/engine"
)

// buildTest builds an index over vecs with the given config, failing the
// test on error.
func buildTest(t testing.TB, vecs []float32, d int, cfg *Config) *Index {
	t.Helper()
	ix, err := Build(context.Background(), vecs, d, cfg, nil)
	require.NoError(t, err)
	return ix
}

func row(v []float32, d, i int) []float32 { return v[i*d : (i+1)*d] }

// TestSqDistBounded checks the distance against a float64 loop, and the
// bound: an abandoned item is farther than the bound, a kept one gets the
// unbounded value exactly.
func TestSqDistBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, d := range []int{1, 3, 4, 7, 31, 32, 33, 64, 100, 128, 131} {
		for range 20 {
			a, b := make([]float32, d), make([]float32, d+3)
			for j := range a {
				a[j] = float32(rng.NormFloat64())
			}
			for j := range b {
				b[j] = float32(rng.NormFloat64())
			}
			var want float64
			for j := range a {
				t := float64(a[j]) - float64(b[j])
				want += t * t
			}
			got, ok := engine.SqDistBounded(a, b, inf32)
			require.True(t, ok)
			// d roundings of float32 sums of non-negative terms: a
			// relative error of at most about d·2⁻²⁴ (plus the
			// differences' and squares' roundings).
			assert.InEpsilon(t, want, float64(got), float64(d+4)*0x1p-24, "d=%d", d)
			for _, bound := range []float32{0, got / 2, math.Nextafter32(got, 0), got, got * 2} {
				v, ok := engine.SqDistBounded(a, b, bound)
				if got <= bound {
					require.True(t, ok, "d=%d bound=%v got=%v", d, bound, got)
					require.Equal(t, got, v)
				} else {
					require.False(t, ok, "d=%d bound=%v got=%v", d, bound, got)
				}
			}
		}
	}
}

// TestRecallClustered checks recall@10 against brute force at the default
// ef, on seeded clustered data.
func TestRecallClustered(t *testing.T) {
	n, nq := 20000, 100
	switch {
	case raceEnabled:
		n, nq = 2000, 30
	case testing.Short():
		n, nq = 4000, 50
	}
	const d, k = 128, 10
	cl := clustered.New(1, d, n/1000, 16, 0.1)
	vecs := cl.Points(2, n)
	qs := cl.Points(3, nq)
	ix := buildTest(t, vecs, d, nil)
	require.Equal(t, n, ix.Len())
	require.Equal(t, d, ix.Dim())
	var dst []Result
	r := 0.0
	for i := range nq {
		q := row(qs, d, i)
		var complete bool
		dst, complete = ix.Search(dst, q, k, 0, nil)
		require.True(t, complete)
		require.Len(t, dst, k)
		r += recall(dst, exactKNN(vecs, d, q, k, nil))
	}
	r /= float64(nq)
	t.Logf("recall@%d = %.4f (n=%d, ef=%d)", k, r, n, DefaultEf)
	assert.GreaterOrEqual(t, r, 0.95)
}

// TestSearchSortedDistances checks that results come sorted by (Dist,
// Index) with the distances of engine.SqDistBounded, without duplicates, on data
// with many exact ties (integer coordinates).
func TestSearchSortedDistances(t *testing.T) {
	const n, d = 3000, 8
	rng := rand.New(rand.NewPCG(2, 2))
	vecs := make([]float32, n*d)
	for j := range vecs {
		vecs[j] = float32(rng.IntN(4))
	}
	ix := buildTest(t, vecs, d, &Config{M: 8, EfConstruction: 64, Seed: 3})
	var dst []Result
	for i := range 50 {
		q := row(vecs, d, rng.IntN(n))
		dst, _ = ix.Search(dst, q, 25, 40, nil)
		require.Len(t, dst, 25, "query %d", i)
		for j, r := range dst {
			want, _ := engine.SqDistBounded(q, row(vecs, d, int(r.Index)), inf32)
			require.Equal(t, want, r.Dist)
			if j > 0 {
				p := dst[j-1]
				require.True(t, p.Dist < r.Dist || (p.Dist == r.Dist && p.Index < r.Index), "results %d, %d out of order: %v %v", j-1, j, p, r)
			}
		}
	}
}

// TestSearchExactSmall checks that indexes of at most ef items answer
// exactly, including n <= k, with and without a filter.
func TestSearchExactSmall(t *testing.T) {
	const d = 5
	rng := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{1, 2, 3, 9, 10, 11, 40} {
		vecs := make([]float32, n*d)
		for j := range vecs {
			vecs[j] = float32(rng.NormFloat64())
		}
		ix := buildTest(t, vecs, d, &Config{M: 4, Seed: 5})
		q := make([]float32, d)
		for j := range q {
			q[j] = float32(rng.NormFloat64())
		}
		odd := func(i int) bool { return i%2 == 1 }
		for _, k := range []int{1, 10, 50} {
			got, complete := ix.Search(nil, q, k, 40, nil)
			require.True(t, complete)
			require.Equal(t, exactKNN(vecs, d, q, k, nil), got, "n=%d k=%d", n, k)
			got, complete = ix.Search(nil, q, k, 40, odd)
			require.True(t, complete)
			require.Equal(t, exactKNN(vecs, d, q, k, odd), got, "n=%d k=%d filtered", n, k)
		}
	}
}

// TestSearchEmpty checks an index of no items and k = 0.
func TestSearchEmpty(t *testing.T) {
	ix := buildTest(t, nil, 3, nil)
	assert.Zero(t, ix.Len())
	got, complete := ix.Search(make([]Result, 2), []float32{1, 2, 3}, 5, 0, nil)
	assert.True(t, complete)
	assert.Empty(t, got)

	ix = buildTest(t, []float32{1, 2, 3}, 3, nil)
	got, complete = ix.Search(nil, []float32{1, 2, 3}, 0, 0, nil)
	assert.True(t, complete)
	assert.Empty(t, got)
}

// filterTestIndex returns clustered data and its index, shared by the
// filter tests.
var filterTestIndex = sync.OnceValues(func() ([]float32, *Index) {
	n := 10000
	if raceEnabled {
		n = 3000
	}
	cl := clustered.New(7, 32, 10, 8, 0.1)
	vecs := cl.Points(8, n)
	ix, err := Build(context.Background(), vecs, 32, &Config{Seed: 9}, nil)
	if err != nil {
		panic(err)
	}
	return vecs, ix
})

// TestSearchFilter checks that a filter's rejected items are never
// returned, and that recall holds when the filter keeps a fair share of
// the items.
func TestSearchFilter(t *testing.T) {
	vecs, ix := filterTestIndex()
	const d, k = 32, 10
	rng := rand.New(rand.NewPCG(10, 10))
	cl := clustered.New(7, d, 10, 8, 0.1)
	qs := cl.Points(11, 100)
	for _, keep := range []int{2, 5} {
		accept := func(i int) bool { return uint32(i)*2654435761%uint32(keep) == 0 }
		r := 0.0
		for i := range 100 {
			q := row(qs, d, i)
			got, complete := ix.Search(nil, q, k, 0, accept)
			require.True(t, complete, "1 in %d kept", keep)
			require.Len(t, got, k)
			for _, x := range got {
				require.True(t, accept(int(x.Index)), "rejected item %d returned", x.Index)
			}
			r += recall(got, exactKNN(vecs, d, q, k, accept))
		}
		r /= 100
		t.Logf("1 in %d kept: recall@%d = %.4f", keep, k, r)
		assert.GreaterOrEqual(t, r, 0.9, "1 in %d kept", keep)
	}
	// Random subsets: still nothing rejected comes back.
	for range 20 {
		keep := make([]bool, ix.Len())
		for i := range keep {
			keep[i] = rng.IntN(3) == 0
		}
		got, _ := ix.Search(nil, row(qs, d, rng.IntN(100)), k, 30, func(i int) bool { return keep[i] })
		for _, x := range got {
			require.True(t, keep[x.Index])
		}
	}
}

// TestSearchFilterGivesUp checks that a filter that rejects nearly all of
// the catalogue makes the search give up (so the caller scans exactly),
// still returning only accepted items, and that one that rejects
// everything returns nothing.
func TestSearchFilterGivesUp(t *testing.T) {
	vecs, ix := filterTestIndex()
	const d = 32
	q := row(vecs, d, 17)
	rare := func(i int) bool { return i%1000 == 3 }
	// ef = k keeps the budget, max(n/4, 4·ef·2M), below n even for the
	// small index of the race run.
	const k, ef = 10, 10
	require.Less(t, max(ix.Len()/4, 4*ef*ix.m0), ix.Len())
	got, complete := ix.Search(nil, q, k, ef, rare)
	assert.False(t, complete)
	for _, x := range got {
		assert.True(t, rare(int(x.Index)))
	}
	got, complete = ix.Search(nil, q, k, ef, func(int) bool { return false })
	assert.False(t, complete)
	assert.Empty(t, got)
	// The same search without a filter never gives up.
	_, complete = ix.Search(nil, q, k, ef, nil)
	assert.True(t, complete)
}

// TestSearchNaNQuery checks that a NaN query neither panics nor returns
// garbage: every distance is +Inf.
func TestSearchNaNQuery(t *testing.T) {
	_, ix := filterTestIndex()
	q := make([]float32, 32)
	q[3] = float32(math.NaN())
	got, _ := ix.Search(nil, q, 5, 0, nil)
	require.Len(t, got, 5)
	for _, x := range got {
		assert.True(t, math.IsInf(float64(x.Dist), 1))
	}
}

// TestSearchConcurrent checks that concurrent searches give the results
// of serial ones (run it with -race).
func TestSearchConcurrent(t *testing.T) {
	vecs, ix := filterTestIndex()
	const d = 32
	nq := 64
	want := make([][]Result, nq)
	even := func(i int) bool { return i%2 == 0 }
	for i := range nq {
		want[i], _ = ix.Search(nil, row(vecs, d, i*31), 10, 0, even)
	}
	var wg sync.WaitGroup
	got := make([][][]Result, 4)
	for g := range got {
		wg.Go(func() {
			got[g] = make([][]Result, nq)
			for i := range nq {
				got[g][i], _ = ix.Search(nil, row(vecs, d, i*31), 10, 0, even)
			}
		})
	}
	wg.Wait()
	for g := range got {
		assert.Equal(t, want, got[g], "goroutine %d", g)
	}
}

// TestSearchAllocs checks that a search into a reused dst allocates
// nothing once warm, with and without a filter.
func TestSearchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	vecs, ix := filterTestIndex()
	const d = 32
	dst := make([]Result, 0, 10)
	q := row(vecs, d, 5)
	even := func(i int) bool { return i%2 == 0 }
	for _, accept := range []func(int) bool{nil, even} {
		dst, _ = ix.Search(dst, q, 10, 0, accept)
		allocs := testing.AllocsPerRun(50, func() {
			dst, _ = ix.Search(dst, q, 10, 0, accept)
		})
		assert.Zero(t, allocs)
	}
}

// TestSearchPanics checks the documented panics.
func TestSearchPanics(t *testing.T) {
	_, ix := filterTestIndex()
	assert.PanicsWithValue(t, "style: ann: query of length 3, index of dimension 32", func() {
		ix.Search(nil, []float32{1, 2, 3}, 1, 0, nil)
	})
	assert.PanicsWithValue(t, "style: ann: negative k -1", func() {
		ix.Search(nil, make([]float32, 32), -1, 0, nil)
	})
}

// TestSearchDstReuse checks that Search reuses dst's array and leaves
// nothing of its old content in the result.
func TestSearchDstReuse(t *testing.T) {
	vecs, ix := filterTestIndex()
	dst := make([]Result, 20)
	for i := range dst {
		dst[i] = Result{Index: -1, Dist: -1}
	}
	got, _ := ix.Search(dst, row(vecs, 32, 0), 10, 0, nil)
	require.Len(t, got, 10)
	assert.Same(t, &dst[0], &got[0])
	assert.Equal(t, int32(0), got[0].Index)
	assert.Zero(t, got[0].Dist)
	assert.False(t, slices.ContainsFunc(got, func(r Result) bool { return r.Index < 0 }))
}
