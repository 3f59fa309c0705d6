package engine

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// ulpDiff returns the distance in units in the last place between two
// finite float32 values of the same sign.
func ulpDiff(a, b float32) int64 {
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	if d < 0 {
		d = -d
	}
	return d
}

// TestRMSPropKernels checks the RMSProp step with the assembly bulk
// (rmsprop32), for every kernel this CPU has, against the Go loop
// rmspropGeneric on every length 0..100 (all tail sizes) and one large
// slice. Both round after every operation in the same order, so they
// agree bit for bit when Go does not contract a*b+c into a fused
// multiply-add (the default amd64 build); 1 ulp is allowed for builds
// that do (GOAMD64=v3). Guard values after the slices catch writes past
// their ends.
func TestRMSPropKernels(t *testing.T) {
	forEachOptimKernel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(8, 8))
		for _, n := range append(seq(0, 100), 3*32*1024+17) {
			for step := range 3 {
				p0, g := randSlice(r, n+4), randSlice(r, n)
				a0 := make([]float32, n+4)
				for i := range a0 {
					a0[i] = float32(r.Float64()) * float32(step) // zero on the first step
				}
				p1, a1 := append([]float32(nil), p0...), append([]float32(nil), a0...)
				for i := n; i < n+4; i++ {
					p0[i], a0[i], p1[i], a1[i] = 7, 7, 7, 7
				}
				rmsprop32(p0[:n], g, a0[:n], 1e-3, 0.9, 1e-7)
				rmspropGeneric(p1[:n], g, a1[:n], 1e-3, 0.9, 1e-7)
				for i := range p0 {
					if ulpDiff(p0[i], p1[i]) > 1 || ulpDiff(a0[i], a1[i]) > 1 {
						t.Fatalf("n=%d step %d: element %d: p %v a %v, Go loop p %v a %v", n, step, i, p0[i], a0[i], p1[i], a1[i])
					}
				}
			}
		}
	})
}

// forEachOptimKernel runs f with the passes forced to each kernel this
// CPU has.
func forEachOptimKernel(t *testing.T, f func(t *testing.T)) {
	for _, im := range optimKernels.available() {
		t.Run(im.isa.String(), func(t *testing.T) {
			defer optimKernels.force(im.isa)()
			f(t)
		})
	}
}

// TestOptimParallel checks that the chunked, multi-core passes equal the
// single-call ones bit for bit (RMSProp, L2 gradients) and within float64
// rounding (the penalty, summed per chunk), with GOMAXPROCS 1 and 2 and
// explicit worker counts 1 and 3 giving identical results, and that the
// penalty without a gradient (g nil) is the same sum.
func TestOptimParallel(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	n := 3*optimChunk + 1234
	p, g, a, w := randSlice(r, n), randSlice(r, n), make([]float32, n), randSlice(r, n)
	for i := range a {
		a[i] = float32(r.Float64())
	}
	var results [][]float32
	var penalties, sums []float64
	for _, run := range []struct{ procs, workers int }{{1, 0}, {2, 0}, {2, 1}, {2, 3}} {
		prev := runtime.GOMAXPROCS(run.procs)
		p1, a1, g1 := slices.Clone(p), slices.Clone(a), slices.Clone(g)
		RMSPropStep(p1, g, a1, 1e-3, 0.9, 1e-7, run.workers)
		pen := L2Penalty(g1, w, 1.25e-4, run.workers)
		sum := L2Penalty(nil, w, 1.25e-4, run.workers)
		runtime.GOMAXPROCS(prev)
		results = append(results, p1, a1, g1)
		penalties = append(penalties, pen)
		sums = append(sums, sum)
	}
	p2, a2, g2 := slices.Clone(p), slices.Clone(a), slices.Clone(g)
	rmsprop32(p2, g, a2, 1e-3, 0.9, 1e-7)
	pen := l2Penalty32(g2, w, 1.25e-4)
	for k := range results {
		want := [][]float32{p2, a2, g2}[k%3]
		for i := range want {
			if math.Float32bits(results[k][i]) != math.Float32bits(want[i]) {
				t.Fatalf("result %d element %d: %v chunked, %v in one call", k, i, results[k][i], want[i])
			}
		}
	}
	for k := range penalties {
		if penalties[k] != penalties[0] || sums[k] != sums[0] {
			t.Errorf("run %d: penalty %v and sum %v, run 0 %v and %v", k, penalties[k], sums[k], penalties[0], sums[0])
		}
	}
	if math.Abs(penalties[0]-pen) > 1e-12*pen {
		t.Errorf("chunked penalty %v, one call %v", penalties[0], pen)
	}
	// The same squares summed in another order: float64 rounding.
	if math.Abs(sums[0]-pen) > 1e-12*pen {
		t.Errorf("penalty without gradient %v, with %v", sums[0], pen)
	}
	if got := L2Penalty(nil, w, 0, 0); got != 0 {
		t.Errorf("l2 = 0 without gradient: penalty %v", got)
	}
	if got := L2Penalty(g2, w, 0, 0); got != 0 {
		t.Errorf("l2 = 0: penalty %v", got)
	}
}

// TestL2PenaltyKernels checks l2Penalty32, for every kernel this CPU
// has, against the Go loop l2PenaltyGeneric:
// the gradients agree bit for bit (1 ulp under FMA contraction, see
// TestRMSPropKernels) and the penalties to 1e-12 relative (float64 sums of
// the same squares in another order).
func TestL2PenaltyKernels(t *testing.T) {
	forEachOptimKernel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 9))
		for _, n := range append(seq(0, 100), 3*32*1024+17) {
			w, g0 := randSlice(r, n), randSlice(r, n+4)
			for i := n; i < n+4; i++ {
				g0[i] = 7
			}
			g1 := append([]float32(nil), g0...)
			got := l2Penalty32(g0[:n], w, 1.25e-4)
			want := l2PenaltyGeneric(g1[:n], w, 1.25e-4)
			if math.Abs(got-want) > 1e-12*math.Abs(want) {
				t.Fatalf("n=%d: penalty %v, Go loop %v", n, got, want)
			}
			for i := range g0 {
				if ulpDiff(g0[i], g1[i]) > 1 {
					t.Fatalf("n=%d: gradient %d = %v, Go loop %v", n, i, g0[i], g1[i])
				}
			}
		}
		if got := l2Penalty32(make([]float32, 64), randSlice(r, 64), 0); got != 0 {
			t.Errorf("l2 = 0: penalty %v, want 0", got)
		}
	})
}

func seq(lo, hi int) []int {
	s := make([]int, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}
