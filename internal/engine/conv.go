package engine

import (
	"fmt"
	"sync"

	"gonum.org/v1/gonum/blas"
)

// The convolution engines. NewConv validates a layer and picks one of
// four engines, once, behind the convEngine interface:
//
//   - im2col through a caller's BLAS (conv_im2col.go);
//   - Winograd F(2x2, 3x3) through a caller's BLAS (conv_winograd.go);
//   - implicit-GEMM im2col on this package's kernels (conv_implicit.go);
//   - packed Winograd F(2x2, 3x3) or F(4x4, 3x3) on this package's
//     kernels (conv_winograd_packed.go).
//
// This file holds what they share: the layer, the choice, the workspace,
// the task driver of the BLAS engines and the packed weights of the
// kernel engines.

// Algorithm selects how a Conv computes the convolution; the package
// style documents each one's accuracy (ConvAlgorithm).
type Algorithm int

const (
	// Auto picks per layer the fastest accurate algorithm (see
	// autoAlgorithm).
	Auto Algorithm = iota
	// Im2col lowers the convolution to GEMMs with K = 9 x In.
	Im2col
	// Winograd is F(2x2, 3x3): 16 GEMMs with K = In per band of tiles.
	Winograd
	// Winograd4x4 is F(4x4, 3x3): 36 GEMMs with K = In per band of
	// tiles. It needs the package's kernels; with a caller's BLAS it
	// computes as Winograd.
	Winograd4x4
)

// ConvSpec describes a convolution layer for NewConv.
type ConvSpec struct {
	In, Out int
	Weight  []float32 // Out x In x 3 x 3 (PyTorch's OIHW order); not retained
	Bias    []float32 // Out; not retained
	ReLU    bool      // max(0, x) after the bias
	Pool    bool      // 2x2 max-pool, stride 2, after the ReLU
	// BLAS computes the products through its Sgemm; nil means this
	// package's kernels, driven directly on weights packed by NewConv.
	BLAS blas.Float32Level3
	// Workers bounds the goroutines of a forward pass; 0 means
	// GOMAXPROCS at the time of the pass.
	Workers   int
	Algorithm Algorithm
}

// Conv is a 3x3 convolution layer with stride 1 and zero padding 1, a
// bias per output channel, and optionally a fused ReLU and 2x2 max-pool,
// on float32 tensors in N,C,H,W order.
//
// The work of a forward pass is split into tasks (bands of output rows
// or tiles, and chunks of output channels when there are few bands) that
// depend only on the layer, the shapes and the number of workers, and
// every output value is computed by the same operations in the same
// order whatever task holds it, so results are bit-identical for any
// Workers and any batch composition.
//
// A Conv is immutable after NewConv and safe for concurrent use, provided
// its BLAS is.
type Conv struct {
	convLayer
	eng convEngine
	// free holds the workspaces of finished Forward calls that brought
	// none. Unlike a sync.Pool, whose per-P slots miss when the caller
	// moves between threads and which the GC empties, it keeps them for
	// the Conv's lifetime: at most one per concurrent call.
	freeMu sync.Mutex
	free   []*Workspace
}

// convLayer is what every engine knows of the layer.
type convLayer struct {
	in, out int
	bias    []float32 // out
	relu    bool
	pool    bool
	workers int // 0: GOMAXPROCS
}

// convEngine computes a layer one way.
type convEngine interface {
	// forward computes the layer on the n images x (In x h x w each)
	// into dst (Out x oh x ow each, both not zero) with the scratch
	// buffers of ws.
	forward(dst, x []float32, n, h, w int, ws *Workspace)
}

// Workspace holds the scratch buffers of the workers of a forward pass.
// Layers run one after another may share one (a VGG16 pass does); the
// zero value is ready to use. A Workspace serves one pass at a time.
type Workspace struct {
	workers []convScratch
}

// convScratch holds one worker's buffers.
type convScratch struct {
	packedScratch
	col []float32 // im2col matrix of one band, (in*9) x (rows*w); or the Winograd-transformed input
	out []float32 // pre-pool output of one band, out x (rows*w); or the Winograd products
	pad []float32 // Winograd: padded input rows and their combinations
}

