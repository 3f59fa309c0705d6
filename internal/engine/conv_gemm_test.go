package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// naiveGEMMConv is the direct definition of the layer s on the batch x
// (n images of s.In x h x w) in float64: each output is the bias plus
// the weighted k x k window at stride s (zero outside the image), plus
// the residual res if not nil, then ReLU.
func naiveGEMMConv(x []float32, n, h, w int, s GEMMConvSpec, res []float32) []float64 {
	k, st, p := s.Kernel, s.Stride, s.Pad
	oh, ow := gemmConvOutputLen(h, k, st, p), gemmConvOutputLen(w, k, st, p)
	out := make([]float64, 0, n*s.Out*oh*ow)
	for b := range n {
		for o := range s.Out {
			for y := range oh {
				for xx := range ow {
					v := float64(s.Bias[o])
					for ci := range s.In {
						for ky := range k {
							for kx := range k {
								sy, sx := y*st+ky-p, xx*st+kx-p
								if sy >= 0 && sy < h && sx >= 0 && sx < w {
									v += float64(s.Weight[((o*s.In+ci)*k+ky)*k+kx]) * float64(x[((b*s.In+ci)*h+sy)*w+sx])
								}
							}
						}
					}
					if res != nil {
						v += float64(res[len(out)])
					}
					if s.ReLU {
						v = max(v, 0)
					}
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// randomGEMMConvSpec returns a layer with random weights of the scale of
// He-uniform initialisation and small biases.
func randomGEMMConvSpec(r *rand.Rand, in, out, k, stride, pad int) GEMMConvSpec {
	s := GEMMConvSpec{In: in, Out: out, Kernel: k, Stride: stride, Pad: pad, Weight: randomSlice(r, out*in*k*k), Bias: randomSlice(r, out)}
	scale := float32(math.Sqrt(6 / float64(in*k*k)))
	for i := range s.Weight {
		s.Weight[i] *= scale
	}
	for i := range s.Bias {
		s.Bias[i] *= 0.1
	}
	return s
}

// gemmConvForward returns c's output for the batch x (plus the residual
// res if not nil) in a new slice, with a fresh workspace.
func gemmConvForward(c *GEMMConv, x []float32, n, h, w int, res []float32) []float32 {
	oh, ow := c.OutputSize(h, w)
	dst := make([]float32, n*c.Out()*oh*ow)
	copy(dst, res)
	c.Forward(dst, x, n, h, w, res != nil, new(Workspace))
	return dst
}

// TestGEMMConvMatchesNaive compares the general convolution with its
// direct definition on the layer shapes of ResNet-50 (1x1 at stride 1
// and 2, 3x3 at stride 1 and 2, the 7x7 stride-2 stem) and on odd ones
// (even kernels, stride 3, padding larger than the stride, images
// smaller than a band or than the kernel's reach), in batches whose
// bands span images, with and without residual and ReLU, on every ISA
// (under the race detector, which is here for the concurrency and makes
// the pure-Go kernels very slow, on the best one only).
func TestGEMMConvMatchesNaive(t *testing.T) {
	shapes := []struct{ n, in, out, k, s, p, h, w int }{
		{1, 3, 8, 7, 2, 3, 30, 26},   // the stem
		{2, 16, 24, 1, 1, 0, 7, 7},   // pointwise, bands across images
		{3, 40, 70, 1, 1, 0, 5, 9},   // output channels in several panels
		{2, 12, 20, 1, 2, 0, 14, 13}, // strided shortcut
		{2, 9, 16, 3, 1, 1, 7, 7},
		{2, 9, 16, 3, 2, 1, 14, 14},    // v1.5's strided 3x3
		{1, 5, 7, 3, 2, 1, 15, 9},      // odd size at stride 2
		{1, 4, 6, 2, 2, 0, 9, 8},       // even kernel
		{2, 3, 5, 5, 3, 4, 11, 10},     // stride 3, padding beyond the stride
		{1, 2, 3, 3, 1, 0, 3, 3},       // a single output pixel
		{4, 1, 1, 1, 1, 0, 1, 1},       // 1x1 images
		{1, 300, 5, 1, 1, 0, 4, 6},     // several depth blocks
		{2, 80, 9, 3, 2, 1, 9, 11},     // several depth blocks, with phases
		{1, 8, 33, 3, 1, 1, 60, 50},    // several bands per image
		{3, 20, 30, 1, 1, 0, 7, 7},     // pointwise: panels across images, partial row panel
		{2, 20, 28, 1, 1, 0, 3, 5},     // pointwise: several images per panel
		{2, 700, 15, 1, 1, 0, 8, 8},    // pointwise: several depth blocks, in-place panels
		{2, 24, 29, 1, 1, 0, 16, 16},   // pointwise: in-place panels, direct tiles
		{3, 10, 28, 1, 2, 0, 13, 11},   // pointwise at stride 2, odd sizes
		{1, 10, 14, 1, 3, 0, 100, 70},  // pointwise at stride 3
		{1, 32, 130, 3, 2, 1, 20, 20},  // few bands for 3 workers: shared slabs, output channels in chunks
		{1, 128, 120, 1, 1, 0, 14, 14}, // pointwise, few panels for 3 workers: output channels in chunks
	}
	isas := ISAs()
	if RaceEnabled {
		isas = isas[:1]
	}
	for _, name := range isas {
		restore := ForceISA(name)
		r := rand.New(rand.NewPCG(11, 11))
		for _, sh := range shapes {
			for _, mode := range []string{"plain", "relu", "residual", "residual-relu"} {
				t.Run(fmt.Sprintf("%s/n%d_in%d_out%d_k%d_s%d_p%d_%dx%d_%s", name, sh.n, sh.in, sh.out, sh.k, sh.s, sh.p, sh.h, sh.w, mode), func(t *testing.T) {
					spec := randomGEMMConvSpec(r, sh.in, sh.out, sh.k, sh.s, sh.p)
					spec.ReLU = mode == "relu" || mode == "residual-relu"
					spec.Workers = 3
					c, err := NewGEMMConv(spec)
					require.NoError(t, err)
					x := randomSlice(r, sh.n*sh.in*sh.h*sh.w)
					oh, ow := c.OutputSize(sh.h, sh.w)
					var res []float32
					if mode == "residual" || mode == "residual-relu" {
						res = randomSlice(r, sh.n*sh.out*oh*ow)
					}
					got := gemmConvForward(c, x, sh.n, sh.h, sh.w, res)
					want := naiveGEMMConv(x, sh.n, sh.h, sh.w, spec, res)
					require.Len(t, got, len(want))
					// float32 sums of K = in·k·k products of magnitude
					// <= ~1, as in TestConvMatchesNaive: far below any
					// indexing error (O(0.1)).
					tol := 1e-5 * (1 + math.Sqrt(float64(sh.in*sh.k*sh.k)))
					for i := range got {
						require.InDelta(t, want[i], float64(got[i]), tol*(1+math.Abs(want[i])), "element %d", i)
					}
				})
			}
		}
		restore()
	}
}

// TestGEMMConvBitIdentical checks that results do not depend on the
// number of workers nor on the batch: bands span images, and each image
// computed alone gives the same bits.
func TestGEMMConvBitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 12))
	for _, sh := range []struct{ n, in, out, k, s, p, h, w int }{
		{5, 64, 48, 1, 1, 0, 7, 7},
		{3, 16, 40, 3, 2, 1, 28, 28},
		{2, 3, 32, 7, 2, 3, 64, 56},
		{3, 16, 40, 3, 1, 1, 14, 14},
		{1, 32, 130, 3, 2, 1, 20, 20},
		{2, 128, 120, 1, 1, 0, 14, 14},
	} {
		spec := randomGEMMConvSpec(r, sh.in, sh.out, sh.k, sh.s, sh.p)
		spec.ReLU = true
		x := randomSlice(r, sh.n*sh.in*sh.h*sh.w)
		var first []float32
		for _, workers := range []int{1, 2, 3, 7} {
			spec.Workers = workers
			c, err := NewGEMMConv(spec)
			require.NoError(t, err)
			got := gemmConvForward(c, x, sh.n, sh.h, sh.w, nil)
			if first == nil {
				first = got
				continue
			}
			require.Equal(t, first, got, "%+v workers=%d", sh, workers)
		}
		c, err := NewGEMMConv(spec)
		require.NoError(t, err)
		per, outPer := sh.in*sh.h*sh.w, len(first)/sh.n
		for i := range sh.n {
			one := gemmConvForward(c, x[i*per:(i+1)*per], 1, sh.h, sh.w, nil)
			require.Equal(t, first[i*outPer:(i+1)*outPer], one, "%+v image %d alone", sh, i)
		}
	}
}

// TestNewGEMMConvErrors checks NewGEMMConv's validation and Forward's
// panics.
func TestNewGEMMConvErrors(t *testing.T) {
	good := GEMMConvSpec{In: 2, Out: 3, Kernel: 3, Stride: 2, Pad: 1, Weight: make([]float32, 54), Bias: make([]float32, 3)}
	c, err := NewGEMMConv(good)
	require.NoError(t, err)
	for name, mutate := range map[string]func(s *GEMMConvSpec){
		"zero in":          func(s *GEMMConvSpec) { s.In = 0 },
		"zero kernel":      func(s *GEMMConvSpec) { s.Kernel = 0 },
		"zero stride":      func(s *GEMMConvSpec) { s.Stride = 0 },
		"negative pad":     func(s *GEMMConvSpec) { s.Pad = -1 },
		"pad >= kernel":    func(s *GEMMConvSpec) { s.Pad = 3 },
		"short weight":     func(s *GEMMConvSpec) { s.Weight = s.Weight[:53] },
		"short bias":       func(s *GEMMConvSpec) { s.Bias = s.Bias[:2] },
		"negative workers": func(s *GEMMConvSpec) { s.Workers = -1 },
	} {
		s := good
		mutate(&s)
		_, err := NewGEMMConv(s)
		assert.Error(t, err, name)
	}
	ws := new(Workspace)
	x, dst := make([]float32, 2*5*5), make([]float32, 3*3*3)
	assert.NotPanics(t, func() { c.Forward(dst, x, 1, 5, 5, false, ws) })
	assert.PanicsWithValue(t, "style: GEMMConv.Forward: input has 49 values, want 50", func() { c.Forward(dst, x[:49], 1, 5, 5, false, ws) })
	assert.PanicsWithValue(t, "style: GEMMConv.Forward: output has 26 values, want 27", func() { c.Forward(dst[:26], x, 1, 5, 5, true, ws) })
	assert.PanicsWithValue(t, "style: GEMMConv.Forward: invalid batch 0 x 5 x 5", func() { c.Forward(dst, x, 0, 5, 5, false, ws) })
	c1, err := NewGEMMConv(GEMMConvSpec{In: 1, Out: 1, Kernel: 7, Stride: 1, Pad: 2, Weight: make([]float32, 49), Bias: make([]float32, 1)})
	require.NoError(t, err)
	assert.PanicsWithValue(t, "style: GEMMConv.Forward: 2x2 input smaller than the 7x7 kernel with padding 2", func() { c1.Forward(dst, x, 1, 2, 2, false, ws) })
}

// TestGEMMConvSteadyStateAllocs checks that a pass through a reused
// layer and workspace allocates only the worker goroutines' closures.
func TestGEMMConvSteadyStateAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	spec := randomGEMMConvSpec(r, 64, 64, 3, 2, 1)
	spec.Workers = 2
	c, err := NewGEMMConv(spec)
	require.NoError(t, err)
	x := randomSlice(r, 2*64*56*56)
	dst := make([]float32, 2*64*28*28)
	ws := new(Workspace)
	c.Forward(dst, x, 2, 56, 56, false, ws)
	allocs := testing.AllocsPerRun(10, func() { c.Forward(dst, x, 2, 56, 56, true, ws) })
	// The loops and their helper goroutines: a handful, whatever the size.
	// Where the kernel's tile leaves few bands (AVX2, pure Go) the output
	// channels are split too, and the slabs are filled by a loop of their
	// own: two loops, twice the allocations.
	assert.LessOrEqual(t, allocs, 10.0)
	p, err := NewGEMMConv(randomGEMMConvSpec(r, 64, 256, 1, 1, 0))
	require.NoError(t, err)
	dst = make([]float32, 2*256*56*56)
	p.Forward(dst, x, 2, 56, 56, false, ws)
	allocs = testing.AllocsPerRun(10, func() { p.Forward(dst, x, 2, 56, 56, true, ws) })
	assert.LessOrEqual(t, allocs, 5.0, "pointwise")
}

// naiveMaxPool is the direct definition of MaxPool in float64.
func naiveMaxPool(x []float32, planes, h, w, k, s, p int) []float64 {
	oh, ow := MaxPoolOutputSize(h, w, k, s, p)
	var out []float64
	for i := range planes {
		for oy := range oh {
			for ox := range ow {
				m := math.Inf(-1)
				for ky := range k {
					for kx := range k {
						if y, xx := oy*s+ky-p, ox*s+kx-p; y >= 0 && y < h && xx >= 0 && xx < w {
							m = max(m, float64(x[(i*h+y)*w+xx]))
						}
					}
				}
				out = append(out, m)
			}
		}
	}
	return out
}

// TestMaxPool compares MaxPool with its definition, including ResNet's
// 3x3 stride-2 padding-1 pool on odd and even sizes and negative inputs
// (where a zero padding would wrongly win), for 1 and 2 workers.
func TestMaxPool(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 14))
	for _, sh := range []struct{ planes, h, w, k, s, p int }{
		{3, 112, 112, 3, 2, 1},
		{2, 7, 9, 3, 2, 1},
		{1, 1, 1, 3, 2, 1},
		{4, 8, 8, 2, 2, 0},
		{2, 10, 5, 5, 3, 2},
		{300, 16, 16, 3, 2, 1},
		{2, 5, 1, 3, 2, 1},    // one column
		{1, 3, 1030, 3, 2, 1}, // wider than the row on the stack
		{2, 9, 1100, 4, 3, 2}, // wider than the row on the stack, any window
	} {
		x := randomSlice(r, sh.planes*sh.h*sh.w)
		for i := range x {
			x[i] -= 2 // all negative
		}
		want := naiveMaxPool(x, sh.planes, sh.h, sh.w, sh.k, sh.s, sh.p)
		for _, workers := range []int{1, 2} {
			got := make([]float32, len(want))
			MaxPool(got, x, sh.planes, sh.h, sh.w, sh.k, sh.s, sh.p, workers)
			for i := range got {
				require.Equal(t, want[i], float64(got[i]), "%+v workers %d element %d", sh, workers, i)
			}
		}
	}
	assert.PanicsWithValue(t, "style: MaxPool: invalid 1 planes of 4x4, window 3, stride 2, padding 3", func() { MaxPool(make([]float32, 16), make([]float32, 16), 1, 4, 4, 3, 2, 3, 1) })
	assert.PanicsWithValue(t, "style: MaxPool: 15 input and 4 output values, want 16 and 4", func() { MaxPool(make([]float32, 4), make([]float32, 15), 1, 4, 4, 3, 2, 1, 1) })
}

