package style

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// naiveConv3x3 is the direct definition of a 3x3, stride 1, padding 1
// convolution with bias and optional ReLU, accumulated in float64.
func naiveConv3x3(x []float32, n, in, h, w int, cw ConvWeights, relu bool) []float64 {
	out := make([]float64, n*cw.Out*h*w)
	for b := range n {
		for o := range cw.Out {
			for y := range h {
				for xx := range w {
					s := float64(cw.Bias[o])
					for ci := range in {
						for ky := range 3 {
							for kx := range 3 {
								sy, sx := y+ky-1, xx+kx-1
								if sy < 0 || sy >= h || sx < 0 || sx >= w {
									continue
								}
								s += float64(cw.Weight[((o*in+ci)*3+ky)*3+kx]) * float64(x[((b*in+ci)*h+sy)*w+sx])
							}
						}
					}
					if relu && s < 0 {
						s = 0
					}
					out[((b*cw.Out+o)*h+y)*w+xx] = s
				}
			}
		}
	}
	return out
}

// naiveMaxPool2x2 pools n*c planes of h x w, dropping an odd last row or
// column.
func naiveMaxPool2x2(x []float64, nc, h, w int) []float64 {
	oh, ow := h/2, w/2
	out := make([]float64, nc*oh*ow)
	for p := range nc {
		for y := range oh {
			for xx := range ow {
				m := math.Inf(-1)
				for dy := range 2 {
					for dx := range 2 {
						m = math.Max(m, x[(p*h+2*y+dy)*w+2*xx+dx])
					}
				}
				out[(p*oh+y)*ow+xx] = m
			}
		}
	}
	return out
}

func randomConvWeights(r *rand.Rand, in, out int) ConvWeights {
	cw := ConvWeights{In: in, Out: out, Weight: make([]float32, out*in*9), Bias: make([]float32, out)}
	scale := float32(math.Sqrt(6 / float64(in*9)))
	for i := range cw.Weight {
		cw.Weight[i] = scale * (2*r.Float32() - 1)
	}
	for i := range cw.Bias {
		cw.Bias[i] = 0.1 * (2*r.Float32() - 1)
	}
	return cw
}

func randomSlice(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = 2*r.Float32() - 1
	}
	return x
}

// TestConvExplicitBLAS checks that a caller-supplied BLAS is used and gives
// the same result as the default.
func TestConvExplicitBLAS(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	cw := randomConvWeights(r, 4, 5)
	x := randomSlice(r, 4*10*10)
	cb := &countingBLAS{Implementation: gonum.Implementation{}}
	c, err := NewConv(cw, &ConvOptions{BLAS: cb, Workers: 1})
	require.NoError(t, err)
	got := c.ForwardTo(make([]float32, 5*10*10), x, 1, 10, 10)
	d, err := NewConv(cw, &ConvOptions{Workers: 1})
	require.NoError(t, err)
	want := d.ForwardTo(make([]float32, 5*10*10), x, 1, 10, 10)
	require.NotZero(t, cb.calls, "the BLAS passed in options was not called")
	// The default path uses fused multiply-adds and folds the bias into
	// the product, so the two agree to float32 rounding over K = 37
	// terms, not bit for bit: 1e-5 relative is ~100 ulps of slack.
	for i := range got {
		require.InDelta(t, want[i], got[i], 1e-5*(1+math.Abs(float64(want[i]))), "element %d: explicit BLAS vs default", i)
	}
}

type countingBLAS struct {
	gonum.Implementation
	calls int
}

func (c *countingBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cc []float32, ldc int) {
	c.calls++
	c.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
}

