package engine

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDistKernelsAgree checks every available distance kernel against the
// scalar loop bit for bit, for dimensions with and without a remainder,
// and that items are abandoned only when farther than the bound.
func TestDistKernelsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, im := range distKernels.available() {
		t.Run(im.isa.String(), func(t *testing.T) {
			defer distKernels.force(im.isa)()
			for _, d := range []int{1, 3, 4, 7, 32, 37, 128, 129} {
				q := make([]float32, d)
				x := make([]float32, 16*d+5)
				for j := range q {
					q[j] = float32(rng.NormFloat64())
				}
				for j := range x {
					x[j] = float32(rng.NormFloat64()) * 100
				}
				var part [64]float32
				if ab := SqDist16(q, x, d, float32(math.Inf(1)), &part); ab != 0 {
					t.Fatalf("d=%d: items abandoned (%#x) with an infinite bound", d, ab)
				}
				var dists [16]float32
				for j := range 16 {
					v := x[j*d : (j+1)*d]
					got := SqDistFinish(q, v, part[4*j:4*j+4])
					want, _ := SqDistBounded(q, v, float32(math.Inf(1)))
					if got != want {
						t.Fatalf("d=%d item %d: %v, scalar loop %v", d, j, got, want)
					}
					dists[j] = want
				}
				// With a finite bound: an abandoned item must be farther
				// than the bound, the others exact. Bounds below, between
				// and above the distances; the lowest abandons all items
				// once 32 elements are summed.
				for _, bound := range []float32{0, slices.Min(dists[:]), dists[5], slices.Max(dists[:])} {
					ab := SqDist16(q, x, d, bound, &part)
					if d >= 32 && bound == 0 && ab != 0xffff {
						t.Errorf("d=%d bound 0: abandoned %#x, want all", d, ab)
					}
					for j := range 16 {
						if ab&(1<<j) != 0 {
							if !(dists[j] > bound) {
								t.Fatalf("d=%d bound %v: item %d at %v abandoned", d, bound, j, dists[j])
							}
							continue
						}
						if got := SqDistFinish(q, x[j*d:(j+1)*d], part[4*j:4*j+4]); got != dists[j] {
							t.Fatalf("d=%d bound %v item %d: %v, scalar loop %v", d, bound, j, got, dists[j])
						}
					}
				}
			}
		})
	}
}

func BenchmarkSqDist128(b *testing.B) {
	x := make([]float32, 128)
	y := make([]float32, 128)
	for i := range x {
		x[i], y[i] = float32(i), float32(i)*0.5
	}
	inf := float32(math.Inf(1))
	var s float32
	for b.Loop() {
		d, _ := SqDistBounded(x, y, inf)
		s += d
	}
	b.ReportMetric(128*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
}
