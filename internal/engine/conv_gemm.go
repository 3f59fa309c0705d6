package engine

import (
	"fmt"
	"math"
)

// The general convolution engine: any square kernel, stride and zero
// padding, on this package's kernels, as an implicit GEMM with the
// weights (Out x In·k·k) packed once by NewGEMMConv. It generalises the
// implicit-GEMM im2col of conv_implicit.go (3x3, stride 1, padding 1)
// to the layers of a residual network: the 7x7 stride-2 stem, 3x3
// convolutions at stride 1 or 2, and 1x1 convolutions at any stride,
// with a residual added before the ReLU. 1x1 convolutions without
// padding, plain GEMMs, take the pointwise path of conv_pointwise.go;
// the others are computed in bands through a slab, as follows.
//
// # Strides as phases
//
// A band's input is copied once into a slab. With stride s, the slab
// holds each input channel as p² phase planes, p = min(k, s): phase
// (py, px) row R, column X is input pixel (s·R + py − pad, s·X + px −
// pad), zero outside the image. Tap (ky, kx) of output pixel (y, x)
// reads input (s·y + ky − pad, s·x + kx − pad), which is phase
// (ky mod s, kx mod s) at row y + ⌊ky/s⌋, column x + ⌊kx/s⌋: along a
// row of outputs, consecutive pixels of one phase. So, as for stride 1,
// every row of the implicit im2col matrix is a fixed offset into the
// slab (gemmConvOffsets) plus the output's position q = R·wp + x on a
// grid of wp = ow + ⌊(k−1)/s⌋ columns, and the indirect kernel reads nr
// consecutive q as one B row in place. The ⌊(k−1)/s⌋ extra columns of
// each grid row are computed and discarded.
//
// # Bands across images
//
// The n·oh output rows of a batch are cut into bands of consecutive
// rows, which may span images: each image's part of a band (a segment)
// takes its rows plus hr = ⌊(k−1)/s⌋ halo rows in the slab, and the
// outputs of the halo rows are discarded.
//
// The last depth block's kernel call adds the bias and applies the ReLU
// (or, with a residual, the copy of the band into dst adds the residual
// and applies the ReLU). Every output value is the same sequence of
// kernel operations whatever its band, lane or worker (the depth
// blocking depends on the layer only), so results are bit-identical for
// any Workers and any batch composition.

// GEMMConvSpec describes a convolution layer for NewGEMMConv.
type GEMMConvSpec struct {
	In, Out int
	// Kernel is the height and width of the kernel, Stride the step
	// between output pixels in both directions and Pad the zero padding
	// on every side of the input.
	Kernel, Stride, Pad int
	Weight              []float32 // Out x In x Kernel x Kernel (PyTorch's OIHW order); not retained
	Bias                []float32 // Out; not retained
	ReLU                bool      // max(0, x) after the bias and the residual, if any
	// Workers bounds the goroutines of a forward pass; 0 means
	// GOMAXPROCS at the time of the pass.
	Workers int
}

// GEMMConv is a convolution layer with a square kernel, any stride and
// zero padding, a bias per output channel and optionally a residual
// input and a ReLU, on float32 tensors in N,C,H,W order, computed as an
// implicit GEMM on the package's kernels. A GEMMConv is immutable after
// NewGEMMConv and safe for concurrent use.
type GEMMConv struct {
	in, out              int
	kernel, stride, pad  int
	ps                   int // phases per axis: min(kernel, stride)
	relu                 bool
	workers              int
	packed               *convPacked // the out x in·k·k weights, and the bias
	minParallelPerOutput int64       // flops per output pixel, for the parallelism threshold
}

