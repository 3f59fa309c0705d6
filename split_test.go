package style

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
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
	if positives(pairs) != 17 {
		t.Fatalf("setup: %d positives", positives(pairs))
	}
	train, val, test := StratifiedSplit(pairs, 42)
	if len(train) != 62 || len(val) != 20 || len(test) != 21 {
		t.Fatalf("sizes %d/%d/%d, want 62/20/21", len(train), len(val), len(test))
	}
	if positives(train) != 10 || positives(val) != 3 || positives(test) != 4 {
		t.Fatalf("positives %d/%d/%d, want 10/3/4", positives(train), positives(val), positives(test))
	}
	if !reflect.DeepEqual(sortedPairs(train, val, test), sortedPairs(pairs)) {
		t.Fatal("the split is not a partition of the pairs")
	}
	// Labels are mixed, not grouped.
	if positives(train[:31]) == 0 || positives(train[31:]) == 0 {
		t.Fatal("positives grouped in the training set")
	}
	// Other fractions; the input is not modified.
	before := slices.Clone(pairs)
	tr, va, te := StratifiedSplitFractions(pairs, 1, 0.5, 0)
	if len(tr) != 52 || len(va) != 0 || len(te) != 51 || !slices.Equal(before, pairs) {
		t.Fatalf("50/0/50: %d/%d/%d", len(tr), len(va), len(te))
	}
	defer func() {
		if recover() == nil {
			t.Fatal("fractions summing to 1.2 accepted")
		}
	}()
	StratifiedSplitFractions(pairs, 1, 0.7, 0.5)
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
		if len(s) != want[k] {
			t.Fatalf("set %d has %d pairs, want %d", k, len(s), want[k])
		}
		// The study's 5.8% +- 0.1% positives (2,040 / 35,000 = 5.83%).
		if share := float64(positives(s)) / float64(len(s)); math.Abs(share-0.058) > 0.001 {
			t.Fatalf("set %d has %.4f positives, want 0.058 +- 0.001", k, share)
		}
	}
	if positives(train) != 1224 || positives(val) != 408 || positives(test) != 408 {
		t.Fatalf("positives %d/%d/%d, want 1224/408/408", positives(train), positives(val), positives(test))
	}
	if !reflect.DeepEqual(sortedPairs(train, val, test), sortedPairs(lp)) {
		t.Fatal("the split is not a partition of the pairs")
	}
	// Deterministic for a seed, different for another.
	train2, val2, test2 := StratifiedSplit(lp, 1)
	if !slices.Equal(train, train2) || !slices.Equal(val, val2) || !slices.Equal(test, test2) {
		t.Fatal("same seed, different split")
	}
	train3, _, _ := StratifiedSplit(lp, 2)
	if slices.Equal(train, train3) {
		t.Fatal("seeds 1 and 2 give the same split")
	}
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
