package style

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRMSPropSteps follows two steps by hand with Keras' defaults
// (lr 1e-3, rho 0.9, eps 1e-7 outside the root, accumulator from 0), in
// float64 arithmetic; the float32 state agrees to float32 precision.
func TestRMSPropSteps(t *testing.T) {
	p := []float32{1, -2, 0.5}
	g1 := []float32{0.5, -0.1, 0}
	g2 := []float32{0.2, 0.3, 1e-3}
	var o RMSProp
	want := f64(p)
	acc := make([]float64, 3)
	for _, g := range [][]float32{g1, g2} {
		o.Step([][]float32{p}, [][]float32{g})
		for i, gi := range f64(g) {
			acc[i] = 0.9*acc[i] + 0.1*gi*gi
			want[i] -= 1e-3 * gi / (math.Sqrt(acc[i]) + 1e-7)
		}
		checkClose(t, "params", p, want, 1e-6, 1e-9)
	}
	assert.NotEqual(t, float32(0.5), p[2], "third parameter did not move on its second gradient")
	// Reset: the next step is a first step again, |Δp| = lr·|g|/(sqrt(0.1)|g|+eps).
	o.Reset()
	q := []float32{0}
	o.Step([][]float32{q}, [][]float32{{1}})
	assert.InDelta(t, -1e-3/(math.Sqrt(0.1)+1e-7), float64(q[0]), 1e-9, "after Reset")
	o2 := RMSProp{LearningRate: 0.1, Rho: 0.5, Epsilon: 1}
	r := []float32{0}
	o2.Step([][]float32{r}, [][]float32{{2}}) // a = 0.5·4 = 2; Δ = 0.1·2/(sqrt 2 + 1)
	assert.InDelta(t, -0.2/(math.Sqrt(2)+1), float64(r[0]), 1e-7, "custom hyper-parameters")
}

// TestRMSPropWorkers: the step is bit-identical for any number of workers
// (the parameters span several of the engine's chunks), and a negative
// Workers is a programmer error.
func TestRMSPropWorkers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 3<<16 + 123
	p0, g := make([]float32, n), make([]float32, n)
	for i := range p0 {
		p0[i], g[i] = rng.Float32(), rng.Float32()-0.5
	}
	var want []float32
	for _, workers := range []int{1, 2, 3, 0} {
		p := append([]float32(nil), p0...)
		o := RMSProp{Workers: workers}
		for range 2 {
			o.Step([][]float32{p}, [][]float32{g})
		}
		if want == nil {
			want = p
			continue
		}
		assert.True(t, bitsEqual(want, p), "Workers %d: parameters differ from Workers 1", workers)
	}
	mustPanic(t, "Workers", func() {
		(&RMSProp{Workers: -1}).Step([][]float32{{1}}, [][]float32{{1}})
	})
}

// TestSGDMomentum follows plain, momentum and Nesterov SGD by hand.
func TestSGDMomentum(t *testing.T) {
	g := [][]float32{{1}}
	plain := []float32{0}
	(&SGD{}).Step([][]float32{plain}, g)
	assert.InDelta(t, -0.01, float64(plain[0]), 1e-9, "plain SGD")
	for _, nesterov := range []bool{false, true} {
		o := &SGD{LearningRate: 0.1, Momentum: 0.9, Nesterov: nesterov}
		p := []float32{0}
		o.Step([][]float32{p}, g) // v = -0.1
		o.Step([][]float32{p}, g) // v = -0.19
		want := -0.1 - 0.19       // p += v
		if nesterov {
			want = (0.9*-0.1 - 0.1) + (0.9*-0.19 - 0.1)
		}
		assert.InDelta(t, want, float64(p[0]), 1e-6, "nesterov %v", nesterov)
	}
}

// TestOptimizerPanics: changing the parameter set without Reset is a
// programmer error.
func TestOptimizerPanics(t *testing.T) {
	for _, o := range []Optimizer{&RMSProp{}, &SGD{Momentum: 0.5}} {
		o.Step([][]float32{make([]float32, 2)}, [][]float32{make([]float32, 2)})
		for name, f := range map[string]func(){
			"changed length": func() { o.Step([][]float32{make([]float32, 3)}, [][]float32{make([]float32, 3)}) },
			"grad length":    func() { o.Step([][]float32{make([]float32, 2)}, [][]float32{make([]float32, 1)}) },
			"count":          func() { o.Step([][]float32{make([]float32, 2)}, nil) },
		} {
			assert.Panics(t, f, "%T %s", o, name)
		}
		o.Reset()
		o.Step([][]float32{make([]float32, 3)}, [][]float32{make([]float32, 3)}) // fine after Reset
	}
}

// The float64 references of the optimizer passes (the package's float32
// passes are engine.RMSPropStep and engine.L2Penalty), in the precision
// T: the golden training tests run them in float64.

// rmspropUpdate is one RMSProp step on p with gradient g and accumulator a,
// in the precision T.
func rmspropUpdate[T learnFloat](p, g, a []T, lr, rho, eps float64) {
	tr, tr1, tlr, teps := T(rho), T(1-rho), T(lr), T(eps)
	for i, gi := range g {
		ai := tr*a[i] + tr1*gi*gi
		a[i] = ai
		p[i] -= tlr * gi / (T(math.Sqrt(float64(ai))) + teps)
	}
}

// l2PenaltyRef adds the gradient of the penalty l2·sum(w²) to g and returns
// the penalty.
func l2PenaltyRef[T learnFloat](g, w []T, l2 float64) float64 {
	if l2 == 0 {
		return 0
	}
	var s float64
	c := T(2 * l2)
	for i, v := range w {
		s += float64(v) * float64(v)
		g[i] += c * v
	}
	return l2 * s
}
