package style

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
)

// Conv is a 3x3 convolution layer with stride 1 and zero padding 1 (the
// output has the input's height and width), a bias per output channel, and
// optionally a fused ReLU and a fused 2x2 max-pool with stride 2.
//
// Tensors are float32 in N,C,H,W order (row-major: x is the fastest index).
// ConvIm2col computes im2col followed by one single-precision GEMM per
// band of output rows; ConvWinograd and ConvWinograd4x4 replace it by 16
// or 36 GEMMs with K = In per band of output tiles (see ConvAlgorithm;
// the default, ConvAuto, is the fastest). With this package's BLAS the
// GEMM micro-kernel is driven directly on weights packed once by NewConv
// (see conv_packed.go); with another BLAS its Sgemm is called.
// The work is split into tasks (bands of output rows or tiles, and
// chunks of output channels when an image has few bands) that depend only
// on the layer and the shapes, never on the number of workers, and
// each output value is written by exactly one task, so results are
// bit-identical for any Workers setting and any batch composition.
//
// A Conv is immutable after NewConv and safe for concurrent use by multiple
// goroutines, provided its BLAS implementation is (gonum's is). Scratch
// buffers are pooled and reused across calls.
type Conv struct {
	in, out int
	weight  []float32 // out x (in*9), PyTorch OIHW order; nil with ConvWinograd
	bias    []float32 // out
	relu    bool
	pool    bool
	algo    ConvAlgorithm
	wino    []float32 // Winograd-transformed weights, 16 x out x in
	impl    blas.Float32Level3
	workers int
	// packed holds the weights and bias packed for the GEMM kernel when
	// impl is this package's BLAS (see conv_packed.go); weight is then nil.
	packed *convPacked
	// upk holds the 16 or 36 Winograd weight matrices packed for the kernel
	// when the packed Winograd path is used; wino is then nil.
	upk []*convPacked
	wm  int // Winograd output tile size of the packed path: 2 or 4
	// free holds the workspaces of finished calls for reuse. Unlike a
	// sync.Pool, whose per-P slots miss when the caller moves between
	// threads and which the GC empties, it keeps them for the Conv's
	// lifetime: at most one per concurrent call.
	freeMu sync.Mutex
	free   []*convWorkspace
}

// ConvOptions configures a Conv. A nil *ConvOptions means the zero value:
// no ReLU, no pooling, the default BLAS, GOMAXPROCS workers.
type ConvOptions struct {
	// ReLU applies max(0, x) to the output. Zero value: no activation.
	ReLU bool
	// Pool applies a 2x2 max-pool with stride 2 after the activation,
	// flooring odd sizes as PyTorch and Keras do. Zero value: no pooling.
	Pool bool
	// BLAS computes the matrix products. It must be safe for concurrent
	// use. Zero value (nil): the package default (gonum's pure-Go BLAS,
	// or a faster one when the package provides it).
	BLAS blas.Float32Level3
	// Workers is the number of goroutines a forward pass may use.
	// Zero value: runtime.GOMAXPROCS(0). Small inputs run serially.
	Workers int
	// Algorithm selects the convolution algorithm. Zero value: ConvAuto,
	// the fastest accurate one (see ConvAuto).
	Algorithm ConvAlgorithm
}

// convScratch holds one worker's buffers.
type convScratch struct {
	packedScratch
	col []float32 // im2col matrix of one band, (in*9) x (rows*w); or the Winograd-transformed input
	out []float32 // pre-pool output of one band, out x (rows*w); or the Winograd products
	pad []float32 // Winograd: padded input rows and their combinations
}

// convBandBudget bounds the im2col buffer of one band, in floats (4 MiB), so
// that scratch memory stays small and the band fits in the last-level cache.
const convBandBudget = 1 << 20

// convMinParallelFlops is the amount of work below which a forward pass
// runs on the calling goroutine.
const convMinParallelFlops = 4 << 20