// TestGlobalAvgPool compares GlobalAvgPool with a float64 mean.
func TestGlobalAvgPool(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 15))
	for _, sh := range []struct{ planes, hw int }{{1, 1}, {7, 49}, {4096, 49}, {3, 3136}} {
		x := randomSlice(r, sh.planes*sh.hw)
		for _, workers := range []int{1, 2} {
			got := make([]float32, sh.planes)
			GlobalAvgPool(got, x, sh.planes, sh.hw, workers)
			for i := range got {
				var sum float64
				for _, v := range x[i*sh.hw : (i+1)*sh.hw] {
					sum += float64(v)
				}
				require.Equal(t, float32(sum/float64(sh.hw)), got[i], "%+v plane %d", sh, i)
			}
		}
	}
	assert.Panics(t, func() { GlobalAvgPool(make([]float32, 1), make([]float32, 3), 1, 4, 1) })
}

// BenchmarkMaxPool runs ResNet-50's max-pool on one image.
func BenchmarkMaxPool(b *testing.B) {
	x := randomSlice(rand.New(rand.NewPCG(16, 16)), 64*112*112)
	dst := make([]float32, 64*56*56)
	b.ReportAllocs()
	for b.Loop() {
		MaxPool(dst, x, 64, 112, 112, 3, 2, 1, 1)
	}
}

