package style

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// contrastivePair is the float64 reference loss of one pair at distance d
// with label 1 (compatible) or 0 (not): d² or max(margin-d, 0)².
func contrastivePair(margin, d float64, label int) float64 {
	if label != 0 {
		return d * d
	}
	m := math.Max(margin-d, 0)
	return m * m
}

// TestContrastiveLossValues checks the loss against hand-computed values:
// a compatible pair costs d², an incompatible one max(margin-d, 0)².
func TestContrastiveLossValues(t *testing.T) {
	var l ContrastiveLoss // zero value: margin 1
	for _, c := range []struct {
		d     float64
		label int
		want  float64
	}{{0.5, 1, 0.25}, {0.5, 0, 0.25}, {0.2, 0, 0.64}, {1.5, 0, 0}, {1.5, 1, 2.25}} {
		assert.InDelta(t, c.want, contrastivePair(1, c.d, c.label), 1e-15, "reference pair (%v, %d)", c.d, c.label)
		// One pair of 1-D embeddings at distance d: float32 inputs, so
		// float32 precision.
		got := l.EvalTo(nil, nil, []float32{0}, []float32{float32(c.d)}, []int{c.label})
		assert.InDelta(t, c.want, got, 1e-7, "EvalTo of one pair (%v, %d)", c.d, c.label)
	}
	assert.InDelta(t, 0.25, contrastivePair(2, 1.5, 0), 1e-15, "margin 2: reference pair (1.5, 0)")
	assert.InDelta(t, 0.25, ContrastiveLoss{Margin: 2}.EvalTo(nil, nil, []float32{0}, []float32{1.5}, []int{0}), 1e-15,
		"margin 2: EvalTo at distance 1.5")
	// Batch of two 2-D pairs: distances 0.5 (3-4-5 scaled) and 0.6.
	h1 := []float32{0.3, 0.4, 0, 0}
	h2 := []float32{0, 0, 0.6, 0}
	labels := []int{1, 0}
	g1, g2 := make([]float32, 4), make([]float32, 4)
	got := l.EvalTo(g1, g2, h1, h2, labels)
	want := (0.25 + 0.16) / 2
	assert.InDelta(t, want, got, 1e-7, "EvalTo")
	// Pair 0: dL/dh1 = (1/2)·2·(h1-h2) = (0.3, 0.4). Pair 1: d = 0.6,
	// dL/dd = (1/2)·(-2)(1-0.6) = -0.4, dd/dh1 = (h1-h2)/d = (-1, 0).
	wantG1 := []float64{0.3, 0.4, 0.4, 0}
	checkClose(t, "g1", g1, wantG1, 1e-6, 1e-7)
	for i := range g1 {
		require.Equal(t, -g1[i], g2[i], "g2[%d] = -g1", i)
	}
	// Only one gradient wanted: the same values.
	g1only := make([]float32, 4)
	l.EvalTo(g1only, nil, h1, h2, labels)
	assert.Equal(t, g1, g1only, "g1 without g2")
	// The float64 reference path of the same batch.
	g64 := make([]float64, 4)
	got64 := contrastiveEval(1, g64, nil, f64(h1), f64(h2), labels, nil)
	assert.InDelta(t, want, got64, 1e-7, "float64 reference")
}

// TestContrastiveLossFloor: identical embeddings sit on the distance floor
// sqrt(1e-7), where the gradient is zero (the max passes none), and never
// produce NaN.
func TestContrastiveLossFloor(t *testing.T) {
	h := []float32{0.5, 0.5, 0.5}
	g1, g2 := make([]float32, 3), make([]float32, 3)
	got := ContrastiveLoss{}.EvalTo(g1, g2, h, h, []int{0})
	want := math.Pow(1-math.Sqrt(1e-7), 2)
	assert.InDelta(t, want, got, 1e-12, "loss")
	assert.Equal(t, []float32{0, 0, 0}, g1, "gradient under the floor")
	assert.Equal(t, []float32{0, 0, 0}, g2, "gradient under the floor")
	assert.InDelta(t, 1e-7, ContrastiveLoss{}.EvalTo(nil, nil, h, h, []int{1}), 1e-20, "compatible identical pair loss")
}

// TestContrastiveLossPanics: mismatched shapes are programmer errors.
func TestContrastiveLossPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"no labels": func() { ContrastiveLoss{}.EvalTo(nil, nil, []float32{1}, []float32{1}, nil) },
		"lengths":   func() { ContrastiveLoss{}.EvalTo(nil, nil, []float32{1, 2}, []float32{1}, []int{1}) },
		"ragged":    func() { ContrastiveLoss{}.EvalTo(nil, nil, []float32{1, 2, 3}, []float32{1, 2, 3}, []int{1, 0}) },
		"gradient":  func() { ContrastiveLoss{}.EvalTo(make([]float32, 1), nil, []float32{1, 2}, []float32{1, 2}, []int{1}) },
		"gradient2": func() { ContrastiveLoss{}.EvalTo(nil, make([]float32, 3), []float32{1, 2}, []float32{1, 2}, []int{1}) },
	} {
		t.Run(name, func(t *testing.T) { mustPanic(t, "ContrastiveLoss", f) })
	}
}

// TestL2Penalty checks the one L2 penalty of training and validation
// against the float64 reference loop: the gradient added to g bit for bit
// up to FMA contraction (float32 products of the same values; 1e-6
// relative covers one rounding), the penalty with and without a gradient
// to 1e-12 relative (float64 sums in another order), for 1 and 2 workers.
func TestL2Penalty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 2<<16 + 77 // several of the engine's chunks
	w, g0 := make([]float32, n), make([]float32, n)
	for i := range w {
		w[i], g0[i] = rng.Float32()-0.5, rng.Float32()-0.5
	}
	ref := append([]float32(nil), g0...)
	want := l2PenaltyRef(ref, w, 1.25e-4)
	for _, workers := range []int{1, 2} {
		g := append([]float32(nil), g0...)
		assert.InEpsilon(t, want, l2Penalty(g, w, 1.25e-4, workers), 1e-12, "with gradient, %d workers", workers)
		checkClose(t, "gradient", g, f64(ref), 1e-6, 0)
		assert.InEpsilon(t, want, l2Penalty(nil, w, 1.25e-4, workers), 1e-12, "without gradient, %d workers", workers)
	}
	assert.Zero(t, l2Penalty(nil, w, 0, 1), "l2 = 0")
}