// NewConv returns a convolution layer with the given weights, which are
// copied. It returns an error if the weights are inconsistent (In or Out
// not positive, or Weight and Bias of the wrong length); the options are
// not retained.
func NewConv(w ConvWeights, opts *ConvOptions) (*Conv, error) {
	var o ConvOptions
	if opts != nil {
		o = *opts
	}
	if w.In <= 0 || w.Out <= 0 {
		return nil, fmt.Errorf("style: NewConv: invalid channel counts in=%d out=%d", w.In, w.Out)
	}
	if len(w.Weight) != w.Out*w.In*9 {
		return nil, fmt.Errorf("style: NewConv: weight has %d values, want %d (out %d x in %d x 3 x 3)", len(w.Weight), w.Out*w.In*9, w.Out, w.In)
	}
	if len(w.Bias) != w.Out {
		return nil, fmt.Errorf("style: NewConv: bias has %d values, want %d", len(w.Bias), w.Out)
	}
	if o.Workers < 0 {
		return nil, fmt.Errorf("style: NewConv: negative Workers %d", o.Workers)
	}
	if o.Algorithm < ConvAuto || o.Algorithm > ConvWinograd4x4 {
		return nil, fmt.Errorf("style: NewConv: unknown algorithm %v", o.Algorithm)
	}
	if o.BLAS == nil {
		o.BLAS = defaultBLAS()
	}
	if o.Algorithm == ConvAuto {
		o.Algorithm = autoAlgorithm(w.In, w.Out, isPackageBLAS(o.BLAS))
	}
	var weight, wino []float32
	var packed *convPacked
	var upk []*convPacked
	var wm int
	switch {
	case isPackageBLAS(o.BLAS) && (o.Algorithm == ConvIm2col || w.In < winogradMinIn):
		packed = packIm2colWeights(w)
	case isPackageBLAS(o.BLAS):
		wm = 2
		if o.Algorithm == ConvWinograd4x4 {
			wm = 4
		}
		upk = packWinogradWeights(w, wm)
	case o.Algorithm == ConvWinograd || o.Algorithm == ConvWinograd4x4:
		wino = winogradWeights(w.Weight, w.Out, w.In) // the only copy kept
	default:
		weight = append([]float32(nil), w.Weight...)
	}
	return &Conv{
		packed:  packed,
		upk:     upk,
		wm:      wm,
		algo:    o.Algorithm,
		wino:    wino,
		in:      w.In,
		out:     w.Out,
		weight:  weight,
		bias:    append([]float32(nil), w.Bias...),
		relu:    o.ReLU,
		pool:    o.Pool,
		impl:    o.BLAS,
		workers: o.Workers,
	}, nil
}

// In returns the number of input channels.
func (c *Conv) In() int { return c.in }

// Out returns the number of output channels.
func (c *Conv) Out() int { return c.out }

// OutputSize returns the height and width of the output for an input of
// h x w pixels: h x w, or h/2 x w/2 (rounded down) with pooling.
func (c *Conv) OutputSize(h, w int) (oh, ow int) {
	if c.pool {
		return h / 2, w / 2
	}
	return h, w
}

// Forward applies the layer to a batch of n images of In x h x w floats
// stored one after another in x, and returns the n x Out x oh x ow result
// (see OutputSize) in a new slice.
//
// Forward panics if n, h or w is not positive or len(x) != n*In*h*w.
func (c *Conv) Forward(x []float32, n, h, w int) []float32 {
	oh, ow := c.OutputSize(h, w)
	if n <= 0 || h <= 0 || w <= 0 {
		panic(fmt.Sprintf("style: Conv.Forward: invalid batch shape n=%d h=%d w=%d", n, h, w))
	}
	return c.ForwardTo(make([]float32, n*c.out*oh*ow), x, n, h, w)
}

// ForwardTo is like Forward but writes the result into dst, which must have
// length n*Out*oh*ow, and returns it. dst must not overlap x.
//
// ForwardTo panics if n, h or w is not positive, len(x) != n*In*h*w or dst
// has the wrong length, and on the im2col path with this package's BLAS
// if a band of rows is beyond its 32-bit offsets (In x 3 x (w+2) floats
// of 2^31 or more: rows millions of pixels wide).
func (c *Conv) ForwardTo(dst, x []float32, n, h, w int) []float32 {
	if n <= 0 || h <= 0 || w <= 0 {
		panic(fmt.Sprintf("style: Conv.ForwardTo: invalid batch shape n=%d h=%d w=%d", n, h, w))
	}
	if len(x) != n*c.in*h*w {
		panic(fmt.Sprintf("style: Conv.ForwardTo: input has %d values, want %d (n %d x in %d x %d x %d)", len(x), n*c.in*h*w, n, c.in, h, w))
	}
	oh, ow := c.OutputSize(h, w)
	if len(dst) != n*c.out*oh*ow {
		panic(fmt.Sprintf("style: Conv.ForwardTo: destination has %d values, want %d", len(dst), n*c.out*oh*ow))
	}
	if oh == 0 || ow == 0 {
		return dst
	}
	var ws *convWorkspace
	c.freeMu.Lock()
	if k := len(c.free); k > 0 {
		ws = c.free[k-1]
		c.free = c.free[:k-1]
	}
	c.freeMu.Unlock()
	if ws == nil {
		ws = new(convWorkspace)
	}
	c.forward(dst, x, n, h, w, ws)
	c.freeMu.Lock()
	c.free = append(c.free, ws)
	c.freeMu.Unlock()
	return dst
}

