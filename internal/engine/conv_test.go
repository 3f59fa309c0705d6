package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// naiveConv is the direct definition of the layer s on the batch x (n
// images of s.In x h x w) in float64: each output is the bias plus the
// weighted 3x3 neighbourhood (zero outside the image), then ReLU, then
// the 2x2 max-pool (an odd last row or column dropped).
func naiveConv(x []float32, n, h, w int, s ConvSpec) []float64 {
	at := func(b, o, y, xx int) float64 {
		v := float64(s.Bias[o])
		for ci := range s.In {
			for k := range 9 {
				if sy, sx := y+k/3-1, xx+k%3-1; sy >= 0 && sy < h && sx >= 0 && sx < w {
					v += float64(s.Weight[(o*s.In+ci)*9+k]) * float64(x[((b*s.In+ci)*h+sy)*w+sx])
				}
			}
		}
		if s.ReLU {
			v = max(v, 0)
		}
		return v
	}
	oh, ow, f := h, w, 1
	if s.Pool {
		oh, ow, f = h/2, w/2, 2
	}
	out := make([]float64, 0, n*s.Out*oh*ow)
	for b := range n {
		for o := range s.Out {
			for y := range oh {
				for xx := range ow {
					m := math.Inf(-1)
					for d := range f * f {
						m = max(m, at(b, o, f*y+d/f, f*xx+d%f))
					}
					out = append(out, m)
				}
			}
		}
	}
	return out
}

// randomConvSpec returns a layer with random weights of the scale of
// He-uniform initialisation and small biases.
func randomConvSpec(r *rand.Rand, in, out int) ConvSpec {
	s := ConvSpec{In: in, Out: out, Weight: randomSlice(r, out*in*9), Bias: randomSlice(r, out)}
	scale := float32(math.Sqrt(6 / float64(in*9)))
	for i := range s.Weight {
		s.Weight[i] *= scale
	}
	for i := range s.Bias {
		s.Bias[i] *= 0.1
	}
	return s
}

// randomSlice returns n values uniform in [-1, 1).
func randomSlice(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = 2*r.Float32() - 1
	}
	return x
}

// newTestConv returns NewConv(s) with the given options, failing the
// test on an error.
func newTestConv(t testing.TB, s ConvSpec, relu, pool bool, workers int, algo Algorithm, impl blas.Float32Level3) *Conv {
	t.Helper()
	s.ReLU, s.Pool, s.Workers, s.Algorithm, s.BLAS = relu, pool, workers, algo, impl
	c, err := NewConv(s)
	require.NoError(t, err)
	return c
}

// forward returns c's output for the batch x in a new slice.
func forward(c *Conv, x []float32, n, h, w int) []float32 {
	oh, ow := c.OutputSize(h, w)
	dst := make([]float32, n*c.Out()*oh*ow)
	c.Forward(dst, x, n, h, w, nil)
	return dst
}

// algorithmNames names the algorithms in test and benchmark names.
var algorithmNames = map[Algorithm]string{Auto: "auto", Im2col: "im2col", Winograd: "winograd", Winograd4x4: "winograd4x4"}

// TestConvMatchesNaive compares the kernel engines (implicit-GEMM
// im2col, packed Winograd F(2x2) and F(4x4)) with the direct definition
// on random shapes: odd sizes, one channel, many channels, 1-pixel
// images, batches, with and without ReLU and pooling.
func TestConvMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	shapes := []struct{ n, in, out, h, w int }{
		{1, 1, 1, 1, 1},
		{1, 1, 3, 5, 7},
		{2, 3, 4, 9, 6},
		{3, 2, 5, 1, 8},
		{1, 7, 2, 13, 1},
		{2, 64, 17, 11, 15},
		{1, 130, 9, 6, 6},
		{2, 3, 8, 64, 40}, // several bands per image
		{1, 2, 3, 129, 33},
		{1, 5, 130, 6, 7},  // output channels split in 2 chunks
		{2, 3, 200, 9, 10}, // output channels split in 3 uneven chunks
		{1, 8, 5, 9, 1},    // the smallest In of the packed Winograd path
		{2, 9, 31, 5, 3},
		{3, 16, 15, 23, 29},  // several Winograd bands per image, ragged last panel
		{1, 64, 120, 10, 10}, // one Winograd band: output channels split in chunks
	}
	for _, s := range shapes {
		for _, relu := range []bool{false, true} {
			for _, pool := range []bool{false, true} {
				for _, algo := range []Algorithm{Im2col, Winograd, Winograd4x4} {
					name := fmt.Sprintf("n%d_in%d_out%d_%dx%d_relu%v_pool%v_%v", s.n, s.in, s.out, s.h, s.w, relu, pool, algorithmNames[algo])
					t.Run(name, func(t *testing.T) {
						cw := randomConvSpec(r, s.in, s.out)
						x := randomSlice(r, s.n*s.in*s.h*s.w)
						c := newTestConv(t, cw, relu, pool, 3, algo, nil)
						got := forward(c, x, s.n, s.h, s.w)
						cw.ReLU, cw.Pool = relu, pool
						want := naiveConv(x, s.n, s.h, s.w, cw)
						oh, ow := c.OutputSize(s.h, s.w)
						if len(got) != s.n*s.out*oh*ow || len(want) != len(got) {
							t.Fatalf("output length %d, want %d", len(got), len(want))
						}
						// float32 sums of in*9 products of magnitude <= ~1:
						// the rounding error is at most ~in*9*2^-24 relative
						// to the sum of |terms|; 1e-5*(1+sqrt(K)) is generous
						// (Winograd's transforms add a few roundings) but far
						// below any indexing error (O(0.1)).
						tol := 1e-5 * (1 + math.Sqrt(float64(s.in*9)))
						for i := range got {
							if d := math.Abs(float64(got[i]) - want[i]); d > tol*(1+math.Abs(want[i])) {
								t.Fatalf("element %d: got %v, want %v (diff %g)", i, got[i], want[i], d)
							}
						}
					})
				}
			}
		}
	}
}

