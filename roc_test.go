package style

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"
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
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	cases := map[string]goldenROCCase{}
	for name, raw := range m {
		var c goldenROCCase
		if err := json.Unmarshal(raw, &c); err != nil || len(c.Labels) == 0 {
			continue // not a case
		}
		cases[name] = c
	}
	for _, want := range []string{"random_6pct", "ties", "perfect", "inverted"} {
		if _, ok := cases[want]; !ok {
			t.Fatalf("golden case %q missing", want)
		}
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
			if err != nil {
				t.Fatal(err)
			}
			if len(r.FPR) != len(c.FPR) || len(r.TPR) != len(c.TPR) || len(r.Thresholds) != len(c.Thresholds) {
				t.Fatalf("%d points, want %d", len(r.FPR), len(c.FPR))
			}
			neg := make([]float64, len(c.Scores))
			for i, s := range c.Scores {
				neg[i] = -s
			}
			rd, err := ROCFromDistances(neg, c.Labels)
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.FPR {
				th := goldenThreshold(t, c.Thresholds[i])
				if math.Abs(r.FPR[i]-c.FPR[i]) > 1e-12 || math.Abs(r.TPR[i]-c.TPR[i]) > 1e-12 || r.Thresholds[i] != th {
					t.Fatalf("point %d = (%v, %v, %v), want (%v, %v, %v)", i, r.FPR[i], r.TPR[i], r.Thresholds[i], c.FPR[i], c.TPR[i], th)
				}
				if rd.FPR[i] != r.FPR[i] || rd.TPR[i] != r.TPR[i] || rd.Thresholds[i] != -th {
					t.Fatalf("distance point %d = (%v, %v, %v), want (%v, %v, %v)", i, rd.FPR[i], rd.TPR[i], rd.Thresholds[i], r.FPR[i], r.TPR[i], -th)
				}
			}
			if math.Abs(r.AUC()-c.AUC) > 1e-12 || math.Abs(rd.AUC()-c.AUC) > 1e-12 {
				t.Errorf("AUC %.17g (distances %.17g), want %.17g", r.AUC(), rd.AUC(), c.AUC)
			}
			if r.Distances() || !rd.Distances() {
				t.Error("Distances() reports the wrong direction")
			}
		})
	}
}

// TestROCCutoffs checks Youden's J, AtFPR and Table on a small set of
// distances worked out by hand, and against brute force on the golden data.
func TestROCCutoffs(t *testing.T) {
	// Distances and labels: 0.1+ 0.2+ 0.3- 0.4+ 0.5-.
	// Points: (-Inf: 0, 0) (0.1: 0, 1/3) (0.2: 0, 2/3) (0.3: 1/2, 2/3)
	// (0.4: 1/2, 1) (0.5: 1, 1). J is largest (2/3) at cutoff 0.2; 5 of the
	// 6 positive-negative pairs are ordered right, so AUC = 5/6.
	r, err := ROCFromDistances([]float64{0.3, 0.1, 0.5, 0.4, 0.2}, []int{0, 1, 0, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	if y := r.Youden(); y.Threshold != 0.2 || y.TPR != 2.0/3 || y.FPR != 0 {
		t.Errorf("Youden = %+v, want cutoff 0.2, TPR 2/3, FPR 0", y)
	}
	if a := r.AUC(); math.Abs(a-5.0/6) > 1e-15 {
		t.Errorf("AUC = %v, want 5/6", a)
	}
	if p := r.AtFPR(0.5); p.Threshold != 0.4 || p.TPR != 1 {
		t.Errorf("AtFPR(0.5) = %+v, want cutoff 0.4, TPR 1", p)
	}
	if p := r.AtFPR(0.49); p.Threshold != 0.2 || p.TPR != 2.0/3 {
		t.Errorf("AtFPR(0.49) = %+v, want cutoff 0.2, TPR 2/3", p)
	}
	if p := r.AtFPR(-1); !math.IsInf(p.Threshold, -1) || p.TPR != 0 {
		t.Errorf("AtFPR(-1) = %+v, want cutoff -Inf", p)
	}

	c := loadGoldenROC(t)["random_6pct"]
	g, err := ROCFromScores(c.Scores, c.Labels)
	if err != nil {
		t.Fatal(err)
	}
	y := g.Youden()
	for i := range g.FPR {
		if g.TPR[i]-g.FPR[i] > y.TPR-y.FPR {
			t.Fatalf("point %d has J %v above Youden's %v", i, g.TPR[i]-g.FPR[i], y.TPR-y.FPR)
		}
	}
	tab := g.Table()
	if len(tab) != 3 {
		t.Fatalf("Table() has %d rows, want 3", len(tab))
	}
	for k, f := range []float64{0.05, 0.10, 0.20} {
		p := tab[k]
		i := -1
		for j := range g.FPR {
			if g.FPR[j] <= f {
				i = j
			}
		}
		if p.FPR > f || p.TPR != g.TPR[i] || p.Threshold != g.Thresholds[i] {
			t.Errorf("Table row for FPR %v = %+v, want point %d (%v, %v, %v)", f, p, i, g.FPR[i], g.TPR[i], g.Thresholds[i])
		}
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
		if float64(tp)/float64(np) != p.TPR || float64(fp)/float64(nn) != p.FPR {
			t.Errorf("cutoff %v gives TPR %v FPR %v, row says %v %v", p.Threshold, float64(tp)/float64(np), float64(fp)/float64(nn), p.TPR, p.FPR)
		}
	}
}

// TestROCErrors: single-class labels, bad labels, NaN and empty input are
// errors, never NaN rates; mismatched lengths panic.
func TestROCErrors(t *testing.T) {
	if _, err := ROCFromScores([]float64{1, 2, 3}, []int{1, 1, 1}); !errors.Is(err, ErrOneClass) {
		t.Errorf("all positive: err = %v, want ErrOneClass", err)
	}
	if _, err := ROCFromDistances([]float64{1, 2, 3}, []int{0, 0, 0}); !errors.Is(err, ErrOneClass) {
		t.Errorf("all negative: err = %v, want ErrOneClass", err)
	}
	if _, err := ROCFromScores([]float64{1, 2}, []int{0, 2}); err == nil {
		t.Error("label 2: no error")
	}
	if _, err := ROCFromScores([]float64{1, math.NaN()}, []int{0, 1}); err == nil {
		t.Error("NaN score: no error")
	}
	if _, err := ROCFromScores(nil, nil); err == nil {
		t.Error("empty: no error")
	}
	defer func() {
		if recover() == nil {
			t.Error("length mismatch did not panic")
		}
	}()
	ROCFromScores([]float64{1, 2}, []int{0})
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
	for _, p := range roc.Table(0.25, 0.5) {
		fmt.Printf("FPR %.2f: TPR %.2f, cutoff %.2f\n", p.FPR, p.TPR, p.Threshold)
	}
	// Output:
	// AUC 0.9375
	// Youden: compatible if distance <= 0.20 (TPR 0.75, FPR 0.00)
	// FPR 0.25: TPR 1.00, cutoff 0.40
	// FPR 0.50: TPR 1.00, cutoff 0.50
}