// convWorkspace holds the scratch buffers of the workers of one forward
// pass. It can be shared by layers run one after another.
type convWorkspace struct {
	workers []convScratch
}

// forward computes ForwardTo (arguments already checked) with the scratch
// buffers of ws.
func (c *Conv) forward(dst, x []float32, n, h, w int, ws *convWorkspace) {
	oh, ow := c.OutputSize(h, w)
	if oh == 0 || ow == 0 {
		return
	}
	if c.packed != nil {
		c.forwardPacked(dst, x, n, h, w, ws)
		return
	}
	if c.upk != nil {
		c.forwardWinogradPacked(dst, x, n, h, w, ws)
		return
	}
	var hc, rows, nb, colN, outN int
	band := c.band
	if c.algo != ConvIm2col {
		hc, rows, nb = c.winogradBands(h, w)
		band = c.winogradBand
	} else {
		hc, rows, nb = c.bands(h, w)
	}
	oc, osz := c.outChunks(nb)
	if c.algo != ConvIm2col {
		colN, outN = c.winogradScratch(rows, w, osz)
	} else {
		colN = c.in * 9 * rows * w
		if c.pool {
			outN = osz * rows * w
		}
	}
	tasks := n * nb * oc
	workers := c.workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if flops := 2 * int64(n) * int64(c.out) * int64(c.in*9) * int64(hc*w); flops < convMinParallelFlops {
		workers = 1
	}
	workers = min(workers, tasks)
	if len(ws.workers) < workers {
		ws.workers = append(ws.workers, make([]convScratch, workers-len(ws.workers))...)
	}
	var next atomic.Int64
	run := func(s *convScratch) {
		s.grow(colN, outN)
		for {
			t := int(next.Add(1) - 1)
			if t >= tasks {
				return
			}
			img, b, j := t/(nb*oc), t/oc%nb, t%oc
			y0 := b * rows
			y1 := min(y0+rows, hc)
			o0 := j * osz
			o1 := min(o0+osz, c.out)
			band(dst[img*c.out*oh*ow:(img+1)*c.out*oh*ow], x[img*c.in*h*w:(img+1)*c.in*h*w], h, w, y0, y1, o0, o1, s)
		}
	}
	if workers <= 1 {
		run(&ws.workers[0])
		return
	}
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { run(&ws.workers[i]) })
	}
	wg.Wait()
}

// bands splits the hc computed output rows (h, or the even part of h when
// pooling) of an h x w image into nb bands of rows rows (the last may be
// shorter). The split depends on the layer and the image shape only.
func (c *Conv) bands(h, w int) (hc, rows, nb int) {
	hc = h
	if c.pool {
		hc = h &^ 1
	}
	k := c.in * 9
	nb = max(1, (hc*w*k+convBandBudget-1)/convBandBudget)
	// Give batch-1 passes on large images enough bands to share between
	// cores, without making GEMMs thinner than about 1024 columns.
	nb = max(nb, min(hc, (hc*w)/1024))
	rows = (hc + nb - 1) / nb
	if c.pool && rows%2 == 1 {
		rows++
	}
	nb = (hc + rows - 1) / rows
	return hc, rows, nb
}

// convMinTasks is the number of tasks per image below which the output
// channels are split too, so that a batch-1 pass on a small late layer
// (one band) still keeps several cores busy with a single-threaded BLAS.
const convMinTasks = 4

// outChunks splits the output channels into oc chunks of osz channels
// (the last may be smaller) when the image has fewer than convMinTasks
// bands. Each chunk repeats the band's im2col or input transform, which is
// cheap next to its GEMM. The split depends on the shape only.
func (c *Conv) outChunks(nb int) (oc, osz int) {
	oc = 1
	if nb < convMinTasks {
		oc = max(1, min((convMinTasks+nb-1)/nb, c.out/64))
	}
	osz = (c.out + oc - 1) / oc
	oc = (c.out + osz - 1) / osz
	return oc, osz
}

// grow makes the buffers of s hold at least colN and outN floats.
func (s *convScratch) grow(colN, outN int) {
	if cap(s.col) < colN {
		s.col = make([]float32, colN)
	}
	if cap(s.out) < outN {
		s.out = make([]float32, outN)
	}
}

