package picture

import (
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi  float64
		bins    int
		integer bool
		want    []float64
		labels  []string
	}{
		{0, 1, 8, false, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}, []string{"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"}},
		{0, 0.83, 8, false, []float64{0, 0.2, 0.4, 0.6, 0.8}, []string{"0.0", "0.2", "0.4", "0.6", "0.8"}},
		{3, 1017, 8, false, []float64{200, 400, 600, 800, 1000}, []string{"200", "400", "600", "800", "1000"}},
		{-7.3, -2.1, 8, false, []float64{-7, -6, -5, -4, -3}, []string{"-7", "-6", "-5", "-4", "-3"}},
		{-1, 1, 8, false, []float64{-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1}, []string{"-1.00", "-0.75", "-0.50", "-0.25", "0.00", "0.25", "0.50", "0.75", "1.00"}},
		{-15.2, 22.1, 8, false, []float64{-15, -10, -5, 0, 5, 10, 15, 20}, nil},
		// The learning curves of a run whose loss fell from 0.19 to 0.03.
		{0.022, 0.24, 8, false, []float64{0.05, 0.1, 0.15, 0.2}, []string{"0.05", "0.10", "0.15", "0.20"}},
		{0, 6.1, 8, false, []float64{0, 1, 2, 3, 4, 5, 6}, nil},
		// Tiny ranges: around zero (exponent notation) and around one.
		{1e-9, 3e-9, 8, false, []float64{1e-9, 1.25e-9, 1.5e-9, 1.75e-9, 2e-9, 2.25e-9, 2.5e-9, 2.75e-9, 3e-9},
			[]string{"1e-09", "1.25e-09", "1.5e-09", "1.75e-09", "2e-09", "2.25e-09", "2.5e-09", "2.75e-09", "3e-09"}},
		{1, 1.000001, 4, false, []float64{1, 1.00000025, 1.0000005, 1.00000075, 1.000001},
			[]string{"1.00000000", "1.00000025", "1.00000050", "1.00000075", "1.00000100"}},
		// Large values.
		{0, 3.2e7, 8, false, []float64{0, 5e6, 1e7, 1.5e7, 2e7, 2.5e7, 3e7}, []string{"0", "5e+06", "1e+07", "1.5e+07", "2e+07", "2.5e+07", "3e+07"}},
		// Whole numbers only (epochs): every epoch while they fit, no 2.5.
		{0.5, 15.5, 15, true, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, nil},
		{0.5, 40.5, 15, true, []float64{5, 10, 15, 20, 25, 30, 35, 40}, nil},
		{0.5, 2.5, 15, true, []float64{1, 2}, []string{"1", "2"}},
		{0.5, 12.5, 4, true, []float64{5, 10}, nil},
		// A range narrower than one step of the first choice falls back to
		// a smaller step to have two ticks.
		{0.95, 1.05, 1, false, []float64{0.95, 1, 1.05}, []string{"0.95", "1.00", "1.05"}},
	} {
		got, step := niceTicks(c.lo, c.hi, c.bins, c.integer)
		require.Len(t, got, len(c.want), "[%v, %v] %d bins: ticks %v (step %v)", c.lo, c.hi, c.bins, got, step)
		for i := range got {
			assert.InDelta(t, c.want[i], got[i], 1e-12*math.Max(1, math.Abs(c.want[i])), "[%v, %v] tick %d", c.lo, c.hi, i)
			assert.True(t, got[i] >= c.lo && got[i] <= c.hi, "[%v, %v] tick %v outside the range", c.lo, c.hi, got[i])
		}
		if c.labels != nil {
			ts := niceTicker{maxBins: c.bins, integer: c.integer}.Ticks(c.lo, c.hi)
			var labels []string
			for _, tk := range ts {
				labels = append(labels, tk.Label)
			}
			assert.Equal(t, c.labels, labels, "[%v, %v] labels", c.lo, c.hi)
		}
	}
}

// TestNiceTicksRound checks on many ranges that ticks are multiples of a
// {1, 2, 2.5, 5} x 10^k step, within the range, at most maxBins+1, at
// least two, and labelled distinctly with labels that read back as their
// values.
func TestNiceTicksRound(t *testing.T) {
	for _, lo := range []float64{-1234, -3.3, -0.07, 0, 0.001, 0.5, 17, 2e5} {
		for _, span := range []float64{1e-6, 0.013, 0.9, 1, 7.7, 55, 1000, 3e6} {
			for _, bins := range []int{3, 5, 8, 9} {
				hi := lo + span
				got, step := niceTicks(lo, hi, bins, false)
				m := step / math.Pow(10, math.Floor(math.Log10(step)))
				assert.Contains(t, []float64{1, 2, 2.5, 5}, math.Round(m*10)/10, "[%v, %v]: step %v", lo, hi, step)
				assert.GreaterOrEqual(t, len(got), 2, "[%v, %v] %d bins: %v", lo, hi, bins, got)
				assert.LessOrEqual(t, len(got), bins+1, "[%v, %v] %d bins: %v", lo, hi, bins, got)
				seen := map[string]bool{}
				for _, tk := range (niceTicker{maxBins: bins}).Ticks(lo, hi) {
					v, err := strconv.ParseFloat(tk.Label, 64)
					require.NoError(t, err, "[%v, %v]: label %q", lo, hi, tk.Label)
					// Within a thousandth of a step, or a few float64 ulps of the value.
					assert.InDelta(t, tk.Value, v, 1e-3*step+1e-15*math.Abs(v), "[%v, %v]: label %q of %v", lo, hi, tk.Label, tk.Value)
					assert.False(t, seen[tk.Label], "[%v, %v]: label %q twice", lo, hi, tk.Label)
					seen[tk.Label] = true
				}
			}
		}
	}
	// Degenerate ranges do not loop or panic.
	got, _ := niceTicks(2, 2, 8, false)
	assert.Equal(t, []float64{2}, got)
	got, _ = niceTicks(0, math.Inf(1), 8, false)
	assert.Equal(t, []float64{0}, got)
}