// TestConvWorkersBitIdentical checks that results do not depend on the
// number of workers (the band split depends only on the shape).
func TestConvWorkersBitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	cw := randomConvSpec(r, 16, 24)
	x := randomSlice(r, 3*16*70*50)
	for _, algo := range []Algorithm{Im2col, Winograd, Winograd4x4} {
		for _, pool := range []bool{false, true} {
			var first []float32
			for _, workers := range []int{1, 2, 3, 7} {
				c := newTestConv(t, cw, true, pool, workers, algo, nil)
				got := forward(c, x, 3, 70, 50)
				if first == nil {
					first = got
					continue
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(first[i]) {
						t.Fatalf("%v pool=%v workers=%d: element %d = %v, workers=1 gave %v", algorithmNames[algo], pool, workers, i, got[i], first[i])
					}
				}
			}
		}
	}
	// The batch result equals the per-image results bit for bit, for
	// every algorithm (Winograd bands span images).
	per := 16 * 70 * 50
	outPer := 24 * 70 * 50
	for _, algo := range []Algorithm{Im2col, Winograd, Winograd4x4} {
		c := newTestConv(t, cw, true, false, 2, algo, nil)
		batch := forward(c, x, 3, 70, 50)
		for i := range 3 {
			one := forward(c, x[i*per:(i+1)*per], 1, 70, 50)
			for j := range one {
				if math.Float32bits(one[j]) != math.Float32bits(batch[i*outPer+j]) {
					t.Fatalf("%v: image %d element %d: alone %v, in batch %v", algorithmNames[algo], i, j, one[j], batch[i*outPer+j])
				}
			}
		}
	}
}

// TestNewConvChoosesEngine checks the choice NewConv makes once: with
// the package's kernels, Auto is F(4x4) unless its weights exceed 16 MiB
// (then F(2x2)), and layers with fewer than 8 input channels run the
// implicit-GEMM im2col whatever Winograd algorithm is asked; with a
// caller's BLAS, Auto is im2col and both Winograd algorithms are F(2x2).
func TestNewConvChoosesEngine(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	impl := gonum.Implementation{}
	for _, tc := range []struct {
		in, out int
		algo    Algorithm
		impl    blas.Float32Level3
		want    string // engine type, and wm for the packed Winograd
	}{
		{3, 64, Auto, nil, "im2col-implicit"},
		{3, 64, Winograd4x4, nil, "im2col-implicit"},
		{8, 8, Winograd, nil, "winograd-packed-2"},
		{64, 64, Auto, nil, "winograd-packed-4"},
		{256, 256, Auto, nil, "winograd-packed-4"}, // 9 MiB of F(4x4) weights
		{256, 512, Auto, nil, "winograd-packed-2"}, // 18 MiB
		{64, 64, Im2col, nil, "im2col-implicit"},
		{64, 64, Auto, impl, "im2col-blas"},
		{64, 64, Winograd, impl, "winograd-blas"},
		{64, 64, Winograd4x4, impl, "winograd-blas"},
		{3, 64, Winograd, impl, "winograd-blas"},
	} {
		c := newTestConv(t, randomConvSpec(r, tc.in, tc.out), true, false, 1, tc.algo, tc.impl)
		var got string
		switch e := c.eng.(type) {
		case *implicitIm2col:
			got = "im2col-implicit"
		case *winogradPacked:
			got = fmt.Sprintf("winograd-packed-%d", e.wm)
		case *im2colBLAS:
			got = "im2col-blas"
		case *winogradBLAS:
			got = "winograd-blas"
		}
		assert.Equal(t, tc.want, got, "in %d out %d %v BLAS %T", tc.in, tc.out, algorithmNames[tc.algo], tc.impl)
	}
}

