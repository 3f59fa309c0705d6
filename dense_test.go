package style

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func randSlice64(rng *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = scale * (2*rng.Float64() - 1)
	}
	return v
}

// TestDenseInit checks the Glorot-uniform bounds, zero biases, the
// variance of U(-l, l) (l²/3) and that the seed decides the weights.
func TestDenseInit(t *testing.T) {
	d := NewDense(300, 100, 1)
	limit := math.Sqrt(6.0 / 400)
	var s2 float64
	for _, w := range d.W {
		require.LessOrEqual(t, math.Abs(float64(w)), limit, "weight outside the Glorot bound")
		s2 += float64(w) * float64(w)
	}
	// 30,000 draws: the sample variance is within a few percent of l²/3.
	assert.InEpsilon(t, limit*limit/3, s2/float64(len(d.W)), 0.05, "weight variance")
	assert.Equal(t, make([]float32, 100), d.B, "initial biases")
	assert.True(t, bitsEqual(d.W, NewDense(300, 100, 1).W), "same seed, different weights")
	assert.False(t, bitsEqual(d.W, NewDense(300, 100, 2).W), "another seed, same weights")
}

// TestDenseMatchesReference runs the BLAS forward and backward passes
// against the float64 reference loops on the same float32 inputs. Sums of
// up to 70 float32 products: 1e-5 relative to the largest output.
func TestDenseMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, in, out = 10, 70, 13
	d := NewDense(in, out, 3)
	for i := range d.B {
		d.B[i] = float32(rng.Float64() - 0.5)
	}
	x := to32(randSlice64(rng, n*in, 1))
	y := make([]float32, n*out)
	require.Same(t, &y[0], &d.ForwardTo(y, x)[0], "ForwardTo returns dst")
	dy := to32(randSlice64(rng, n*out, 1))
	gW, gB, gX := make([]float32, in*out), make([]float32, out), make([]float32, n*in)
	dy32 := append([]float32(nil), dy...)
	d.BackwardTo(gW, gB, gX, x, y, dy32)

	x64, w64, b64, dy64 := f64(x), f64(d.W), f64(d.B), f64(dy)
	y64 := make([]float64, n*out)
	denseForwardRef(y64, x64, w64, b64, n, in, out)
	gW64, gB64, gX64 := make([]float64, in*out), make([]float64, out), make([]float64, n*in)
	denseBackwardRef(gW64, gB64, gX64, x64, y64, dy64, w64, n, 1, in, out)
	zeros := 0
	for _, v := range y64 {
		if v == 0 {
			zeros++
		}
	}
	require.NotZero(t, zeros, "no output is zero: the ReLU is not exercised")
	require.NotEqual(t, len(y64), zeros, "every output is zero: the ReLU is not exercised")
	for _, c := range []struct {
		name string
		got  []float32
		want []float64
	}{{"forward", y, y64}, {"gradW", gW, gW64}, {"gradB", gB, gB64}, {"gradX", gX, gX64}, {"dz", dy32, dy64}} {
		m := 0.0
		for _, v := range c.want {
			m = math.Max(m, math.Abs(v))
		}
		checkClose(t, c.name, c.got, c.want, 0, 1e-5*m)
	}
}

func f64(v []float32) []float64 {
	r := make([]float64, len(v))
	for i, x := range v {
		r[i] = float64(x)
	}
	return r
}

// TestDenseLossGradient checks the analytic gradients of Dense + ReLU +
// contrastive loss + L2 penalty, in float64, against central finite
// differences with step 1e-6: truncation error O(h²) ≈ 1e-12 and rounding
// error ≈ 1e-16/h ≈ 1e-10, so 1e-6 relative (plus 1e-9 absolute) is ample.
// Inputs avoid the ReLU kink (no pre-activation within 1e-3 of zero) so the
// loss is smooth at the checked point.
func TestDenseLossGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, in, out = 5, 7, 4
	const l2 = 0.01
	labels := []int{1, 0, 0, 1, 0}
	var x, w, b []float64
	h := make([]float64, 2*n*out)
	for {
		x = randSlice64(rng, 2*n*in, 1)
		w = randSlice64(rng, in*out, 0.8)
		b = randSlice64(rng, out, 0.2)
		ok := true
		for r := 0; r < 2*n; r++ {
			for j := 0; j < out; j++ {
				s := b[j]
				for i := 0; i < in; i++ {
					s += x[r*in+i] * w[i*out+j]
				}
				if math.Abs(s) < 1e-3 {
					ok = false
				}
			}
		}
		if ok {
			break
		}
	}
	lossAt := func(x, w, b []float64) float64 {
		denseForwardRef(h, x, w, b, 2*n, in, out)
		l := contrastiveEval[float64](1, nil, nil, h[:n*out], h[n*out:], labels, nil)
		var s float64
		for _, v := range w {
			s += v * v
		}
		return l + l2*s
	}
	denseForwardRef(h, x, w, b, 2*n, in, out)
	dh := make([]float64, 2*n*out)
	contrastiveEval(1, dh[:n*out], dh[n*out:], h[:n*out], h[n*out:], labels, nil)
	gw, gb, gx := make([]float64, in*out), make([]float64, out), make([]float64, 2*n*in)
	denseBackwardRef(gw, gb, gx, x, h, dh, w, 2*n, 2, in, out)
	l2PenaltyRef(gw, w, l2)
	const step = 1e-6
	for _, c := range []struct {
		name string
		p, g []float64
	}{{"W", w, gw}, {"b", b, gb}, {"x", x, gx}} {
		for i := range c.p {
			old := c.p[i]
			c.p[i] = old + step
			up := lossAt(x, w, b)
			c.p[i] = old - step
			down := lossAt(x, w, b)
			c.p[i] = old
			num := (up - down) / (2 * step)
			assert.InDelta(t, num, c.g[i], 1e-6*math.Abs(num)+1e-9, "d loss/d %s[%d]: analytic vs numeric", c.name, i)
		}
	}
}

// TestDensePanics: shape errors are programmer errors.
func TestDensePanics(t *testing.T) {
	d := NewDense(4, 3, 1)
	for name, f := range map[string]func(){
		"NewDense 0":   func() { NewDense(0, 3, 1) },
		"ragged input": func() { d.ForwardTo(make([]float32, 3), make([]float32, 5)) },
		"wrong dst":    func() { d.ForwardTo(make([]float32, 2), make([]float32, 4)) },
		"nil dst":      func() { d.ForwardTo(nil, make([]float32, 4)) },
		"backward lengths": func() {
			d.BackwardTo(make([]float32, 12), make([]float32, 3), nil, make([]float32, 4), make([]float32, 2), make([]float32, 3))
		},
		"inconsistent layer": func() {
			(&Dense{In: 4, Out: 3, W: make([]float32, 11), B: make([]float32, 3)}).ForwardTo(make([]float32, 3), make([]float32, 4))
		},
	} {
		t.Run(name, func(t *testing.T) { mustPanic(t, "", f) })
	}
}
