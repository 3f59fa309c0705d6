package style

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type goldenROCCase struct {
	Labels     []int
	Scores     []float64
	FPR        []float64
	TPR        []float64
	Thresholds []any // numbers, and the string "inf" first
	AUC        float64
}

func loadGoldenROC(t *testing.T) map[string]goldenROCCase {
	t.Helper()
	b, err := os.ReadFile("testdata/roc_sklearn.json")
	require.NoError(t, err)
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &m))
	cases := map[string]goldenROCCase{}
	for name, raw := range m {
		var c goldenROCCase
		if err := json.Unmarshal(raw, &c); err != nil || len(c.Labels) == 0 {
			continue // not a case
		}
		cases[name] = c
	}
	for _, want := range []string{"random_6pct", "ties", "perfect", "inverted"} {
		require.Contains(t, cases, want, "golden case missing")
	}
	return cases
}

func goldenThreshold(t *testing.T, v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		switch x {
		case "inf", "Infinity":
			return math.Inf(1)
		case "-inf", "-Infinity":
			return math.Inf(-1)
		}
	}
	t.Fatalf("unexpected threshold %v", v)
	return 0
}

// TestROCGolden compares every point and the AUC with scikit-learn's
// roc_curve(drop_intermediate=False) and roc_auc_score. The rates are
// ratios of the same integer counts, so they agree exactly; 1e-12 allows for
// the order of the trapezoid sum in the AUC. Thresholds are input values
// and must be equal. The distance form of the same data (negated scores)
// must give the same rates, negated thresholds and the same AUC.
func TestROCGolden(t *testing.T) {
	for name, c := range loadGoldenROC(t) {
		t.Run(name, func(t *testing.T) {
			r, err := ROCFromScores(c.Scores, c.Labels)
			require.NoError(t, err)
			require.Len(t, r.FPR, len(c.FPR), "points")
			require.Len(t, r.TPR, len(c.TPR), "points")
			require.Len(t, r.Thresholds, len(c.Thresholds), "points")
			neg := make([]float64, len(c.Scores))
			for i, s := range c.Scores {
				neg[i] = -s
			}
			rd, err := ROCFromDistances(neg, c.Labels)
			require.NoError(t, err)
			for i := range c.FPR {
				th := goldenThreshold(t, c.Thresholds[i])
				if math.Abs(r.FPR[i]-c.FPR[i]) > 1e-12 || math.Abs(r.TPR[i]-c.TPR[i]) > 1e-12 || r.Thresholds[i] != th {
					t.Fatalf("point %d = (%v, %v, %v), want (%v, %v, %v)", i, r.FPR[i], r.TPR[i], r.Thresholds[i], c.FPR[i], c.TPR[i], th)
				}
				if rd.FPR[i] != r.FPR[i] || rd.TPR[i] != r.TPR[i] || rd.Thresholds[i] != -th {
					t.Fatalf("distance point %d = (%v, %v, %v), want (%v, %v, %v)", i, rd.FPR[i], rd.TPR[i], rd.Thresholds[i], r.FPR[i], r.TPR[i], -th)
				}
			}
			assert.InDelta(t, c.AUC, r.AUC(), 1e-12, "AUC")
			assert.InDelta(t, c.AUC, rd.AUC(), 1e-12, "AUC from distances")
		})
	}
}

