package engine

import (
	"fmt"
	"math"
)

// The implicit-GEMM im2col engine, on this package's kernels. Like the
// packed Winograd engine (conv_winograd_packed.go), it skips Sgemm and
// drives the GEMM micro-kernel itself, so that
//
//   - the constant weights are packed into the kernel's panel layout once,
//     in NewConv, instead of once per band and call (convPacked);
//   - the im2col matrix is never materialised: each band copies its input
//     rows once into a zero-bordered slab, and the indirect kernel reads
//     every row of the implicit im2col matrix in place from the slab
//     (an implicit GEMM), while Winograd's input transform writes its
//     products' B panels directly;
//   - the bias, ReLU and pooling run on the band while it is in cache;
//   - there is one level of parallelism: the conv's tasks run on the
//     workers and each task calls the single-threaded kernel, so the cores
//     are never oversubscribed by nested GEMM goroutines.
//
// Every output value is the same sequence of kernel operations whatever
// the band or worker split (the depth blocking depends on the layer only),
// so results stay bit-identical for any Workers and batch composition.

// implicitIm2col is the implicit-GEMM im2col engine. A task is a band
// of output rows of one image and a chunk of the weights' row panels.
type implicitIm2col struct {
	convLayer
	packed *convPacked // the out x 9*in weights, and the bias
}

// newImplicitIm2col packs weight as the out x 9*in matrix for the
// active GEMM kernel, with the bias padded to whole row panels (the
// kernel adds it with the last depth block).
func newImplicitIm2col(l convLayer, weight []float32) *implicitIm2col {
	k := l.in * 9
	p := newConvPacked(gemmKernels.active, weight, l.out, k, k)
	p.bias = make([]float32, p.mp*p.kern.mr)
	copy(p.bias, l.bias)
	return &implicitIm2col{convLayer: l, packed: p}
}

func (c *implicitIm2col) forward(dst, x []float32, n, h, w int, ws *Workspace) {
	oh, ow := c.OutputSize(h, w)
	hc, rows, nb, oc, tsz := c.packedBands(h, w)
	tasks := n * nb * oc
	workers := min(c.parallelism(n, hc*w), tasks)
	// Size every worker's buffers for the largest task first, so that
	// none reallocates them whichever tasks it is handed.
	scratch := ws.scratch(workers)
	for i := range scratch {
		c.packedGrow(&scratch[i].packedScratch, h, w, rows, tsz)
	}
	For(workers, tasks, func(wk, t int) {
		img, b, j := t/(nb*oc), t/oc%nb, t%oc
		y0 := b * rows
		y1 := min(y0+rows, hc)
		t0 := j * tsz
		t1 := min(t0+tsz, c.packed.mp)
		c.packedIm2colBand(dst[img*c.out*oh*ow:(img+1)*c.out*oh*ow], x[img*c.in*h*w:(img+1)*c.in*h*w], h, w, rows, y0, y1, t0, t1, &scratch[wk].packedScratch)
	})
}

// fillSlab copies rows y0-1 .. y0+rows of every channel of src (in x h x w)
// into slab as (rows+2) x (w+2) planes, plane floats apart, with a zero
// border, and zero rows outside the image.
func fillSlab(slab, src []float32, in, h, w, y0, rows, plane int) {
	wp := w + 2
	for ci := range in {
		img := src[ci*h*w : (ci+1)*h*w]
		for r := range rows + 2 {
			d := slab[ci*plane+r*wp : ci*plane+(r+1)*wp]
			y := y0 - 1 + r
			if y < 0 || y >= h {
				clear(d)
				continue
			}
			d[0] = 0
			copy(d[1:w+1], img[y*w:(y+1)*w])
			d[w+1] = 0
		}
	}
}

// im2colOffsets fills off with the offsets, in a slab of planes plane
// floats apart and rows w+2 floats wide, of the rows of the implicit
// im2col matrix: row ci*9+ky*3+kx is the input under tap (ky, kx) of
// channel ci. Output pixel (r, x) of a band sits at q = r*(w+2)+x of the
// padded grid, and its input under that tap at slab[off[row]+q], so a
// run of nr consecutive q is one contiguous B row for the indirect
// kernel. The offsets increase with the row.
func im2colOffsets(off []int32, in, w, plane int) []int32 {
	off = off[:0]
	wp := w + 2
	for ci := range in {
		for t := range 9 {
			off = append(off, int32(ci*plane+(t/3)*wp+t%3))
		}
	}
	return off
}

// poolRows max-pools rows x w values of src (rows even; row stride ld)
// into dst (rows/2 x w/2).
func poolRows(dst, src []float32, rows, w, ld int) {
	ow := w / 2
	for y := 0; y < rows/2; y++ {
		r0 := src[2*y*ld : 2*y*ld+2*ow]
		r1 := src[(2*y+1)*ld : (2*y+1)*ld+2*ow]
		d := dst[y*ow : y*ow+ow]
		for x := range d {
			d[x] = max(max(r0[2*x], r0[2*x+1]), max(r1[2*x], r1[2*x+1]))
		}
	}
}

