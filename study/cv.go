package study

import (
	"fmt"
	"math/rand/v2"

	"github.com/stylespace/style"
)

// StratifiedKFold splits pairs into k test folds that keep the class
// ratio, with scikit-learn's StratifiedKFold(n_splits=k, shuffle=True)
// rules, and returns the indices into pairs of each fold's test part, in
// increasing order; a fold's training part is every other pair.
//
// Fold sizes and class counts follow scikit-learn exactly: the classes
// are ordered by first appearance in pairs, and fold i gets the class
// counts of every k-th element, starting at i, of the labels sorted in
// that order. So every pair is in exactly one fold, fold sizes differ by
// at most one (the first len(pairs)%k folds are the larger), and so do a
// class's counts in different folds. Within a class, which pairs go to
// which fold is a shuffle seeded by seed (PCG): the same seed gives the
// same folds, but not the indices scikit-learn's generator gives.
//
// It returns an error if k < 2, if a label is not 0 or 1, or if every
// class has fewer than k pairs (as scikit-learn does); a class with fewer
// than k pairs, which scikit-learn warns about, leaves some folds without
// it.
func StratifiedKFold(pairs []style.LabeledPair, k int, seed uint64) ([][]int, error) {
	if k < 2 {
		return nil, fmt.Errorf("study: StratifiedKFold: %d folds, want at least 2", k)
	}
	// Classes in order of first appearance, and their members in order.
	var labels []int
	members := map[int][]int{}
	for i, p := range pairs {
		if p.Label != 0 && p.Label != 1 {
			return nil, fmt.Errorf("study: StratifiedKFold: pair %d has label %d, want 0 or 1", i, p.Label)
		}
		if _, ok := members[p.Label]; !ok {
			labels = append(labels, p.Label)
		}
		members[p.Label] = append(members[p.Label], i)
	}
	enough := false
	for _, l := range labels {
		enough = enough || len(members[l]) >= k
	}
	if !enough {
		return nil, fmt.Errorf("study: StratifiedKFold: %d folds, more than the pairs of every class", k)
	}
	// allocation[i][c]: pairs of class c in fold i, the count of class c
	// among the positions i, i+k, i+2k, ... of the sorted labels.
	allocation := make([][]int, k)
	for i := range allocation {
		allocation[i] = make([]int, len(labels))
	}
	pos := 0
	for c, l := range labels {
		for range members[l] {
			allocation[pos%k][c]++
			pos++
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x510e527fade682d1))
	fold := make([]int, len(pairs))
	for c, l := range labels {
		var assign []int // fold numbers in blocks, then shuffled
		for i := range k {
			for range allocation[i][c] {
				assign = append(assign, i)
			}
		}
		rng.Shuffle(len(assign), func(a, b int) { assign[a], assign[b] = assign[b], assign[a] })
		for j, idx := range members[l] {
			fold[idx] = assign[j]
		}
	}
	folds := make([][]int, k)
	for idx, f := range fold {
		folds[f] = append(folds[f], idx)
	}
	return folds, nil
}