// NewGEMMConv returns the layer s describes, with its weights packed for
// the active GEMM kernel. It returns an error if s is inconsistent: In,
// Out, Kernel or Stride not positive, Pad negative or not smaller than
// Kernel, Weight or Bias of the wrong length, or negative Workers.
func NewGEMMConv(s GEMMConvSpec) (*GEMMConv, error) {
	switch {
	case s.In <= 0 || s.Out <= 0:
		return nil, fmt.Errorf("invalid channel counts in=%d out=%d", s.In, s.Out)
	case s.Kernel <= 0 || s.Stride <= 0:
		return nil, fmt.Errorf("invalid kernel size %d or stride %d", s.Kernel, s.Stride)
	case s.Pad < 0 || s.Pad >= s.Kernel:
		return nil, fmt.Errorf("padding %d outside [0, %d)", s.Pad, s.Kernel)
	case s.Workers < 0:
		return nil, fmt.Errorf("negative Workers %d", s.Workers)
	}
	k := s.In * s.Kernel * s.Kernel
	if len(s.Weight) != s.Out*k {
		return nil, fmt.Errorf("weight has %d values, want %d (out %d x in %d x %d x %d)", len(s.Weight), s.Out*k, s.Out, s.In, s.Kernel, s.Kernel)
	}
	if len(s.Bias) != s.Out {
		return nil, fmt.Errorf("bias has %d values, want %d", len(s.Bias), s.Out)
	}
	p := newConvPacked(gemmKernels.active, s.Weight, s.Out, k, k)
	p.bias = make([]float32, p.mp*p.kern.mr)
	copy(p.bias, s.Bias)
	return &GEMMConv{
		in: s.In, out: s.Out,
		kernel: s.Kernel, stride: s.Stride, pad: s.Pad,
		ps:   min(s.Kernel, s.Stride),
		relu: s.ReLU, workers: s.Workers,
		packed:               p,
		minParallelPerOutput: 2 * int64(s.Out) * int64(k),
	}, nil
}

// In returns the number of input channels.
func (c *GEMMConv) In() int { return c.in }

// Out returns the number of output channels.
func (c *GEMMConv) Out() int { return c.out }

// OutputSize returns the height and width of the output for an input of
// h x w pixels: ⌊(h + 2·Pad − Kernel)/Stride⌋ + 1, and the same for w.
// They are zero or negative when the padded input is smaller than the
// kernel.
func (c *GEMMConv) OutputSize(h, w int) (oh, ow int) {
	return gemmConvOutputLen(h, c.kernel, c.stride, c.pad), gemmConvOutputLen(w, c.kernel, c.stride, c.pad)
}

func gemmConvOutputLen(n, k, s, p int) int {
	if n+2*p < k {
		return 0
	}
	return (n+2*p-k)/s + 1
}

// gemmConvPlan is the split of one forward pass: the output grid, the
// bands of output rows and the chunks of weight row panels.
type gemmConvPlan struct {
	n, h, w int
	oh, ow  int
	wp, hr  int // grid columns, halo rows (see the file comment)
	rows    int // output rows per band, of the n·oh of the batch
	nb      int // bands
	plane   int // floats per slab plane
	oc, tsz int // chunks of row panels, panels per chunk
	workers int
}

// gemmConvSlabFloats bounds a band's slab, in floats (512 KiB), so that
// the input rows the kernel reads in place stay in the L2 cache.
const gemmConvSlabFloats = 128 << 10

// plan splits a pass over n images of h x w pixels. The bands and chunks
// depend on the shape and the number of workers; the results do not (see
// the file comment).
func (c *GEMMConv) plan(n, h, w int) gemmConvPlan {
	pl := gemmConvPlan{n: n, h: h, w: w}
	pl.oh, pl.ow = c.OutputSize(h, w)
	pl.hr = (c.kernel - 1) / c.stride
	pl.wp = pl.ow + pl.hr
	g := n * pl.oh
	phases := c.ps * c.ps
	// About convBandPixels output pixels per band, fewer if the slab
	// would outgrow its budget.
	rows := max(1, (convBandPixels+pl.ow/2)/pl.ow)
	rows = max(1, min(rows, gemmConvSlabFloats/(c.in*phases*pl.wp)-pl.hr))
	pl.nb = (g + rows - 1) / rows
	pl.workers = Workers(c.workers)
	if int64(n)*int64(pl.oh*pl.ow)*c.minParallelPerOutput < convMinParallelFlops {
		pl.workers = 1
	}
	// A band count that is a multiple of the workers keeps them all busy
	// to the end.
	if w := pl.workers; w > 1 && pl.nb%w != 0 && pl.nb < 8*w {
		pl.nb = (pl.nb + w - 1) / w * w
	}
	pl.nb = min(pl.nb, g)
	pl.rows = (g + pl.nb - 1) / pl.nb
	pl.nb = (g + pl.rows - 1) / pl.rows
	// A band of rows rows spans at most this many images, each adding
	// hr halo rows to the slab.
	segs := min(n, (pl.rows+pl.oh-2)/pl.oh+1)
	pl.plane = (pl.rows + segs*pl.hr) * pl.wp
	// Each chunk of output channels repeats its band's copy into the
	// slab, which is cheap next to its products.
	pl.oc, pl.tsz = rowChunks(c.packed.mp, pl.nb, pl.workers)
	pl.workers = max(1, min(pl.workers, pl.nb*pl.oc))
	return pl
}

