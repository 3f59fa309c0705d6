package style

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// ROC is a receiver operating characteristic curve: for every distinct
// threshold, the false and true positive rates of the rule that calls a pair
// positive (compatible) at that threshold. Its points are those of
// scikit-learn's roc_curve(y, score, drop_intermediate=False), ties included:
// one point per distinct value, plus a first point (0, 0).
//
// The direction of the rule is fixed when the curve is made and Thresholds
// are in the caller's units:
//   - ROCFromScores: higher scores are more positive, positive means
//     score >= threshold, and Thresholds[0] is +Inf;
//   - ROCFromDistances: smaller distances are more compatible, positive
//     means distance <= threshold (as SiameseHead.Verdict decides), and
//     Thresholds[0] is -Inf.
//
// FPR and TPR are non-decreasing. An ROC is not modified by its methods and
// is safe for concurrent use.
type ROC struct {
	FPR        []float64 // false positive rate at each threshold
	TPR        []float64 // true positive rate at each threshold
	Thresholds []float64 // score or distance thresholds, from strictest to loosest
}

// ROCPoint is one operating point of an ROC curve.
type ROCPoint struct {
	FPR, TPR float64
	// Threshold is the cutoff: a score (positive when score >= Threshold)
	// or a distance (compatible when distance <= Threshold), according to
	// how the curve was made.
	Threshold float64
}

// errOneClass is wrapped by the error returned when an ROC curve is asked
// for labels that are all positive or all negative: its rates are then
// undefined.
var errOneClass = errors.New("style: ROC needs both positive and negative labels")

// ROCFromScores returns the ROC curve of scores where a higher score means
// more likely positive, against labels (1 positive, 0 negative).
//
// It returns an error if there are no scores, a label is not 0 or 1, a
// score is NaN, or all labels are equal. It panics
// if len(scores) != len(labels).
func ROCFromScores(scores []float64, labels []int) (*ROC, error) {
	return newROC(scores, labels, false)
}

// ROCFromDistances returns the ROC curve of distances where a smaller
// distance means more likely compatible, against labels (1 compatible, 0
// not). Thresholds are distances: the cutoff of a point calls a pair
// compatible when its distance is <= the cutoff.
//
// It returns an error if there are no distances, a label is not 0 or 1, a
// distance is NaN, or all labels are equal. It panics
// if len(distances) != len(labels).
func ROCFromDistances(distances []float64, labels []int) (*ROC, error) {
	return newROC(distances, labels, true)
}

func newROC(values []float64, labels []int, distances bool) (*ROC, error) {
	if len(values) != len(labels) {
		panic(fmt.Sprintf("style: ROC: %d values but %d labels", len(values), len(labels)))
	}
	if len(values) == 0 {
		return nil, errors.New("style: ROC: no values")
	}
	var npos int
	for i, l := range labels {
		if l != 0 && l != 1 {
			return nil, fmt.Errorf("style: ROC: label %d at index %d is not 0 or 1", l, i)
		}
		if math.IsNaN(values[i]) {
			return nil, fmt.Errorf("style: ROC: value at index %d is NaN", i)
		}
		npos += l
	}
	if npos == 0 || npos == len(labels) {
		return nil, fmt.Errorf("%w (%d values, %d positive)", errOneClass, len(labels), npos)
	}
	// Work on scores where higher is more positive.
	score := func(i int) float64 {
		if distances {
			return -values[i]
		}
		return values[i]
	}
	idx := make([]int, len(values))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return score(idx[a]) > score(idx[b]) })

	r := &ROC{}
	first := math.Inf(1)
	if distances {
		first = math.Inf(-1)
	}
	r.FPR = append(r.FPR, 0)
	r.TPR = append(r.TPR, 0)
	r.Thresholds = append(r.Thresholds, first)
	var tps, fps []float64
	tp, fp := 0, 0
	for k, i := range idx {
		if labels[i] == 1 {
			tp++
		} else {
			fp++
		}
		if k+1 < len(idx) && score(idx[k+1]) == score(i) {
			continue // not the last of a run of tied values
		}
		tps = append(tps, float64(tp))
		fps = append(fps, float64(fp))
		r.Thresholds = append(r.Thresholds, values[i])
	}
	ptot, ntot := float64(tp), float64(fp)
	for k := range tps {
		r.FPR = append(r.FPR, fps[k]/ntot)
		r.TPR = append(r.TPR, tps[k]/ptot)
	}
	return r, nil
}

// AUC returns the area under the curve by the trapezoidal rule: the
// probability that a random positive is ranked before a random negative,
// counting ties as one half. 0.5 is chance, 1 is perfect.
func (r *ROC) AUC() float64 {
	var a float64
	for i := 1; i < len(r.FPR); i++ {
		a += (r.FPR[i] - r.FPR[i-1]) * (r.TPR[i] + r.TPR[i-1]) / 2
	}
	return a
}

// Youden returns the point that maximises Youden's J = TPR - FPR, the first
// such point on the curve if several tie.
func (r *ROC) Youden() ROCPoint {
	best, bestJ := 0, math.Inf(-1)
	for i := range r.FPR {
		if j := r.TPR[i] - r.FPR[i]; j > bestJ {
			best, bestJ = i, j
		}
	}
	return r.point(best)
}

// AtFPR returns the point with the highest TPR whose FPR does not exceed
// fpr: the loosest cutoff that keeps the false positive rate within fpr,
// and the true positive rate it reaches. For fpr < 0 it returns the first
// point (nothing positive). Call it for each tolerated rate to make a
// table of cutoffs.
func (r *ROC) AtFPR(fpr float64) ROCPoint {
	i := sort.Search(len(r.FPR), func(i int) bool { return r.FPR[i] > fpr }) - 1
	if i < 0 {
		i = 0
	}
	return r.point(i)
}

func (r *ROC) point(i int) ROCPoint {
	return ROCPoint{FPR: r.FPR[i], TPR: r.TPR[i], Threshold: r.Thresholds[i]}
}