// TestNewConvErrors checks NewConv's validation.
func TestNewConvErrors(t *testing.T) {
	good := ConvSpec{In: 2, Out: 3, Weight: make([]float32, 54), Bias: make([]float32, 3)}
	_, err := NewConv(good)
	require.NoError(t, err)
	for name, mutate := range map[string]func(s *ConvSpec){
		"zero in":           func(s *ConvSpec) { s.In = 0 },
		"short weight":      func(s *ConvSpec) { s.Weight = s.Weight[:53] },
		"short bias":        func(s *ConvSpec) { s.Bias = s.Bias[:2] },
		"negative workers":  func(s *ConvSpec) { s.Workers = -1 },
		"unknown algorithm": func(s *ConvSpec) { s.Algorithm = 9 },
	} {
		s := good
		mutate(&s)
		_, err := NewConv(s)
		assert.Error(t, err, name)
	}
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

// TestConvSteadyStateAllocs checks that a forward pass through a reused
// layer does not allocate in proportion to the image: with an
// allocation-free BLAS, only a few small allocations for the worker
// goroutines; with the default BLAS, far fewer bytes than the output.
func TestConvSteadyStateAllocs(t *testing.T) {
	if RaceEnabled {
		// The race detector makes sync.Pool drop items at random, so
		// allocation counts say nothing there; the normal build checks them.
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	r := rand.New(rand.NewPCG(4, 4))
	cw := randomConvSpec(r, 8, 16)
	x := randomSlice(r, 2*8*64*64)
	for _, pool := range []bool{false, true} {
		c := newTestConv(t, cw, true, pool, 2, Auto, serialBLAS{})
		oh, ow := c.OutputSize(64, 64)
		dst := make([]float32, 2*16*oh*ow)
		allocs := testing.AllocsPerRun(20, func() { c.Forward(dst, x, 2, 64, 64, nil) })
		// Each of the 2 worker goroutines costs a closure and possibly a
		// scratch re-fetch after a GC cleared the pool; buffers themselves
		// are reused. 10 is below one allocation per band (16 bands).
		if allocs > 10 {
			t.Errorf("pool=%v: %.1f allocations per forward pass, want <= 10", pool, allocs)
		}

		d := newTestConv(t, cw, true, pool, 2, Auto, nil)
		d.Forward(dst, x, 2, 64, 64, nil) // warm the scratch pool
		var before, after runtime.MemStats
		const runs = 10
		runtime.ReadMemStats(&before)
		for range runs {
			d.Forward(dst, x, 2, 64, 64, nil)
		}
		runtime.ReadMemStats(&after)
		// The im2col buffer alone is 8*9*64*64*4 = 1.2 MB; a per-call
		// allocation of it would exceed this bound tenfold.
		if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 128<<10 {
			t.Errorf("pool=%v: %d bytes allocated per forward pass with the default BLAS, want <= 128 KiB", pool, perRun)
		}
	}
}

// BenchmarkConvVGG16Layers runs one batch-1 forward pass of each VGG16 conv
// layer shape (with its fused pooling) and reports GFLOP/s.
func BenchmarkConvVGG16Layers(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 5))
	in, size := 3, 224
	for i, out := range vgg16Widths {
		cw := randomConvSpec(r, in, out)
		x := randomSlice(r, in*size*size)
		oh, ow := size, size
		if vgg16Pools[i] {
			oh, ow = size/2, size/2
		}
		dst := make([]float32, out*oh*ow)
		flops := 2 * float64(out) * float64(in*9) * float64(size*size)
		for _, algo := range []Algorithm{Im2col, Winograd, Winograd4x4} {
			c := newTestConv(b, cw, true, vgg16Pools[i], 0, algo, nil)
			// GFLOP/s counts the direct convolution's 2 x out x in x 9
			// operations per pixel for both algorithms, so the numbers
			// compare time; Winograd does 2.25x fewer multiply-adds.
			b.Run(fmt.Sprintf("conv%d_%dx%dx%d_to_%d/%v", i+1, in, size, size, out, algorithmNames[algo]), func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := processCPUSeconds()
				for b.Loop() {
					c.Forward(dst, x, 1, size, size, nil)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				// Per core-second: the kernel's efficiency whatever the load.
				if cpu := processCPUSeconds() - cpu0; cpu > 0 {
					b.ReportMetric(flops*float64(b.N)/cpu/1e9, "GFLOP/cpu-s")
				}
			})
		}
		in, size = out, oh
	}
}