// BenchmarkGEMMConvResidual measures what fusing a residual connection
// into the kernel saves on ResNet-50's residual layers (conv3 of a
// block: 1x1, mid to out channels, batch 1): "fused" adds the residual
// through the kernel's beta as the tile is computed; "separate" runs the
// convolution without its ReLU into a buffer and then adds the residual
// and applies the ReLU in a second pass over the output.
func BenchmarkGEMMConvResidual(b *testing.B) {
	r := rand.New(rand.NewPCG(17, 17))
	for _, sh := range []struct{ in, out, h int }{{64, 256, 56}, {128, 512, 28}, {256, 1024, 14}, {512, 2048, 7}} {
		spec := randomGEMMConvSpec(r, sh.in, sh.out, 1, 1, 0)
		spec.ReLU = true
		fused, err := NewGEMMConv(spec)
		require.NoError(b, err)
		spec.ReLU = false
		plain, err := NewGEMMConv(spec)
		require.NoError(b, err)
		x := randomSlice(r, sh.in*sh.h*sh.h)
		res := randomSlice(r, sh.out*sh.h*sh.h)
		dst := make([]float32, len(res))
		tmp := make([]float32, len(res))
		ws := new(Workspace)
		name := fmt.Sprintf("%dx%dx%d_to_%d", sh.in, sh.h, sh.h, sh.out)
		b.Run(name+"/fused", func(b *testing.B) {
			cpu0 := processCPUSeconds()
			for b.Loop() {
				copy(dst, res) // the residual, as the previous layer leaves it
				fused.Forward(dst, x, 1, sh.h, sh.h, true, ws)
			}
			b.ReportMetric((processCPUSeconds()-cpu0)/float64(b.N)*1e3, "cpu-ms/op")
		})
		b.Run(name+"/separate", func(b *testing.B) {
			cpu0 := processCPUSeconds()
			for b.Loop() {
				copy(dst, res)
				plain.Forward(tmp, x, 1, sh.h, sh.h, false, ws)
				addStore(dst, tmp, true)
			}
			b.ReportMetric((processCPUSeconds()-cpu0)/float64(b.N)*1e3, "cpu-ms/op")
		})
	}
}