// Forward computes the layer on the n images of In x h x w floats stored
// one after another in x, writing the n x Out x oh x ow result (see
// OutputSize) into dst. If residual is set, dst holds on entry n x Out x
// oh x ow values (a residual connection) that are added to the output
// before the ReLU: the sum is formed in place. dst must not overlap x.
// The scratch buffers come from ws, which may be shared with other
// layers run one after another; it must not be nil.
//
// Forward panics, with a message starting "style: ", if n, h or w is not
// positive, if the padded input is smaller than the kernel, if x or dst
// is too short, or if a band is beyond the kernels' 32-bit offsets.
func (c *GEMMConv) Forward(dst, x []float32, n, h, w int, residual bool, ws *Workspace) {
	if n <= 0 || h <= 0 || w <= 0 {
		panic(fmt.Sprintf("style: GEMMConv.Forward: invalid batch %d x %d x %d", n, h, w))
	}
	oh, ow := c.OutputSize(h, w)
	if oh <= 0 || ow <= 0 {
		panic(fmt.Sprintf("style: GEMMConv.Forward: %dx%d input smaller than the %dx%d kernel with padding %d", h, w, c.kernel, c.kernel, c.pad))
	}
	if len(x) < n*c.in*h*w {
		panic(fmt.Sprintf("style: GEMMConv.Forward: input has %d values, want %d", len(x), n*c.in*h*w))
	}
	if outN := n * c.out * oh * ow; len(dst) < outN {
		panic(fmt.Sprintf("style: GEMMConv.Forward: output has %d values, want %d", len(dst), outN))
	}
	if c.kernel == 1 && c.pad == 0 {
		c.forwardPointwise(dst, x, n, h, w, residual, ws)
		return
	}
	pl := c.plan(n, h, w)
	nr := c.packed.kern.nr
	slabN := c.in*c.ps*c.ps*pl.plane + nr
	if slabN > math.MaxInt32 {
		panic(fmt.Sprintf("style: GEMMConv.Forward: %d channels of %dx%d images are too large for the kernels' 32-bit offsets", c.in, h, w))
	}
	g := n * pl.oh
	rows := func(b int) (g0, g1 int) { return b * pl.rows, min((b+1)*pl.rows, g) }
	scratch := ws.scratch(pl.workers)
	if pl.oc == 1 {
		for i := range scratch {
			c.grow(&scratch[i].packedScratch, &pl, slabN)
		}
		For(pl.workers, pl.nb, func(wk, b int) {
			s := &scratch[wk].packedScratch
			g0, g1 := rows(b)
			c.fillBand(s.slab, x, &pl, g0, g1, 0, c.in)
			c.band(dst, s.slab, residual, &pl, g0, g1, 0, c.packed.mp, s)
		})
		return
	}
	// Few bands, split by output channels too (small late layers at
	// batch 1): the bands' slabs are filled once, by all the workers, and
	// shared by the chunks, which only read them.
	for i := range scratch {
		c.grow(&scratch[i].packedScratch, &pl, 0)
	}
	s0 := &scratch[0].packedScratch
	s0.b = growF32(s0.b, pl.nb*slabN)
	slabs := s0.b
	chunks := max(1, min(c.in, (4*pl.workers+pl.nb-1)/pl.nb))
	For(pl.workers, pl.nb*chunks, func(_, t int) {
		b, k := t/chunks, t%chunks
		g0, g1 := rows(b)
		c.fillBand(slabs[b*slabN:(b+1)*slabN], x, &pl, g0, g1, k*c.in/chunks, (k+1)*c.in/chunks)
	})
	For(pl.workers, pl.nb*pl.oc, func(wk, t int) {
		b, j := t/pl.oc, t%pl.oc
		t0 := j * pl.tsz
		g0, g1 := rows(b)
		c.band(dst, slabs[b*slabN:(b+1)*slabN], residual, &pl, g0, g1, t0, min(t0+pl.tsz, c.packed.mp), &scratch[wk].packedScratch)
	})
}