// TestROCCutoffs checks Youden's J and AtFPR on a small set of distances
// worked out by hand, and against brute force on the golden data at the
// study's false positive rates.
func TestROCCutoffs(t *testing.T) {
	// Distances and labels: 0.1+ 0.2+ 0.3- 0.4+ 0.5-.
	// Points: (-Inf: 0, 0) (0.1: 0, 1/3) (0.2: 0, 2/3) (0.3: 1/2, 2/3)
	// (0.4: 1/2, 1) (0.5: 1, 1). J is largest (2/3) at cutoff 0.2; 5 of the
	// 6 positive-negative pairs are ordered right, so AUC = 5/6.
	r, err := ROCFromDistances([]float64{0.3, 0.1, 0.5, 0.4, 0.2}, []int{0, 1, 0, 1, 1})
	require.NoError(t, err)
	assert.Equal(t, ROCPoint{FPR: 0, TPR: 2.0 / 3, Threshold: 0.2}, r.Youden(), "Youden: cutoff 0.2, TPR 2/3, FPR 0")
	assert.InDelta(t, 5.0/6, r.AUC(), 1e-15, "AUC")
	assert.Equal(t, ROCPoint{FPR: 0.5, TPR: 1, Threshold: 0.4}, r.AtFPR(0.5), "AtFPR(0.5)")
	assert.Equal(t, ROCPoint{FPR: 0, TPR: 2.0 / 3, Threshold: 0.2}, r.AtFPR(0.49), "AtFPR(0.49)")
	assert.Equal(t, ROCPoint{FPR: 0, TPR: 0, Threshold: math.Inf(-1)}, r.AtFPR(-1), "AtFPR(-1): cutoff -Inf")

	c := loadGoldenROC(t)["random_6pct"]
	g, err := ROCFromScores(c.Scores, c.Labels)
	require.NoError(t, err)
	y := g.Youden()
	for i := range g.FPR {
		require.LessOrEqual(t, g.TPR[i]-g.FPR[i], y.TPR-y.FPR, "point %d has J above Youden's", i)
	}
	for _, f := range []float64{0.05, 0.10, 0.20} {
		p := g.AtFPR(f)
		i := -1
		for j := range g.FPR {
			if g.FPR[j] <= f {
				i = j
			}
		}
		assert.LessOrEqual(t, p.FPR, f, "AtFPR(%v)", f)
		assert.Equal(t, ROCPoint{FPR: g.FPR[i], TPR: g.TPR[i], Threshold: g.Thresholds[i]}, p, "AtFPR(%v): want the last point within the rate", f)
		// The cutoff reproduces the rates when applied to the scores.
		tp, fp, np, nn := 0, 0, 0, 0
		for j, s := range c.Scores {
			if c.Labels[j] == 1 {
				np++
				if s >= p.Threshold {
					tp++
				}
			} else {
				nn++
				if s >= p.Threshold {
					fp++
				}
			}
		}
		assert.Equal(t, p.TPR, float64(tp)/float64(np), "TPR recounted at cutoff %v", p.Threshold)
		assert.Equal(t, p.FPR, float64(fp)/float64(nn), "FPR recounted at cutoff %v", p.Threshold)
	}
}

// TestROCErrors: single-class labels, bad labels, NaN and empty input are
// errors, never NaN rates; mismatched lengths panic.
func TestROCErrors(t *testing.T) {
	_, err := ROCFromScores([]float64{1, 2, 3}, []int{1, 1, 1})
	assert.ErrorIs(t, err, errOneClass, "all positive")
	_, err = ROCFromDistances([]float64{1, 2, 3}, []int{0, 0, 0})
	assert.ErrorIs(t, err, errOneClass, "all negative")
	_, err = ROCFromScores([]float64{1, 2}, []int{0, 2})
	assert.ErrorContains(t, err, "label 2 at index 1", "label 2")
	_, err = ROCFromScores([]float64{1, math.NaN()}, []int{0, 1})
	assert.ErrorContains(t, err, "index 1 is NaN", "NaN score")
	_, err = ROCFromScores(nil, nil)
	assert.Error(t, err, "empty")
	mustPanic(t, "labels", func() { ROCFromScores([]float64{1, 2}, []int{0}) })
}

func ExampleROCFromDistances() {
	// Distances from a siamese head (smaller = more compatible) and the
	// true labels (1 = the items go well together).
	dist := []float64{0.3, 0.1, 0.5, 0.4, 0.2, 0.9, 0.05, 0.7}
	labels := []int{0, 1, 0, 1, 1, 0, 1, 0}
	roc, err := ROCFromDistances(dist, labels)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("AUC %.4f\n", roc.AUC())
	y := roc.Youden()
	fmt.Printf("Youden: compatible if distance <= %.2f (TPR %.2f, FPR %.2f)\n", y.Threshold, y.TPR, y.FPR)
	for _, rate := range []float64{0.25, 0.5} {
		p := roc.AtFPR(rate)
		fmt.Printf("FPR %.2f: TPR %.2f, cutoff %.2f\n", p.FPR, p.TPR, p.Threshold)
	}
	// Output:
	// AUC 0.9375
	// Youden: compatible if distance <= 0.20 (TPR 0.75, FPR 0.00)
	// FPR 0.25: TPR 1.00, cutoff 0.40
	// FPR 0.50: TPR 1.00, cutoff 0.50
}