// band computes output rows y0..y1 of output channels o0..o1 of one image:
// src is In x h x w, dst is Out x oh x ow.
func (c *Conv) band(dst, src []float32, h, w, y0, y1, o0, o1 int, s *convScratch) {
	k := c.in * 9
	cols := (y1 - y0) * w
	col := s.col[:k*cols]
	im2col3x3(col, src, c.in, h, w, y0, y1)
	m := o1 - o0
	a := c.weight[o0*k : o1*k]
	if !c.pool {
		hw := h * w
		out := dst[o0*hw+y0*w : (o1-1)*hw+y1*w]
		c.impl.Sgemm(blas.NoTrans, blas.NoTrans, m, cols, k, 1, a, k, col, cols, 0, out, hw)
		for o := range m {
			biasReLU(out[o*hw:o*hw+cols], c.bias[o0+o], c.relu)
		}
		return
	}
	out := s.out[:m*cols]
	c.impl.Sgemm(blas.NoTrans, blas.NoTrans, m, cols, k, 1, a, k, col, cols, 0, out, cols)
	oh, ow := h/2, w/2
	for o := range m {
		plane := out[o*cols : (o+1)*cols]
		biasReLU(plane, c.bias[o0+o], c.relu)
		d := (o0 + o) * oh * ow
		maxPool2x2Rows(dst[d+(y0/2)*ow:d+(y1/2)*ow], plane, y1-y0, w)
	}
}

// biasReLU adds b to every element of v and, if relu, clamps it at zero.
func biasReLU(v []float32, b float32, relu bool) {
	if !relu {
		for i := range v {
			v[i] += b
		}
		return
	}
	for i, x := range v {
		x += b
		if x < 0 {
			x = 0
		}
		v[i] = x
	}
}

// maxPool2x2Rows max-pools one channel of rows x w values (rows even) into
// dst, which has rows/2 x w/2 values. An odd last column is dropped.
func maxPool2x2Rows(dst, src []float32, rows, w int) {
	ow := w / 2
	for y := 0; y < rows/2; y++ {
		r0 := src[2*y*w : 2*y*w+w]
		r1 := src[(2*y+1)*w : (2*y+1)*w+w]
		d := dst[y*ow : y*ow+ow]
		for x := range d {
			m := r0[2*x]
			if v := r0[2*x+1]; v > m {
				m = v
			}
			if v := r1[2*x]; v > m {
				m = v
			}
			if v := r1[2*x+1]; v > m {
				m = v
			}
			d[x] = m
		}
	}
}

// im2col3x3 writes the im2col matrix of output rows y0..y1 of a 3x3,
// stride 1, padding 1 convolution of src (in x h x w) into col: row
// ci*9+ky*3+kx (the OIHW weight order), column (y-y0)*w+x holds
// src[ci][y+ky-1][x+kx-1], or 0 outside the image.
func im2col3x3(col, src []float32, in, h, w, y0, y1 int) {
	cols := (y1 - y0) * w
	for ci := range in {
		plane := src[ci*h*w : (ci+1)*h*w]
		for ky := range 3 {
			for kx := range 3 {
				row := col[(ci*9+ky*3+kx)*cols : (ci*9+ky*3+kx+1)*cols]
				for y := y0; y < y1; y++ {
					d := row[(y-y0)*w : (y-y0+1)*w]
					sy := y + ky - 1
					if sy < 0 || sy >= h {
						clear(d)
						continue
					}
					s := plane[sy*w : (sy+1)*w]
					switch kx {
					case 0:
						d[0] = 0
						copy(d[1:], s[:w-1])
					case 1:
						copy(d, s)
					case 2:
						copy(d[:w-1], s[1:])
						d[w-1] = 0
					}
				}
			}
		}
	}
}

// autoAlgorithmBytes is the size of F(4x4, 3x3)'s transformed weights
// (36 x In x Out floats) above which ConvAuto uses F(2x2, 3x3): the
// products stream the weights from memory once per band, and for the
// widest layers at small batches (VGG16's 28x28 and 14x14 layers, 256 or
// 512 channels in and 512 out) that traffic costs more than F(4x4) saves
// in arithmetic; F(2x2)'s weights are 16/36 as large.
const autoAlgorithmBytes = 16 << 20

// autoAlgorithm is the algorithm ConvAuto selects for a layer.
func autoAlgorithm(in, out int, packageBLAS bool) ConvAlgorithm {
	switch {
	case !packageBLAS:
		return ConvIm2col
	case 36*4*in*out > autoAlgorithmBytes:
		return ConvWinograd
	}
	return ConvWinograd4x4
}