// packedScratch holds one worker's buffers for the kernel engines.
type packedScratch struct {
	slab []float32 // zero-padded input rows of the band, in planes of (rows+2) x (w+2)
	b    []float32 // packed B block (Winograd)
	c    []float32 // product of the band, (row panels * mr) x npad
	off  []int32   // im2col row offsets into the slab (see im2colOffsets)
}

// scratch returns the buffers of the first workers workers.
func (ws *Workspace) scratch(workers int) []convScratch {
	if len(ws.workers) < workers {
		ws.workers = append(ws.workers, make([]convScratch, workers-len(ws.workers))...)
	}
	return ws.workers[:workers]
}

// winogradMinIn is the number of input channels below which a Winograd
// layer on the package's kernels uses the implicit-GEMM im2col engine
// instead: with K = In, the 16 products would be too thin to run the
// kernel efficiently (VGG16's first layer has 3).
const winogradMinIn = 8

// autoAlgorithmBytes is the size of F(4x4, 3x3)'s transformed weights
// (36 x In x Out floats) above which Auto uses F(2x2, 3x3): the
// products stream the weights from memory once per band, and for the
// widest layers at small batches (VGG16's 28x28 and 14x14 layers, 256 or
// 512 channels in and 512 out) that traffic costs more than F(4x4) saves
// in arithmetic; F(2x2)'s weights are 16/36 as large.
const autoAlgorithmBytes = 16 << 20

// autoAlgorithm is the algorithm Auto selects for a layer: im2col with
// a caller's BLAS, else F(4x4, 3x3) unless its weights exceed
// autoAlgorithmBytes, then F(2x2, 3x3). (Layers with fewer than
// winogradMinIn input channels then run the implicit-GEMM im2col.)
func autoAlgorithm(in, out int, packageKernels bool) Algorithm {
	switch {
	case !packageKernels:
		return Im2col
	case 36*4*in*out > autoAlgorithmBytes:
		return Winograd
	}
	return Winograd4x4
}

// NewConv returns the layer s describes, with its engine chosen and its
// weights copied (packed or transformed for the engine). It returns an
// error if s is inconsistent: In or Out not positive, Weight or Bias of
// the wrong length, negative Workers or an unknown Algorithm.
func NewConv(s ConvSpec) (*Conv, error) {
	if s.In <= 0 || s.Out <= 0 {
		return nil, fmt.Errorf("invalid channel counts in=%d out=%d", s.In, s.Out)
	}
	if len(s.Weight) != s.Out*s.In*9 {
		return nil, fmt.Errorf("weight has %d values, want %d (out %d x in %d x 3 x 3)", len(s.Weight), s.Out*s.In*9, s.Out, s.In)
	}
	if len(s.Bias) != s.Out {
		return nil, fmt.Errorf("bias has %d values, want %d", len(s.Bias), s.Out)
	}
	if s.Workers < 0 {
		return nil, fmt.Errorf("negative Workers %d", s.Workers)
	}
	if s.Algorithm < Auto || s.Algorithm > Winograd4x4 {
		return nil, fmt.Errorf("unknown algorithm %d", int(s.Algorithm))
	}
	l := convLayer{
		in: s.In, out: s.Out,
		bias: append([]float32(nil), s.Bias...),
		relu: s.ReLU, pool: s.Pool,
		workers: s.Workers,
	}
	kernels := s.BLAS == nil
	algo := s.Algorithm
	if algo == Auto {
		algo = autoAlgorithm(s.In, s.Out, kernels)
	}
	var eng convEngine
	switch {
	case kernels && (algo == Im2col || s.In < winogradMinIn):
		eng = newImplicitIm2col(l, s.Weight)
	case kernels && algo == Winograd4x4:
		eng = newWinogradPacked(l, s.Weight, 4)
	case kernels:
		eng = newWinogradPacked(l, s.Weight, 2)
	case algo == Winograd || algo == Winograd4x4:
		eng = &winogradBLAS{convLayer: l, wino: winogradWeights(s.Weight, s.Out, s.In), impl: s.BLAS}
	default:
		eng = &im2colBLAS{convLayer: l, weight: append([]float32(nil), s.Weight...), impl: s.BLAS}
	}
	return &Conv{convLayer: l, eng: eng}, nil
}

