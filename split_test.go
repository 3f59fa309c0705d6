package style

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sortedPairs concatenates and sorts pairs so that splits can be compared
// as multisets.
func sortedPairs(ps ...[]LabeledPair) []LabeledPair {
	var all []LabeledPair
	for _, p := range ps {
		all = append(all, p...)
	}
	slices.SortFunc(all, func(a, b LabeledPair) int {
		if a.A != b.A {
			return a.A - b.A
		}
		if a.B != b.B {
			return a.B - b.B
		}
		return a.Label - b.Label
	})
	return all
}

func positives(ps []LabeledPair) int {
	n := 0
	for _, p := range ps {
		n += p.Label
	}
	return n
}

func TestStratifiedSplitSmall(t *testing.T) {
	// 103 pairs, 17 positive: sizes round(61.8)=62, round(82.4)-62=20,
	// the rest 21. Cumulative rounding, negatives first: the 86 negatives
	// get round(51.6)=52, round(68.8)-52=17 and 17; the positives the
	// rest: 62-52=10, 82-69=13 so 3 for validation, and 4 for test (each
	// within one pair of its share 10.2/3.4/3.4).
	var pairs []LabeledPair
	for i := range 103 {
		l := 0
		if i%6 == 0 && i < 102 {
			l = 1
		}
		pairs = append(pairs, LabeledPair{A: i, B: i + 1000, Label: l})
	}
	require.Equal(t, 17, positives(pairs), "setup: positives")
	before := slices.Clone(pairs)
	train, val, test := StratifiedSplit(pairs, 42)
	require.Equal(t, []int{62, 20, 21}, []int{len(train), len(val), len(test)}, "sizes")
	require.Equal(t, []int{10, 3, 4}, []int{positives(train), positives(val), positives(test)}, "positives")
	require.Equal(t, sortedPairs(pairs), sortedPairs(train, val, test), "the split is not a partition of the pairs")
	require.Equal(t, before, pairs, "the input was modified")
	// Labels are mixed, not grouped.
	require.NotZero(t, positives(train[:31]), "positives grouped in the training set")
	require.NotZero(t, positives(train[31:]), "positives grouped in the training set")
	// Other fractions (through the unexported function the study's split
	// calls); the input is not modified.
	tr, va, te := stratifiedSplit(pairs, 1, 0.5, 0)
	require.Equal(t, []int{52, 0, 51}, []int{len(tr), len(va), len(te)}, "50/0/50")
	require.Equal(t, before, pairs, "the input was modified")
	mustPanic(t, "fractions", func() { stratifiedSplit(pairs, 1, 0.7, 0.5) })
}

func TestStratifiedSplitAmazon(t *testing.T) {
	pairs := readAmazonPairs(t)
	// Index the names as a store would.
	idx := map[string]int{}
	lp := make([]LabeledPair, len(pairs))
	for i, p := range pairs {
		for _, n := range []string{p.A, p.B} {
			if _, ok := idx[n]; !ok {
				idx[n] = len(idx)
			}
		}
		lp[i] = LabeledPair{A: idx[p.A], B: idx[p.B], Label: p.Label}
	}
	train, val, test := StratifiedSplit(lp, 1)
	want := []int{21000, 7000, 7000}
	for k, s := range [][]LabeledPair{train, val, test} {
		require.Len(t, s, want[k], "set %d", k)
		// The study's 5.8% +- 0.1% positives (2,040 / 35,000 = 5.83%).
		require.InDelta(t, 0.058, float64(positives(s))/float64(len(s)), 0.001, "set %d: share of positives", k)
	}
	require.Equal(t, []int{1224, 408, 408}, []int{positives(train), positives(val), positives(test)}, "positives")
	require.Equal(t, sortedPairs(lp), sortedPairs(train, val, test), "the split is not a partition of the pairs")
	// Deterministic for a seed, different for another.
	train2, val2, test2 := StratifiedSplit(lp, 1)
	require.Equal(t, train, train2, "same seed, different split")
	require.Equal(t, val, val2, "same seed, different split")
	require.Equal(t, test, test2, "same seed, different split")
	train3, _, _ := StratifiedSplit(lp, 2)
	require.NotEqual(t, train, train3, "seeds 1 and 2 give the same split")
}

func ExampleStratifiedSplit() {
	var csv strings.Builder
	csv.WriteString("pic1;pic2;score\r\n")
	for i := range 20 {
		fmt.Fprintf(&csv, "top%d.jpg;shoe%d.jpg;%d\r\n", i, i, i%4/3) // every 4th pair matches
	}
	pairs, err := parsePairs(strings.NewReader(csv.String()), "pairs.csv")
	if err != nil {
		fmt.Println(err)
		return
	}
	// Index the images as a FeatureStore would after extraction.
	index := map[string]int{}
	for i, n := range UniqueNames(pairs) {
		index[n] = i
	}
	var labeled []LabeledPair
	for _, p := range pairs {
		labeled = append(labeled, LabeledPair{A: index[p.A], B: index[p.B], Label: p.Label})
	}
	train, val, test := StratifiedSplit(labeled, 1)
	for _, set := range [][]LabeledPair{train, val, test} {
		fmt.Printf("%d pairs, %d matching\n", len(set), positives(set))
	}
	// Output:
	// 12 pairs, 3 matching
	// 4 pairs, 1 matching
	// 4 pairs, 1 matching
}
