package style

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// StratifiedSplit splits pairs into training, validation and test sets of
// 60%, 20% and 20%, with the same share of each label in every set, as the
// study did. pairs is not modified.
//
// The set sizes are round(0.6·n) and round(0.8·n) - round(0.6·n), the
// rest going to test; within them each label gets its share to within one
// pair (cumulative rounding over the labels in increasing order, so the
// sizes are exact). The pairs of each label are shuffled with a PCG
// generator seeded with seed before being dealt, and each set is shuffled
// again so labels are mixed: the result depends only on pairs, their order
// and seed. With the study's 35,000 pairs (2,040 positive) it gives
// 21,000, 7,000 and 7,000 pairs with 1,224, 408 and 408 positives.
//
// The split is by pair: an image may appear in pairs of several sets.
func StratifiedSplit(pairs []LabeledPair, seed uint64) (train, val, test []LabeledPair) {
	return stratifiedSplit(pairs, seed, 0.6, 0.2)
}

// stratifiedSplit is StratifiedSplit with the fractions trainFrac and
// valFrac for the training and validation sets, the test set taking the
// rest. It panics if a fraction is negative or not finite, or if they sum
// to more than 1.
func stratifiedSplit(pairs []LabeledPair, seed uint64, trainFrac, valFrac float64) (train, val, test []LabeledPair) {
	if !(trainFrac >= 0 && valFrac >= 0 && trainFrac+valFrac <= 1+1e-12) || math.IsInf(trainFrac+valFrac, 0) {
		panic(fmt.Sprintf("style: stratifiedSplit: fractions %v and %v must be >= 0 with a sum <= 1", trainFrac, valFrac))
	}
	byLabel := map[int][]int{}
	for i, p := range pairs {
		byLabel[p.Label] = append(byLabel[p.Label], i)
	}
	labels := make([]int, 0, len(byLabel))
	for l := range byLabel {
		labels = append(labels, l)
	}
	slices.Sort(labels)

	rng := rand.New(rand.NewPCG(seed, 0x5d1e5a1e5eed))
	cut := func(f float64, n int) int { return min(int(math.Round(f*float64(n))), n) }
	cum := 0
	for _, l := range labels {
		idx := byLabel[l]
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		before, after := cum, cum+len(idx)
		nTrain := cut(trainFrac, after) - cut(trainFrac, before)
		nTrainVal := cut(trainFrac+valFrac, after) - cut(trainFrac+valFrac, before)
		nTrainVal = max(nTrainVal, nTrain)
		for k, i := range idx {
			switch {
			case k < nTrain:
				train = append(train, pairs[i])
			case k < nTrainVal:
				val = append(val, pairs[i])
			default:
				test = append(test, pairs[i])
			}
		}
		cum = after
	}
	for _, s := range [][]LabeledPair{train, val, test} {
		rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	}
	return train, val, test
}