// In returns the number of input channels.
func (l *convLayer) In() int { return l.in }

// Out returns the number of output channels.
func (l *convLayer) Out() int { return l.out }

// OutputSize returns the height and width of the output for an input of
// h x w pixels: h x w, or h/2 x w/2 (rounded down) with pooling.
func (l *convLayer) OutputSize(h, w int) (oh, ow int) {
	if l.pool {
		return h / 2, w / 2
	}
	return h, w
}

// Forward computes the layer on the n images of In x h x w floats stored
// one after another in x, writing the n x Out x oh x ow result (see
// OutputSize) into dst, with the scratch buffers of ws or, if ws is nil,
// with buffers the Conv keeps for reuse. The caller checks that n, h and
// w are positive and the lengths of dst and x (style.Conv.ForwardTo
// does); dst must not overlap x.
//
// Forward panics, on the implicit-GEMM im2col engine, if a band of rows
// is beyond its 32-bit offsets (In x 3 x (w+2) floats of 2^31 or more).
func (c *Conv) Forward(dst, x []float32, n, h, w int, ws *Workspace) {
	if oh, ow := c.OutputSize(h, w); oh == 0 || ow == 0 {
		return
	}
	if ws != nil {
		c.eng.forward(dst, x, n, h, w, ws)
		return
	}
	c.freeMu.Lock()
	if k := len(c.free); k > 0 {
		ws = c.free[k-1]
		c.free = c.free[:k-1]
	}
	c.freeMu.Unlock()
	if ws == nil {
		ws = new(Workspace)
	}
	c.eng.forward(dst, x, n, h, w, ws)
	c.freeMu.Lock()
	c.free = append(c.free, ws)
	c.freeMu.Unlock()
}

// convMinParallelFlops is the amount of work below which a forward pass
// runs on the calling goroutine.
const convMinParallelFlops = 4 << 20

// parallelism returns the number of goroutines a pass over n images of
// pixels computed output pixels each may use: Workers (0: GOMAXPROCS),
// or 1 for less than convMinParallelFlops of work.
func (l *convLayer) parallelism(n, pixels int) int {
	if flops := 2 * int64(n) * int64(l.out) * int64(l.in*9) * int64(pixels); flops < convMinParallelFlops {
		return 1
	}
	return Workers(l.workers)
}

// convBandBudget bounds the im2col buffer of one band of the BLAS
// engines, in floats (4 MiB), so that scratch memory stays small and the
// band fits in the last-level cache.
const convBandBudget = 1 << 20

// convMinTasks is the number of tasks per image below which the output
// channels are split too, so that a batch-1 pass on a small late layer
// (one band) still keeps several cores busy with a single-threaded BLAS.
const convMinTasks = 4

// outChunks splits the output channels into oc chunks of osz channels
// (the last may be smaller) when the image has fewer than convMinTasks
// bands. Each chunk repeats the band's im2col or input transform, which is
// cheap next to its GEMM. The split depends on the shape only.
func (l *convLayer) outChunks(nb int) (oc, osz int) {
	oc = 1
	if nb < convMinTasks {
		oc = max(1, min((convMinTasks+nb-1)/nb, l.out/64))
	}
	osz = (l.out + oc - 1) / oc
	oc = (l.out + osz - 1) / osz
	return oc, osz
}

// bandFunc computes output rows y0..y1 of output channels o0..o1 of one
// image: src is In x h x w, dst is Out x oh x ow.
type bandFunc func(dst, src []float32, h, w, y0, y1, o0, o1 int, s *convScratch)