// grow sizes the buffers of s for any band of pl, with a slab of slabN
// floats, and fills its offsets.
func (c *GEMMConv) grow(s *packedScratch, pl *gemmConvPlan, slabN int) {
	pk := c.packed
	nr, mr := pk.kern.nr, pk.kern.mr
	s.slab = growF32(s.slab, slabN)
	npad := (pl.plane + nr - 1) / nr * nr
	s.c = growF32(s.c, pl.tsz*mr*convLd(npad))
	s.off = gemmConvOffsets(s.off, c.in, c.kernel, c.stride, c.ps, pl.plane, pl.wp)
}

// gemmConvOffsets returns off (reallocated if too small) filled with the
// slab offsets of the rows of the implicit im2col matrix: row
// (ci·k + ky)·k + kx (the OIHW weight order) is phase (ky mod s, kx mod
// s) of channel ci, shifted by ⌊ky/s⌋ grid rows of wp floats and ⌊kx/s⌋
// columns. Phase planes are plane floats apart, ps² per channel.
func gemmConvOffsets(off []int32, in, k, s, ps, plane, wp int) []int32 {
	off = off[:0]
	for ci := range in {
		for ky := range k {
			for kx := range k {
				ph := ci*ps*ps + (ky%s)*ps + kx%s
				off = append(off, int32(ph*plane+(ky/s)*wp+kx/s))
			}
		}
	}
	return off
}

// fillBand fills input channels ci0..ci1 of the slab of output rows
// g0..g1 of the batch (image after image, oh rows each), segment by
// segment (see fillSegment).
func (c *GEMMConv) fillBand(slab, x []float32, pl *gemmConvPlan, g0, g1, ci0, ci1 int) {
	sr := 0
	for g := g0; g < g1; {
		img, oy := g/pl.oh, g%pl.oh
		cnt := min(g1-g, pl.oh-oy)
		c.fillSegment(slab, x[img*c.in*pl.h*pl.w:(img+1)*c.in*pl.h*pl.w], pl, oy, cnt+pl.hr, sr, ci0, ci1)
		sr += cnt + pl.hr
		g += cnt
	}
}

// bandGridRows returns the grid rows of the slab of output rows g0..g1:
// each segment's rows and its halo rows.
func (c *GEMMConv) bandGridRows(pl *gemmConvPlan, g0, g1 int) int {
	sr := 0
	for g := g0; g < g1; {
		cnt := min(g1-g, pl.oh-g%pl.oh)
		sr += cnt + pl.hr
		g += cnt
	}
	return sr
}

// band computes output rows g0..g1 of the batch for the output channels
// of weight row panels t0..t1 from the band's filled slab.
func (c *GEMMConv) band(dst, slab []float32, residual bool, pl *gemmConvPlan, g0, g1, t0, t1 int, s *packedScratch) {
	pk := c.packed
	kn := &pk.kern
	mr, nr := kn.mr, kn.nr
	sr := c.bandGridRows(pl, g0, g1)
	// The band's outputs on the grid, halo rows included: the last
	// valid one is column ow-1 of the last segment's last row.
	npix := (sr-pl.hr-1)*pl.wp + pl.ow
	np := (npix + nr - 1) / nr
	ldc := convLd(np * nr)
	prod := s.c[:(t1-t0)*mr*ldc]
	var beta float32
	for p0 := 0; p0 < pk.k; p0 += pk.kb {
		kbb := min(pk.kb, pk.k-p0)
		off := s.off[p0 : p0+kbb]
		maxOff := maxOffset(off)
		// The last depth block adds the bias and, without a residual,
		// applies the ReLU as it stores the tile.
		last := p0+kbb == pk.k
		relu := last && c.relu && !residual
		for j := range np {
			// All row panels of the chunk run on one panel of outputs
			// while its slab rows are in cache.
			b := slab[j*nr:]
			for t := t0; t < t1; t++ {
				var bias []float32
				if last {
					bias = pk.bias[t*mr : (t+1)*mr]
				}
				kn.callInd(kbb, pk.panel(p0, t), b, off, maxOff, prod[(t-t0)*mr*ldc+j*nr:], ldc, beta, bias, relu)
			}
		}
		beta = 1
	}
	// Copy the valid outputs out, segment by segment.
	o0, o1 := t0*mr, min(t1*mr, c.out)
	hw := pl.oh * pl.ow
	sr = 0
	for g := g0; g < g1; {
		img, oy := g/pl.oh, g%pl.oh
		cnt := min(g1-g, pl.oh-oy)
		base := img*c.out*hw + oy*pl.ow
		for o := o0; o < o1; o++ {
			src := prod[(o-o0)*ldc+sr*pl.wp:]
			d := dst[base+o*hw : base+o*hw+cnt*pl.ow]
			if !residual {
				for r := range cnt {
					copy(d[r*pl.ow:(r+1)*pl.ow], src[r*pl.wp:r*pl.wp+pl.ow])
				}
				continue
			}
			for r := range cnt {
				addStore(d[r*pl.ow:(r+1)*pl.ow], src[r*pl.wp:r*pl.wp+pl.ow], c.relu)
			}
		}
		sr += cnt + pl.hr
		g += cnt
	}
}

