package style

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style/internal/engine"
)

// TestVGG16NarrowGoldenEveryISA runs the narrow network's golden test on
// every kernel path this machine has, forced through engine.ForceISA
// (AVX-512, AVX2 and pure Go on an AVX-512 machine), with every
// convolution algorithm. Tolerance: relative L2 error 1e-4, as in
// TestVGG16NarrowGolden (float32 accumulation gives about 1e-6).
func TestVGG16NarrowGoldenEveryISA(t *testing.T) {
	shared := sharedDir(t)
	w, err := ReadWeights(filepath.Join(shared, "golden", "vgg16_narrow_tv.safetensors"), VGG16, 8)
	require.NoError(t, err)
	names := goldenImageNames[:2]
	if testing.Short() {
		names = names[:1]
	}
	var x []float32
	for _, name := range names {
		x = append(x, caffeInput(t, name)...)
	}
	for _, isa := range engine.ISAs() {
		t.Run(isa, func(t *testing.T) {
			defer engine.ForceISA(isa)()
			for _, algo := range []ConvAlgorithm{ConvAuto, ConvIm2col, ConvWinograd, ConvWinograd4x4} {
				m, err := NewNetwork(w, &NetworkOptions{Algorithm: algo, Workers: 2})
				require.NoError(t, err)
				fl := m.FeatureLen()
				feats := m.ForwardTo(make([]float32, len(names)*fl), x, len(names))
				for i, name := range names {
					want := readF32(t, filepath.Join("testdata", "vgg16_narrow", name+".features.f32"))
					e := relL2(feats[i*fl:(i+1)*fl], want)
					assert.Less(t, e, 1e-4, "%v %s", algo, name)
				}
			}
		})
	}
}

// TestConvEveryISA compares Conv, on every kernel path this machine has
// and with every algorithm, with the direct float64 definition, with and
// without ReLU and pooling, with the tolerance of the engine's
// TestConvMatchesNaive: float32 sums of in*9 products of magnitude <= ~1
// round to at most ~in*9*2^-24 relative to the sum of |terms|, and
// 1e-5*(1+sqrt(K)) leaves room for Winograd's transforms while staying
// far below any indexing error (O(0.1)).
func TestConvEveryISA(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 21))
	shapes := []struct{ n, in, out, h, w int }{
		{1, 3, 17, 13, 9},
		{2, 16, 40, 11, 14},
	}
	for _, isa := range engine.ISAs() {
		t.Run(isa, func(t *testing.T) {
			defer engine.ForceISA(isa)()
			for _, s := range shapes {
				cw := randomConvWeights(r, s.in, s.out)
				x := randomSlice(r, s.n*s.in*s.h*s.w)
				tol := 1e-5 * (1 + math.Sqrt(float64(s.in*9)))
				for _, relu := range []bool{false, true} {
					for _, pool := range []bool{false, true} {
						want := naiveConv3x3(x, s.n, s.in, s.h, s.w, cw, relu)
						if pool {
							want = naiveMaxPool2x2(want, s.n*s.out, s.h, s.w)
						}
						for _, algo := range []ConvAlgorithm{ConvIm2col, ConvWinograd, ConvWinograd4x4} {
							what := fmt.Sprintf("%+v relu=%v pool=%v %v", s, relu, pool, algo)
							c, err := NewConv(cw, &ConvOptions{ReLU: relu, Pool: pool, Workers: 2, Algorithm: algo})
							require.NoError(t, err)
							oh, ow := c.OutputSize(s.h, s.w)
							got := c.ForwardTo(make([]float32, s.n*s.out*oh*ow), x, s.n, s.h, s.w)
							require.Len(t, got, len(want), what)
							for i := range got {
								if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*(1+math.Abs(want[i]))) {
									t.Fatalf("%s: element %d = %v, want %v", what, i, got[i], want[i])
								}
							}
						}
					}
				}
			}
		})
	}
}
