package picture

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// niceSteps are the tick steps tried in each decade, as by matplotlib's
// MaxNLocator (steps=[1, 2, 2.5, 5, 10]).
var niceSteps = [...]float64{1, 2, 2.5, 5, 10}

// niceTicks returns the ticks of the range [lo, hi] at round values: the
// multiples of the smallest step of the form {1, 2, 2.5, 5} x 10^k that
// cuts the range into at most maxBins intervals, as matplotlib's
// MaxNLocator places them. With integer set, only whole steps are used
// (2.5 is skipped below 10, and the step is at least 1). If fewer than two
// ticks fall in the range, the next smaller step is tried. The returned
// values lie in [lo, hi] and are computed as k x step, so they print
// without rounding residue. A degenerate range (lo >= hi, or not finite)
// gets the single tick lo.
func niceTicks(lo, hi float64, maxBins int, integer bool) (ticks []float64, step float64) {
	if !(hi > lo) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return []float64{lo}, 0
	}
	maxBins = max(maxBins, 1)
	raw := (hi - lo) / float64(maxBins)
	// Candidate steps in increasing order, over the decades around raw.
	scale := math.Pow(10, math.Floor(math.Log10(raw)))
	var cands []float64
	for _, d := range []float64{scale / 10, scale, scale * 10} {
		for _, s := range niceSteps[:len(niceSteps)-1] {
			st := s * d
			if integer && (st < 1 || st != math.Trunc(st)) {
				continue
			}
			cands = append(cands, st)
		}
	}
	if integer && (len(cands) == 0 || cands[0] > 1) {
		cands = append([]float64{1}, cands...)
	}
	first := len(cands) - 1
	for i, st := range cands {
		if st >= raw*(1-1e-9) {
			first = i
			break
		}
	}
	// From the chosen step down, the first step giving at least two ticks.
	for i := first; i >= 0; i-- {
		step = cands[i]
		ticks = ticksAt(lo, hi, step)
		if len(ticks) >= 2 {
			return ticks, step
		}
	}
	return ticks, step
}

// ticksAt returns the multiples of step in [lo, hi], allowing for a
// rounding error of 1e-9 steps at both ends (such ticks are moved onto
// the end).
func ticksAt(lo, hi, step float64) []float64 {
	eps := 1e-9 * step
	k0 := math.Ceil((lo - eps) / step)
	k1 := math.Floor((hi + eps) / step)
	if k1-k0 > 1000 { // cannot happen with a step chosen by niceTicks
		return nil
	}
	var out []float64
	for k := k0; k <= k1; k++ {
		v := min(max(k*step, lo), hi) // clamp the rounding error at the ends
		if v == 0 {
			v = 0 // no "-0"
		}
		out = append(out, v)
	}
	return out
}

// tickDecimals returns the number of decimals that print every multiple
// of step exactly: 0 for whole steps, 1 for 0.5 or 0.2, 2 for 0.25 or
// 0.05, and so on.
func tickDecimals(step float64) int {
	for d := 0; d < 15; d++ {
		s := step * math.Pow(10, float64(d))
		if math.Abs(s-math.Round(s)) < 1e-6*s {
			return d
		}
	}
	return 15
}

// formatTick prints a tick value of a scale with the given step, with
// the decimals of the step, or for values below 1e-4 or from 1e6 up in
// exponent notation with the significant digits the step needs.
func formatTick(v, step float64, decimals int) string {
	a := math.Abs(v)
	if a == 0 || step <= 0 || (a >= 1e-4 && a < 1e6) {
		return strconv.FormatFloat(v, 'f', decimals, 64)
	}
	e := math.Floor(math.Log10(step))
	sig := int(math.Floor(math.Log10(a))-e) + tickDecimals(step/math.Pow(10, e)) + 1
	return strconv.FormatFloat(v, 'g', max(sig, 1), 64)
}

// niceTicker is a plot.Ticker placing ticks with niceTicks, every tick
// labelled with the same number of decimals (0, 0.2, ..., 1 as "0.0",
// "0.2", ... "1.0").
type niceTicker struct {
	maxBins int
	integer bool
}

// Ticks implements plot.Ticker.
func (t niceTicker) Ticks(lo, hi float64) []plot.Tick {
	vs, step := niceTicks(lo, hi, t.maxBins, t.integer)
	dec := 0
	if step > 0 {
		dec = tickDecimals(step)
	}
	ts := make([]plot.Tick, len(vs))
	for i, v := range vs {
		ts[i] = plot.Tick{Value: v, Label: formatTick(v, step, dec)}
	}
	return ts
}

var _ plot.Ticker = niceTicker{}