func TestNewConvErrors(t *testing.T) {
	good := ConvWeights{In: 2, Out: 3, Weight: make([]float32, 54), Bias: make([]float32, 3)}
	bad := []struct {
		name string
		w    ConvWeights
		opts *ConvOptions
	}{
		{"zero in", ConvWeights{In: 0, Out: 3, Weight: nil, Bias: make([]float32, 3)}, nil},
		{"short weight", ConvWeights{In: 2, Out: 3, Weight: make([]float32, 53), Bias: make([]float32, 3)}, nil},
		{"short bias", ConvWeights{In: 2, Out: 3, Weight: make([]float32, 54), Bias: make([]float32, 2)}, nil},
		{"negative workers", good, &ConvOptions{Workers: -1}},
		{"negative BLAS workers", good, &ConvOptions{BLAS: BLAS{Workers: -1}}},
		{"negative *BLAS workers", good, &ConvOptions{BLAS: &BLAS{Workers: -2}}},
		{"unknown algorithm", good, &ConvOptions{Algorithm: 9}},
	}
	for _, b := range bad {
		_, err := NewConv(b.w, b.opts)
		assert.Error(t, err, b.name)
	}
	_, err := NewConv(good, nil)
	assert.NoError(t, err, "valid weights")
	_, err = NewConv(good, &ConvOptions{BLAS: BLAS{Workers: 1}})
	assert.NoError(t, err, "BLAS with one worker")
}

func TestConvForwardToPanicsOnWrongLength(t *testing.T) {
	c, err := NewConv(ConvWeights{In: 2, Out: 3, Weight: make([]float32, 54), Bias: make([]float32, 3)}, nil)
	require.NoError(t, err)
	for name, f := range map[string]func(){
		"short input":       func() { c.ForwardTo(make([]float32, 3*4*4), make([]float32, 2*4*4-1), 1, 4, 4) },
		"empty batch":       func() { c.ForwardTo(nil, nil, 0, 4, 4) },
		"long destination":  func() { c.ForwardTo(make([]float32, 3*4*4+1), make([]float32, 2*4*4), 1, 4, 4) },
		"short destination": func() { c.ForwardTo(make([]float32, 3*2*2), make([]float32, 2*4*4), 1, 4, 4) },
	} {
		r := catchPanic(f)
		s, ok := r.(string)
		assert.True(t, ok && strings.HasPrefix(s, "style: "), "%s: panic %v, want a \"style: \" message", name, r)
	}
}

// catchPanic returns what f panics with, or nil.
func catchPanic(f func()) (r any) {
	defer func() { r = recover() }()
	f()
	return nil
}

// serialBLAS is a naive, serial, allocation-free Sgemm (NoTrans, NoTrans
// only), so that allocation counts measure the convolution code alone:
// gonum's Sgemm starts goroutines of its own for large products.
type serialBLAS struct{ gonum.Implementation }

func (serialBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if tA != blas.NoTrans || tB != blas.NoTrans {
		panic("serialBLAS: transposes not supported")
	}
	for i := range m {
		ci := c[i*ldc : i*ldc+n]
		for j := range ci {
			ci[j] *= beta
		}
		for l := range k {
			av := alpha * a[i*lda+l]
			bl := b[l*ldb : l*ldb+n]
			for j := range ci {
				ci[j] += av * bl[j]
			}
		}
	}
}

func ExampleConv_ForwardTo() {
	// One channel, a 3x3 kernel of ones (the sum of each neighbourhood),
	// bias -1, ReLU; then the same layer with a fused 2x2 max-pool.
	w := ConvWeights{In: 1, Out: 1, Weight: []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}, Bias: []float32{-1}}
	x := []float32{
		1, 0, 0, 0,
		0, 0, 0, 0,
		0, 0, 2, 0,
		0, 0, 0, 0,
	}
	conv, err := NewConv(w, &ConvOptions{ReLU: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	y := conv.ForwardTo(make([]float32, 4*4), x, 1, 4, 4) // batch of 1 image of 4x4
	for r := range 4 {
		fmt.Println(y[4*r : 4*r+4])
	}
	pooled, err := NewConv(w, &ConvOptions{ReLU: true, Pool: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pooled.ForwardTo(make([]float32, 2*2), x, 1, 4, 4))
	// Output:
	// [0 0 0 0]
	// [0 2 1 1]
	// [0 1 1 1]
	// [0 1 1 1]
	// [2 1 1 1]
}
