package embedtest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// line returns n points on a line, in 1-D, labelled in two halves.
func line(n int) ([]float64, []int) {
	x := make([]float64, n)
	labels := make([]int, n)
	for i := range x {
		x[i] = float64(i)
		if i >= n/2 {
			labels[i] = 1
		}
	}
	return x, labels
}

func TestTrustworthiness(t *testing.T) {
	x, _ := line(40)
	// The identity and a scaled copy keep every neighbourhood.
	assert.InDelta(t, 1, Trustworthiness(x, 1, x, 1, 5), 1e-12)
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(3 * v)
	}
	assert.InDelta(t, 1, Trustworthiness(x, 1, y, 1, 5), 1e-12)
	// Reversing the order of the two halves breaks the neighbourhoods at
	// the seams only; a shuffle breaks almost all of them.
	swapped := make([]float64, len(x))
	for i, v := range x {
		swapped[i] = float64((int(v) + 20) % 40)
	}
	tw := Trustworthiness(x, 1, swapped, 1, 5)
	assert.Less(t, tw, 1.0)
	assert.Greater(t, tw, 0.9)
	shuffled := make([]float64, len(x))
	for i := range x {
		shuffled[i] = float64(i * 17 % 40)
	}
	assert.Less(t, Trustworthiness(x, 1, shuffled, 1, 5), tw)
}

func TestKNNAccuracy(t *testing.T) {
	x, labels := line(40)
	// Two separated halves: every point's neighbours share its label but
	// those at the seam.
	assert.GreaterOrEqual(t, KNNAccuracy(x, 1, labels, 3, 5), 0.9)
	// By hand, 1-NN with 2 folds: class 0 at 0, 1 | 2, 3 and class 1 at
	// 10, 2.4 | 12, 13 (| between the folds). Fold 0 tests 0, 1, 10, 2.4
	// against 2, 3, 12, 13: 2.4 is nearest 2, wrong (3 of 4). Fold 1 tests
	// 2, 3, 12, 13 against 0, 1, 10, 2.4: 2 and 3 are nearest 2.4, wrong
	// (2 of 4).
	y := []float32{0, 1, 2, 3, 10, 2.4, 12, 13}
	assert.InDelta(t, (0.75+0.5)/2, KNNAccuracy(y, 1, []int{0, 0, 0, 0, 1, 1, 1, 1}, 1, 2), 1e-12)
}
