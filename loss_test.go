package style

import (
	"math"
	"testing"
)

// TestContrastiveLossValues checks the loss against hand-computed values:
// a compatible pair costs d², an incompatible one max(margin-d, 0)².
func TestContrastiveLossValues(t *testing.T) {
	var l ContrastiveLoss // zero value: margin 1
	for _, c := range []struct {
		d     float64
		label int
		want  float64
	}{{0.5, 1, 0.25}, {0.5, 0, 0.25}, {0.2, 0, 0.64}, {1.5, 0, 0}, {1.5, 1, 2.25}} {
		if got := l.Pair(c.d, c.label); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("Pair(%v, %d) = %v, want %v", c.d, c.label, got, c.want)
		}
	}
	if got := (ContrastiveLoss{Margin: 2}).Pair(1.5, 0); math.Abs(got-0.25) > 1e-15 {
		t.Errorf("margin 2: Pair(1.5, 0) = %v, want 0.25", got)
	}
	// Batch of two 2-D pairs: distances 0.5 (3-4-5 scaled) and 0.6.
	h1 := []float32{0.3, 0.4, 0, 0}
	h2 := []float32{0, 0, 0.6, 0}
	labels := []int{1, 0}
	g1, g2 := make([]float32, 4), make([]float32, 4)
	got := l.Eval(g1, g2, h1, h2, labels)
	want := (0.25 + 0.16) / 2
	if math.Abs(got-want) > 1e-7 {
		t.Errorf("Eval = %v, want %v", got, want)
	}
	// Pair 0: dL/dh1 = (1/2)·2·(h1-h2) = (0.3, 0.4). Pair 1: d = 0.6,
	// dL/dd = (1/2)·(-2)(1-0.6) = -0.4, dd/dh1 = (h1-h2)/d = (-1, 0).
	wantG1 := []float64{0.3, 0.4, 0.4, 0}
	checkClose(t, "g1", g1, wantG1, 1e-6, 1e-7)
	for i := range g1 {
		if g2[i] != -g1[i] {
			t.Fatalf("g2[%d] = %v, want -g1 = %v", i, g2[i], -g1[i])
		}
	}
	g64 := make([]float64, 4)
	if got64 := l.Eval64(g64, nil, f64(h1), f64(h2), labels); math.Abs(got64-want) > 1e-7 {
		t.Errorf("Eval64 = %v, want %v", got64, want)
	}
}

// TestContrastiveLossFloor: identical embeddings sit on the distance floor
// sqrt(1e-7), where the gradient is zero (the max passes none), and never
// produce NaN.
func TestContrastiveLossFloor(t *testing.T) {
	h := []float32{0.5, 0.5, 0.5}
	g1, g2 := make([]float32, 3), make([]float32, 3)
	got := ContrastiveLoss{}.Eval(g1, g2, h, h, []int{0})
	want := math.Pow(1-math.Sqrt(1e-7), 2)
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("loss = %v, want %v", got, want)
	}
	for i := range g1 {
		if g1[i] != 0 || g2[i] != 0 {
			t.Fatalf("gradient under the floor is %v, %v; want 0", g1[i], g2[i])
		}
	}
	if got := (ContrastiveLoss{}).Eval(nil, nil, h, h, []int{1}); math.Abs(got-1e-7) > 1e-20 {
		t.Errorf("compatible identical pair loss = %v, want 1e-7", got)
	}
}

// TestContrastiveLossPanics: mismatched shapes are programmer errors.
func TestContrastiveLossPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"no labels": func() { ContrastiveLoss{}.Eval(nil, nil, []float32{1}, []float32{1}, nil) },
		"lengths":   func() { ContrastiveLoss{}.Eval(nil, nil, []float32{1, 2}, []float32{1}, []int{1}) },
		"ragged":    func() { ContrastiveLoss{}.Eval(nil, nil, []float32{1, 2, 3}, []float32{1, 2, 3}, []int{1, 0}) },
		"gradient":  func() { ContrastiveLoss{}.Eval(make([]float32, 1), nil, []float32{1, 2}, []float32{1, 2}, []int{1}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