// rowChunks splits mp row panels into oc chunks of tsz (the last may be
// smaller) so that nb column tasks times oc make at least four tasks per
// worker where the row panels allow (small late layers at batch 1): the
// workers take tasks as they finish, so the last round leaves them idle
// for at most about a quarter of a task each.
func rowChunks(mp, nb, workers int) (oc, tsz int) {
	oc = 1
	if workers > 1 && nb < 4*workers {
		oc = max(1, min((4*workers+nb-1)/nb, mp/4))
	}
	tsz = (mp + oc - 1) / oc
	return (mp + tsz - 1) / tsz, tsz
}

// maxOffset returns the largest of off (which is not empty).
func maxOffset(off []int32) int {
	m := off[0]
	for _, o := range off[1:] {
		m = max(m, o)
	}
	return int(m)
}

// addStore sets d[i] = a[i] + d[i], then max(·, 0) if relu.
func addStore(d, a []float32, relu bool) {
	a = a[:len(d)]
	if relu {
		for i, v := range a {
			d[i] = relu32(v + d[i])
		}
		return
	}
	for i, v := range a {
		d[i] = v + d[i]
	}
}

// fillSegment writes grid rows sr .. sr+rows of the phase planes of
// channels ci0..ci1 of the slab from one image src (In x h x w): grid row
// sr+j holds output row oy+j's inputs, that is input rows s·(oy+j) + py −
// pad of phase (py, px).
func (c *GEMMConv) fillSegment(slab, src []float32, pl *gemmConvPlan, oy, rows, sr, ci0, ci1 int) {
	s, h, w, wp := c.stride, pl.h, pl.w, pl.wp
	for ci := ci0; ci < ci1; ci++ {
		img := src[ci*h*w : (ci+1)*h*w]
		for py := range c.ps {
			for px := range c.ps {
				plane := slab[((ci*c.ps+py)*c.ps+px)*pl.plane:]
				x0 := px - c.pad
				// Grid columns lo..hi read inside the image.
				lo := 0
				if x0 < 0 {
					lo = (-x0 + s - 1) / s
				}
				hi := min(wp, (w-1-x0)/s+1)
				if w-1-x0 < 0 {
					hi = 0
				}
				for j := range rows {
					d := plane[(sr+j)*wp : (sr+j+1)*wp]
					y := s*(oy+j) + py - c.pad
					if y < 0 || y >= h || lo >= hi {
						clear(d)
						continue
					}
					row := img[y*w : (y+1)*w]
					clear(d[:lo])
					switch s {
					case 1:
						copy(d[lo:hi], row[lo+x0:hi+x0])
					case 2:
						dd := d[lo:hi]
						sr := row[2*lo+x0 : 2*(hi-1)+x0+1]
						for i := range dd {
							dd[i] = sr[2*i]
						}
					default:
						for xx := lo; xx < hi; xx++ {
							d[xx] = row[s*xx+x0]
						}
					}
					clear(d[hi:])
				}
			}
		}
	}
}