// nopBLAS is a BLAS whose Sgemm does nothing, to measure the cost of
// everything around the matrix products.
type nopBLAS struct{ gonum.Implementation }

func (nopBLAS) Sgemm(blas.Transpose, blas.Transpose, int, int, int, float32, []float32, int, []float32, int, float32, []float32, int) {
}

// BenchmarkConvOverhead measures a batch-1 pass of the VGG16 layers with
// the matrix products skipped: im2col or the Winograd transforms, bias,
// ReLU and pooling, which must stay small next to the GEMM time.
func BenchmarkConvOverhead(b *testing.B) {
	r := rand.New(rand.NewPCG(6, 6))
	for _, algo := range []Algorithm{Im2col, Winograd} {
		var convs []*Conv
		in := 3
		for i, out := range vgg16Widths {
			convs = append(convs, newTestConv(b, randomConvSpec(r, in, out), true, vgg16Pools[i], 0, algo, nopBLAS{}))
			in = out
		}
		x := randomSlice(r, 3*224*224)
		b.Run(algorithmNames[algo], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cur, size := x, 224
				for _, c := range convs {
					cur = forward(c, cur, 1, size, size)
					size, _ = c.OutputSize(size, size)
				}
			}
		})
	}
}

// vgg16Widths are the output channels of VGG16's 13 convolution layers;
// vgg16Pools says which are followed by a 2x2 max-pool.
var (
	vgg16Widths = [13]int{64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512}
	vgg16Pools  = [13]bool{1: true, 3: true, 6: true, 9: true, 12: true}
)

// TestIm2colOffsetsFit checks the 32-bit limit of the implicit-GEMM
// offsets at its boundary (without allocating such a slab).
func TestIm2colOffsetsFit(t *testing.T) {
	if !im2colOffsetsFit(512, 3*(224+2)*10, 32) {
		t.Error("VGG16's widest band does not fit")
	}
	limit := (math.MaxInt32 - 34) / 512
	if !im2colOffsetsFit(512, limit, 32) || im2colOffsetsFit(512, limit+1, 32) {
		t.Errorf("boundary: plane %d should fit and %d not", limit, limit+1)
	}
	if im2colOffsetsFit(512, 3*(2_000_000+2), 32) {
		t.Error("512 channels of 2,000,000-wide rows fit in int32 offsets")
	}
}

// FuzzConvIm2col runs the packed im2col convolution for fuzzed shapes,
// ReLU, pooling and worker counts on the kernel this CPU uses (the
// indirect assembly kernel on amd64) and on the pure-Go kernel, and checks
// both against the float64 naive convolution with the tolerance of
// TestConvMatchesNaive. Band and panel edges (ragged last pixel panel,
// partial last band, several output-channel chunks) come from the sizes.
func FuzzConvIm2col(f *testing.F) {
	f.Add(uint8(3), uint8(20), uint8(17), uint8(9), uint8(0), uint64(1))
	f.Add(uint8(9), uint8(70), uint8(6), uint8(40), uint8(7), uint64(2))
	f.Fuzz(func(t *testing.T, in8, out8, h8, w8, flags uint8, seed uint64) {
		in, out := 1+int(in8)%24, 1+int(out8)%80
		h, w := 1+int(h8)%48, 1+int(w8)%48
		n := 1 + int(flags)%2
		relu, pool := flags&2 != 0, flags&4 != 0
		workers := 1 + int(flags>>3)%3
		r := rand.New(rand.NewPCG(seed, 9))
		cw := randomConvSpec(r, in, out)
		x := randomSlice(r, n*in*h*w)
		cw.ReLU, cw.Pool = relu, pool
		want := naiveConv(x, n, h, w, cw)
		tol := 1e-5 * (1 + math.Sqrt(float64(in*9)))
		for _, kernel := range []isa{gemmKernels.activeISA, isaGeneric} {
			restore := gemmKernels.force(kernel)
			c := newTestConv(t, cw, relu, pool, workers, Im2col, nil)
			restore()
			got := forward(c, x, n, h, w)
			if len(got) != len(want) {
				t.Fatalf("%s: output length %d, want %d", kernel, len(got), len(want))
			}
			for i := range got {
				if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*(1+math.Abs(want[i]))) {
					t.Fatalf("%s n%d in%d out%d %dx%d relu=%v pool=%v: element %d = %v, want %v", kernel, n, in, out, h, w, relu, pool, i, got[i], want[i])
				}
			}
		}
	})
}