// forwardBands runs the tasks of a BLAS engine: for each of the n
// images, nb bands of rows rows (of the hc computed rows; the last band
// may be shorter) times oc chunks of osz output channels, each computed
// by band with a worker's scratch of at least colN and outN floats.
func (l *convLayer) forwardBands(dst, x []float32, n, h, w, hc, rows, nb, oc, osz, colN, outN int, band bandFunc, ws *Workspace) {
	oh, ow := l.OutputSize(h, w)
	tasks := n * nb * oc
	workers := min(l.parallelism(n, hc*w), tasks)
	scratch := ws.scratch(workers)
	for i := range scratch {
		scratch[i].grow(colN, outN)
	}
	For(workers, tasks, func(wk, t int) {
		img, b, j := t/(nb*oc), t/oc%nb, t%oc
		y0 := b * rows
		y1 := min(y0+rows, hc)
		o0 := j * osz
		o1 := min(o0+osz, l.out)
		band(dst[img*l.out*oh*ow:(img+1)*l.out*oh*ow], x[img*l.in*h*w:(img+1)*l.in*h*w], h, w, y0, y1, o0, o1, &scratch[wk])
	})
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

// winogradWeights returns the transformed weights U = G g G^T of
// F(2x2, 3x3) (see conv_winograd.go), laid out as 16 matrices of out x in
// (position-major), computed in float64 and rounded once. Both Winograd
// F(2x2) engines use them.
func winogradWeights(weight []float32, out, in int) []float32 {
	u := make([]float32, 16*out*in)
	for o := range out {
		for i := range in {
			g := weight[(o*in+i)*9 : (o*in+i)*9+9]
			// t = G g: 4x3.
			var t [4][3]float64
			for c := range 3 {
				g0, g1, g2 := float64(g[c]), float64(g[3+c]), float64(g[6+c])
				t[0][c] = g0
				t[1][c] = (g0 + g1 + g2) / 2
				t[2][c] = (g0 - g1 + g2) / 2
				t[3][c] = g2
			}
			// U = t G^T: 4x4.
			for r := range 4 {
				t0, t1, t2 := t[r][0], t[r][1], t[r][2]
				row := [4]float64{t0, (t0 + t1 + t2) / 2, (t0 - t1 + t2) / 2, t2}
				for c := range 4 {
					u[((r*4+c)*out+o)*in+i] = float32(row[c])
				}
			}
		}
	}
	return u
}

// The packed weights of the kernel engines.

// convKC is the largest depth of one packed block. The kernels are tuned
// for 512; allowing a little more keeps K = 9*64+1 = 577 in one block and
// splits the deeper layers into equal blocks of 577.
const convKC = 640

// convPacked is a weight matrix (rows x k, row-major) packed for one
// kernel: depth blocks of kb (the last may be shorter), each holding the
// mp row panels of mr rows (zero-padded) one after another.
type convPacked struct {
	kern gemmKernel
	rows int
	k    int
	kb   int
	mp   int
	a    []float32
	bias []float32 // im2col engine: the bias, zero-padded to mp*mr rows
}

// newConvPacked packs the rows x k row-major matrix w (leading dimension
// ld) for the kernel kn.
func newConvPacked(kn gemmKernel, w []float32, rows, k, ld int) *convPacked {
	nkb := (k + convKC - 1) / convKC
	kb := (k + nkb - 1) / nkb
	mp := (rows + kn.mr - 1) / kn.mr
	p := &convPacked{kern: kn, rows: rows, k: k, kb: kb, mp: mp, a: make([]float32, mp*kn.mr*k)}
	for p0 := 0; p0 < k; p0 += kb {
		kbb := min(kb, k-p0)
		gemmPack(p.a[p0*mp*kn.mr:(p0+kbb)*mp*kn.mr], w, ld, false, 0, rows, p0, kbb, kn.mr)
	}
	return p
}

// panel returns row panel t of the depth block starting at p0.
func (p *convPacked) panel(p0, t int) []float32 {
	mr := p.kern.mr
	kbb := min(p.kb, p.k-p0)
	off := p0*p.mp*mr + t*kbb*mr
	return p.a[off : off+kbb*mr]
}

func growF32(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// convLd returns the leading dimension, at least n floats, of a product
// written by the kernel: rows 4 KiB apart (or nearly) would fall into the
// same L1 sets, so such strides are moved away from multiples of 4 KiB.
func convLd(n int) int {
	if n < 1024 {
		return n
	}
	for {
		if r := n * 4 % 4096; r >= 512 && r <= 3584 {
			return n
		}
		n += 16
	}
}
