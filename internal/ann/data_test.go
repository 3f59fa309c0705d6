package ann

import (
	"github.com/stylespace/style/internal/engine"
)

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
