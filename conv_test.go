package style

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

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

// TestConvMatchesNaive compares the im2col path with the direct definition
// on random shapes: odd sizes, one channel, many channels, 1-pixel images,
// batches, with and without ReLU and pooling.
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
				for _, algo := range []ConvAlgorithm{ConvIm2col, ConvWinograd, ConvWinograd4x4} {
					name := fmt.Sprintf("n%d_in%d_out%d_%dx%d_relu%v_pool%v_%v", s.n, s.in, s.out, s.h, s.w, relu, pool, algo)
					t.Run(name, func(t *testing.T) {
						cw := randomConvWeights(r, s.in, s.out)
						x := randomSlice(r, s.n*s.in*s.h*s.w)
						c, err := NewConv(cw, &ConvOptions{ReLU: relu, Pool: pool, Workers: 3, Algorithm: algo})
						if err != nil {
							t.Fatal(err)
						}
						got := c.Forward(x, s.n, s.h, s.w)
						want := naiveConv3x3(x, s.n, s.in, s.h, s.w, cw, relu)
						oh, ow := s.h, s.w
						if pool {
							want = naiveMaxPool2x2(want, s.n*s.out, s.h, s.w)
							oh, ow = s.h/2, s.w/2
						}
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
	cw := randomConvWeights(r, 16, 24)
	x := randomSlice(r, 3*16*70*50)
	for _, algo := range []ConvAlgorithm{ConvIm2col, ConvWinograd, ConvWinograd4x4} {
		for _, pool := range []bool{false, true} {
			var first []float32
			for _, workers := range []int{1, 2, 3, 7} {
				c, err := NewConv(cw, &ConvOptions{ReLU: true, Pool: pool, Workers: workers, Algorithm: algo})
				if err != nil {
					t.Fatal(err)
				}
				got := c.Forward(x, 3, 70, 50)
				if first == nil {
					first = got
					continue
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(first[i]) {
						t.Fatalf("%v pool=%v workers=%d: element %d = %v, workers=1 gave %v", algo, pool, workers, i, got[i], first[i])
					}
				}
			}
		}
	}
	// The batch result equals the per-image results bit for bit, for
	// every algorithm (Winograd bands span images).
	per := 16 * 70 * 50
	outPer := 24 * 70 * 50
	for _, algo := range []ConvAlgorithm{ConvIm2col, ConvWinograd, ConvWinograd4x4} {
		c, _ := NewConv(cw, &ConvOptions{ReLU: true, Workers: 2, Algorithm: algo})
		batch := c.Forward(x, 3, 70, 50)
		for i := range 3 {
			one := c.Forward(x[i*per:(i+1)*per], 1, 70, 50)
			for j := range one {
				if math.Float32bits(one[j]) != math.Float32bits(batch[i*outPer+j]) {
					t.Fatalf("%v: image %d element %d: alone %v, in batch %v", algo, i, j, one[j], batch[i*outPer+j])
				}
			}
		}
	}
}

// TestConvExplicitBLAS checks that a caller-supplied BLAS is used and gives
// the same result as the default.
func TestConvExplicitBLAS(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	cw := randomConvWeights(r, 4, 5)
	x := randomSlice(r, 4*10*10)
	cb := &countingBLAS{Implementation: gonum.Implementation{}}
	c, err := NewConv(cw, &ConvOptions{BLAS: cb, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Forward(x, 1, 10, 10)
	d, _ := NewConv(cw, &ConvOptions{Workers: 1})
	want := d.Forward(x, 1, 10, 10)
	if cb.calls == 0 {
		t.Fatal("the BLAS passed in options was not called")
	}
	// The default path uses fused multiply-adds and folds the bias into
	// the product, so the two agree to float32 rounding over K = 37
	// terms, not bit for bit: 1e-5 relative is ~100 ulps of slack.
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("element %d: %v with explicit BLAS, %v with default", i, got[i], want[i])
		}
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
		{"unknown algorithm", good, &ConvOptions{Algorithm: 9}},
	}
	for _, b := range bad {
		if _, err := NewConv(b.w, b.opts); err == nil {
			t.Errorf("%s: no error", b.name)
		}
	}
	if _, err := NewConv(good, nil); err != nil {
		t.Errorf("valid weights: %v", err)
	}
}

func TestConvForwardPanicsOnWrongLength(t *testing.T) {
	c, err := NewConv(ConvWeights{In: 2, Out: 3, Weight: make([]float32, 54), Bias: make([]float32, 3)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(){
		func() { c.Forward(make([]float32, 2*4*4-1), 1, 4, 4) },
		func() { c.Forward(make([]float32, 0), 0, 4, 4) },
		func() { c.ForwardTo(make([]float32, 3*4*4+1), make([]float32, 2*4*4), 1, 4, 4) },
	} {
		func() {
			defer func() {
				r := recover()
				if s, ok := r.(string); !ok || len(s) < 7 || s[:7] != "style: " {
					t.Errorf("panic %v, want a \"style: \" message", r)
				}
			}()
			f()
		}()
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
	if raceEnabled {
		// The race detector makes sync.Pool drop items at random, so
		// allocation counts say nothing there; the normal build checks them.
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	r := rand.New(rand.NewPCG(4, 4))
	cw := randomConvWeights(r, 8, 16)
	x := randomSlice(r, 2*8*64*64)
	for _, pool := range []bool{false, true} {
		c, _ := NewConv(cw, &ConvOptions{ReLU: true, Pool: pool, Workers: 2, BLAS: serialBLAS{}})
		oh, ow := c.OutputSize(64, 64)
		dst := make([]float32, 2*16*oh*ow)
		allocs := testing.AllocsPerRun(20, func() { c.ForwardTo(dst, x, 2, 64, 64) })
		// Each of the 2 worker goroutines costs a closure and possibly a
		// scratch re-fetch after a GC cleared the pool; buffers themselves
		// are reused. 10 is below one allocation per band (16 bands).
		if allocs > 10 {
			t.Errorf("pool=%v: %.1f allocations per forward pass, want <= 10", pool, allocs)
		}

		d, _ := NewConv(cw, &ConvOptions{ReLU: true, Pool: pool, Workers: 2})
		d.ForwardTo(dst, x, 2, 64, 64) // warm the scratch pool
		var before, after runtime.MemStats
		const runs = 10
		runtime.ReadMemStats(&before)
		for range runs {
			d.ForwardTo(dst, x, 2, 64, 64)
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
	widths := [13]int{64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512}
	r := rand.New(rand.NewPCG(5, 5))
	in, size := 3, 224
	for i, out := range widths {
		cw := randomConvWeights(r, in, out)
		x := randomSlice(r, in*size*size)
		oh, ow := size, size
		if vgg16Pools[i] {
			oh, ow = size/2, size/2
		}
		dst := make([]float32, out*oh*ow)
		flops := 2 * float64(out) * float64(in*9) * float64(size*size)
		for _, algo := range []ConvAlgorithm{ConvIm2col, ConvWinograd, ConvWinograd4x4} {
			c, err := NewConv(cw, &ConvOptions{ReLU: true, Pool: vgg16Pools[i], Algorithm: algo})
			if err != nil {
				b.Fatal(err)
			}
			// GFLOP/s counts the direct convolution's 2 x out x in x 9
			// operations per pixel for both algorithms, so the numbers
			// compare time; Winograd does 2.25x fewer multiply-adds.
			b.Run(fmt.Sprintf("conv%d_%dx%dx%d_to_%d/%v", i+1, in, size, size, out, algo), func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := processCPUSeconds()
				for b.Loop() {
					c.ForwardTo(dst, x, 1, size, size)
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
	for _, algo := range []ConvAlgorithm{ConvIm2col, ConvWinograd} {
		var convs []*Conv
		in := 3
		for i, out := range vgg16FullWidths {
			c, err := NewConv(randomConvWeights(r, in, out), &ConvOptions{ReLU: true, Pool: vgg16Pools[i], Algorithm: algo, BLAS: nopBLAS{}})
			if err != nil {
				b.Fatal(err)
			}
			convs = append(convs, c)
			in = out
		}
		x := randomSlice(r, 3*224*224)
		b.Run(algo.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cur, size := x, 224
				for _, c := range convs {
					cur = c.Forward(cur, 1, size, size)
					size, _ = c.OutputSize(size, size)
				}
			}
		})
	}
}

func ExampleConv_Forward() {
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
	y := conv.Forward(x, 1, 4, 4) // batch of 1 image of 4x4
	for r := range 4 {
		fmt.Println(y[4*r : 4*r+4])
	}
	pooled, err := NewConv(w, &ConvOptions{ReLU: true, Pool: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pooled.Forward(x, 1, 4, 4))
	// Output:
	// [0 0 0 0]
	// [0 2 1 1]
	// [0 1 1 1]
	// [0 1 1 1]
	// [2 1 1 1]
}

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
		cw := randomConvWeights(r, in, out)
		x := randomSlice(r, n*in*h*w)
		want := naiveConv3x3(x, n, in, h, w, cw, relu)
		if pool {
			want = naiveMaxPool2x2(want, n*out, h, w)
		}
		tol := 1e-5 * (1 + math.Sqrt(float64(in*9)))
		for _, kernel := range []string{gemmActive.name, "generic"} {
			restore := useGemmKernel(kernel)
			c, err := NewConv(cw, &ConvOptions{ReLU: relu, Pool: pool, Workers: workers, Algorithm: ConvIm2col})
			restore()
			if err != nil {
				t.Fatal(err)
			}
			got := c.Forward(x, n, h, w)
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