// packedIm2colBand computes output rows y0..y1 of the output channels in
// row panels t0..t1 of one image with the packed weights: src is In x h x
// w, dst is Out x oh x ow. maxRows is the largest band of the layer, which
// sets the slab's plane stride so that the offsets in s.off serve every
// band.
func (c *implicitIm2col) packedIm2colBand(dst, src []float32, h, w, maxRows, y0, y1, t0, t1 int, s *packedScratch) {
	pk := c.packed
	kn := &pk.kern
	mr, nr := kn.mr, kn.nr
	rows := y1 - y0
	wp := w + 2
	plane := (maxRows + 2) * wp
	// The band's pixels on the padded grid: the two border columns of
	// each row are computed too and discarded.
	npix := (rows-1)*wp + w
	np := (npix + nr - 1) / nr
	npad := np * nr
	s.slab = growF32(s.slab, im2colSlabLen(c.in, plane, nr))
	fillSlab(s.slab, src, c.in, h, w, y0, rows, plane)
	ldc := convLd(npad)
	s.c = growF32(s.c, (t1-t0)*mr*ldc)
	var beta float32
	for p0 := 0; p0 < pk.k; p0 += pk.kb {
		kbb := min(pk.kb, pk.k-p0)
		off := s.off[p0 : p0+kbb]
		maxOff := int(off[kbb-1])
		// The last depth block adds the bias and applies ReLU (which
		// commutes with the max-pool) as it stores the tile.
		last := p0+kbb == pk.k
		for j := range np {
			// All row panels run on one panel of pixels while its
			// slab rows are in cache; the A panels of the chunk stay
			// in L2.
			b := s.slab[j*nr:]
			for t := t0; t < t1; t++ {
				var bias []float32
				if last {
					bias = pk.bias[t*mr : (t+1)*mr]
				}
				kn.callInd(kbb, pk.panel(p0, t), b, off, maxOff, s.c[(t-t0)*mr*ldc+j*nr:], ldc, beta, bias, last && c.relu)
			}
		}
		beta = 1
	}
	oh, ow := c.OutputSize(h, w)
	for o := t0 * mr; o < min(t1*mr, c.out); o++ {
		prod := s.c[(o-t0*mr)*ldc : (o-t0*mr)*ldc+npix]
		if c.pool {
			poolRows(dst[o*oh*ow+(y0/2)*ow:], prod, rows, w, wp)
			continue
		}
		for r := range rows {
			copy(dst[o*h*w+(y0+r)*w:o*h*w+(y0+r+1)*w], prod[r*wp:r*wp+w])
		}
	}
}

// im2colSlabLen is the length of a slab of in planes of plane floats,
// plus the slack that the last panel of pixels reads past the last plane
// (its lanes beyond the band are discarded).
func im2colSlabLen(in, plane, nr int) int {
	return in*plane + nr + 2
}

// packedBands splits the hc computed rows of an h x w image into bands of
// about convBandPixels output pixels (an even number of rows when
// pooling; the product of a band, up to 518 x 1792 floats, stays in L2), and the output row panels into chunks when there are too few
// bands to keep several cores busy. The split depends on the shape only.
func (c *implicitIm2col) packedBands(h, w int) (hc, rows, nb, oc, tsz int) {
	hc = h
	if c.pool {
		hc = h &^ 1
	}
	rows = max(1, (convBandPixels+w/2)/w)
	nb = max(1, (hc+rows-1)/rows)
	rows = (hc + nb - 1) / nb
	if c.pool && rows%2 == 1 {
		rows++
	}
	nb = (hc + rows - 1) / rows
	mp := c.packed.mp
	oc = 1
	if nb < convMinTasks {
		oc = max(1, min((convMinTasks+nb-1)/nb, mp/4))
	}
	tsz = (mp + oc - 1) / oc
	oc = (mp + tsz - 1) / tsz
	return hc, rows, nb, oc, tsz
}

// convBandPixels is the target number of output pixels of a band of the
// packed path: its packed input (up to 577 x 512 floats) and product stay
// in the L2 cache.
const convBandPixels = 1792

// packedGrow sizes the buffers of s for any band of at most rows rows of
// w pixels and tsz row panels, and fills its im2col offsets.
func (c *implicitIm2col) packedGrow(s *packedScratch, h, w, rows, tsz int) {
	pk := c.packed
	nr, mr := pk.kern.nr, pk.kern.mr
	wp := w + 2
	plane := (rows + 2) * wp
	npad := ((rows-1)*wp + w + nr - 1) / nr * nr
	s.slab = growF32(s.slab, im2colSlabLen(c.in, plane, nr))
	s.c = growF32(s.c, tsz*mr*convLd(npad))
	if !im2colOffsetsFit(c.in, plane, nr) {
		panic(fmt.Sprintf("style: Conv.ForwardTo: %d channels of %d-wide rows are too large for the packed path's 32-bit offsets", c.in, w))
	}
	if cap(s.off) < 9*c.in {
		s.off = make([]int32, 0, 9*c.in)
	}
	s.off = im2colOffsets(s.off, c.in, w, plane)
}

// im2colOffsetsFit reports whether every index into a slab of in planes
// of plane floats (see im2colSlabLen) fits the kernels' int32 offsets.
func im2colOffsetsFit(in, plane, nr int) bool {
	return int64(in)*int64(plane)+int64(nr)+2 <= math.MaxInt32
}
