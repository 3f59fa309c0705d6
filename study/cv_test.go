package study

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stylespace/style"
)

// labelled returns n pairs, a fraction pos of them compatible, in a
// seeded random order.
func labelled(n int, pos float64, seed uint64) []style.LabeledPair {
	rng := rand.New(rand.NewPCG(seed, 1))
	ps := make([]style.LabeledPair, n)
	for i := range ps {
		ps[i] = style.LabeledPair{A: i, B: i + 1}
		if i < int(pos*float64(n)+0.5) {
			ps[i].Label = 1
		}
	}
	rng.Shuffle(n, func(a, b int) { ps[a], ps[b] = ps[b], ps[a] })
	return ps
}

// TestStratifiedKFoldRules: on several class ratios, among them the
// study's 5.8% compatible pairs, every pair is tested exactly once, fold
// sizes and each class's counts per fold differ by at most one, the
// larger folds come first (scikit-learn's sizes), and a seed gives the
// same folds every time while another seed gives others.
func TestStratifiedKFoldRules(t *testing.T) {
	for _, tc := range []struct {
		n   int
		pos float64
		k   int
	}{{1000, 0.5, 5}, {997, 0.3, 3}, {2000, 0.058, 5}, {1234, 0.058, 10}, {100, 0.03, 2}, {53, 0.2, 7}} {
		t.Run(fmt.Sprintf("n%d_pos%g_k%d", tc.n, tc.pos, tc.k), func(t *testing.T) {
			pairs := labelled(tc.n, tc.pos, 3)
			folds, err := StratifiedKFold(pairs, tc.k, 9)
			require.NoError(t, err)
			require.Len(t, folds, tc.k)
			seen := make([]int, tc.n)
			minSize, maxSize := tc.n, 0
			var counts [2][]int
			for i, f := range folds {
				c := [2]int{}
				for j, idx := range f {
					seen[idx]++
					c[pairs[idx].Label]++
					if j > 0 {
						require.Less(t, f[j-1], idx, "fold %d is not in increasing order", i)
					}
				}
				counts[0], counts[1] = append(counts[0], c[0]), append(counts[1], c[1])
				minSize, maxSize = min(minSize, len(f)), max(maxSize, len(f))
				wantSize := tc.n / tc.k
				if i < tc.n%tc.k {
					wantSize++
				}
				assert.Len(t, f, wantSize, "fold %d size (scikit-learn's)", i)
			}
			for idx, s := range seen {
				require.Equal(t, 1, s, "pair %d is in %d test folds", idx, s)
			}
			assert.LessOrEqual(t, maxSize-minSize, 1, "fold sizes")
			for l := range 2 {
				lo, hi := tc.n, 0
				for _, c := range counts[l] {
					lo, hi = min(lo, c), max(hi, c)
				}
				assert.LessOrEqual(t, hi-lo, 1, "class %d counts per fold %v", l, counts[l])
			}
			again, err := StratifiedKFold(pairs, tc.k, 9)
			require.NoError(t, err)
			assert.Equal(t, folds, again, "same seed")
			other, err := StratifiedKFold(pairs, tc.k, 10)
			require.NoError(t, err)
			assert.NotEqual(t, folds, other, "another seed")
		})
	}
}

// TestStratifiedKFoldAllocation: 5 pairs of each class in 3 folds. The
// class met first (here 0) fills the first positions of the sorted labels,
// so scikit-learn gives class 0 the counts 2, 2, 1 and class 1 the counts
// 2, 1, 2 (positions 0,3,6,9 | 1,4,7 | 2,5,8 of 0000011111).
func TestStratifiedKFoldAllocation(t *testing.T) {
	var pairs []style.LabeledPair
	for i := range 10 {
		pairs = append(pairs, style.LabeledPair{A: i, B: i, Label: i % 2})
	}
	require.Equal(t, 0, pairs[0].Label)
	folds, err := StratifiedKFold(pairs, 3, 1)
	require.NoError(t, err)
	var got [2][]int
	for _, f := range folds {
		c := [2]int{}
		for _, idx := range f {
			c[pairs[idx].Label]++
		}
		got[0], got[1] = append(got[0], c[0]), append(got[1], c[1])
	}
	assert.Equal(t, [2][]int{{2, 2, 1}, {2, 1, 2}}, got)
	// With class 1 met first the roles swap.
	pairs[0].Label, pairs[1].Label = 1, 0
	folds, err = StratifiedKFold(pairs, 3, 1)
	require.NoError(t, err)
	got = [2][]int{}
	for _, f := range folds {
		c := [2]int{}
		for _, idx := range f {
			c[pairs[idx].Label]++
		}
		got[0], got[1] = append(got[0], c[0]), append(got[1], c[1])
	}
	assert.Equal(t, [2][]int{{2, 1, 2}, {2, 2, 1}}, got)
}

func TestStratifiedKFoldErrors(t *testing.T) {
	pairs := labelled(20, 0.1, 1) // 2 compatible, 18 not
	_, err := StratifiedKFold(pairs, 1, 0)
	assert.ErrorContains(t, err, "at least 2")
	_, err = StratifiedKFold(pairs, 21, 0)
	assert.ErrorContains(t, err, "more than the pairs of every class")
	folds, err := StratifiedKFold(pairs, 5, 0) // 5 > 2 compatible: allowed, as scikit-learn warns
	require.NoError(t, err)
	assert.Len(t, folds, 5)
	pairs[3].Label = 2
	_, err = StratifiedKFold(pairs, 2, 0)
	assert.ErrorContains(t, err, "pair 3 has label 2")
}
