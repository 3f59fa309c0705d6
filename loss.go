package style

import (
	"fmt"
	"math"

	"github.com/stylespace/style/internal/engine"
)

// distanceFloor is the floor under the squared Euclidean distance, as in the
// study's Keras model: d = sqrt(max(sum((a-b)^2), distanceFloor)). It keeps
// the gradient of the square root finite for identical embeddings.
const distanceFloor = 1e-7

// ContrastiveLoss is the contrastive loss of Hadsell, Chopra and LeCun
// (2006) over the Euclidean distance d between the two embeddings of a
// pair:
//
//	loss = mean(y·d² + (1-y)·max(Margin-d, 0)²)
//	d    = sqrt(max(sum((h1-h2)²), 1e-7))
//
// with y = 1 for a compatible pair and 0 otherwise: compatible pairs are
// pulled together and incompatible ones pushed at least Margin apart.
//
// It is a plain value type: the zero value is the study's loss with margin
// 1, and a ContrastiveLoss is safe for concurrent use.
type ContrastiveLoss struct {
	// Margin is the distance beyond which incompatible pairs cost nothing.
	// Zero means 1.
	Margin float64
}

func (l ContrastiveLoss) margin() float64 {
	if l.Margin == 0 {
		return 1
	}
	return l.Margin
}

// EvalTo returns the mean loss over a batch of n pairs whose embeddings
// are the rows of h1 and h2 (n x dim, row-major, n = len(labels)), and
// writes the gradients of the mean loss with respect to h1 and h2 into g1
// and g2 (n x dim each); either may be nil when that gradient is not
// wanted. Labels are 1 for compatible pairs and 0 otherwise.
//
// EvalTo panics if len(labels) is 0, if the lengths of h1 and h2 differ or
// are not a multiple of len(labels), or if g1 or g2 is not nil and its
// length differs from that of h1.
func (l ContrastiveLoss) EvalTo(g1, g2, h1, h2 []float32, labels []int) float64 {
	return contrastiveEval(l.margin(), g1, g2, h1, h2, labels, nil)
}

// contrastiveEval implements ContrastiveLoss.EvalTo in both precisions:
// float32 for training, float64 for the reference results the float32
// path is checked against. The distance, the loss and the per-pair
// coefficient of the gradient are computed in float64; the gradients are
// stored in T. If dist is not nil it receives the n distances.
func contrastiveEval[T learnFloat](margin float64, g1, g2, h1, h2 []T, labels []int, dist []float64) float64 {
	n := len(labels)
	if n == 0 || len(h1) != len(h2) || len(h1)%n != 0 ||
		(g1 != nil && len(g1) != len(h1)) || (g2 != nil && len(g2) != len(h2)) ||
		(dist != nil && len(dist) != n) {
		panic(fmt.Sprintf("style: ContrastiveLoss: %d labels do not match embeddings of length %d and %d",
			n, len(h1), len(h2)))
	}
	dim := len(h1) / n
	inv := 1 / float64(n)
	var total float64
	for p := 0; p < n; p++ {
		a, b := h1[p*dim:(p+1)*dim], h2[p*dim:(p+1)*dim]
		var s float64
		for k := range a {
			t := float64(a[k]) - float64(b[k])
			s += t * t
		}
		floored := s < distanceFloor
		if floored {
			s = distanceFloor
		}
		d := math.Sqrt(s)
		if dist != nil {
			dist[p] = d
		}
		// dL/dd for this pair, already divided by n.
		var dLdd float64
		if labels[p] != 0 {
			total += d * d
			dLdd = 2 * d * inv
		} else if m := margin - d; m > 0 {
			total += m * m
			dLdd = -2 * m * inv
		}
		if g1 == nil && g2 == nil {
			continue
		}
		// dd/dh1 = (h1-h2)/d, zero under the floor (the max passes no
		// gradient to the sum there).
		coef := 0.0
		if !floored {
			coef = dLdd / d
		}
		for k := range a {
			g := coef * (float64(a[k]) - float64(b[k]))
			if g1 != nil {
				g1[p*dim+k] = T(g)
			}
			if g2 != nil {
				g2[p*dim+k] = T(-g)
			}
		}
	}
	return total * inv
}

// l2Penalty returns the L2 penalty l2·Σw² on the head's kernel w and, if
// g is not nil, adds its gradient 2·l2·w to g. It is the one
// implementation of the penalty, used by the training step (with the
// gradient) and the validation loss (without), and runs the engine's
// chunked pass on up to workers goroutines (resolved, not negative): the
// result does not depend on their number.
func l2Penalty(g, w []float32, l2 float64, workers int) float64 {
	return engine.L2Penalty(g, w, l2, workers)
}

// pairDistance returns the Euclidean distance between two embeddings with
// the same floor as the loss.
func pairDistance(a, b []float32) float64 {
	var s float64
	for k := range a {
		t := float64(a[k]) - float64(b[k])
		s += t * t
	}
	return math.Sqrt(math.Max(s, distanceFloor))
}
