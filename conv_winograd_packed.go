package style

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The packed Winograd F(2x2, 3x3) path (see conv_packed.go for the packed
// path in general). A band is a range of 2x2 output tiles of one image, a
// multiple of the kernel's nr tiles long; its input transform writes the
// 16 matrices V_p (In x tiles) straight into the kernel's B panel layout,
// the 16 products M_p = U_p V_p run on the weights U_p packed at NewConv,
// and the output transform adds the bias and applies ReLU and pooling.

// winogradMinIn is the number of input channels below which a Winograd
// layer uses the packed im2col path instead: with K = In, the 16 products
// would be too thin to run the kernel efficiently (VGG16's first layer
// has 3).
const winogradMinIn = 8

// winogradBandFloats bounds the transformed input of a band (16 x In x
// tiles floats, 4 MiB), so that it stays in the last-level cache.
const winogradBandFloats = 1 << 20

// packWinogradWeights packs the 16 transformed weight matrices U_p
// (Out x In each) for the active kernel.
func packWinogradWeights(w ConvWeights) []*convPacked {
	u := winogradWeights(w.Weight, w.Out, w.In)
	pk := make([]*convPacked, 16)
	for p := range pk {
		pk[p] = newConvPacked(gemmActive, u[p*w.Out*w.In:(p+1)*w.Out*w.In], w.Out, w.In, w.In)
	}
	return pk
}

// winogradTiles returns the tile grid of an h x w image: th rows of tw
// tiles (a partial last row or column when not pooling; an odd last row
// or column is dropped when pooling).
func (c *Conv) winogradTiles(h, w int) (th, tw int) {
	if c.pool {
		return h / 2, w / 2
	}
	return (h + 1) / 2, (w + 1) / 2
}

// winogradPackedBands splits the th*tw tiles of an image into nb bands of
// tsz tiles (a multiple of nr; the last band may be shorter): small enough
// for the cache, and at least two per image when there are enough tiles
// so that batch-1 passes use two cores. It depends on the shape only.
func (c *Conv) winogradPackedBands(th, tw int) (nb, tsz int) {
	nr := c.upk[0].kern.nr
	g := th * tw
	tmax := max(nr, winogradBandFloats/(16*c.in)/nr*nr)
	nb = max((g+tmax-1)/tmax, min(2, (g+nr-1)/nr))
	tsz = ((g+nb-1)/nb + nr - 1) / nr * nr
	nb = (g + tsz - 1) / tsz
	return nb, tsz
}

// forwardWinogradPacked is forward for the packed Winograd path.
func (c *Conv) forwardWinogradPacked(dst, x []float32, n, h, w int, ws *convWorkspace) {
	oh, ow := c.OutputSize(h, w)
	th, tw := c.winogradTiles(h, w)
	if th == 0 || tw == 0 {
		return
	}
	nb, tsz := c.winogradPackedBands(th, tw)
	tasks := n * nb
	workers := c.workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if flops := 2 * int64(n) * int64(c.out) * int64(c.in*9) * int64(h*w); flops < convMinParallelFlops {
		workers = 1
	}
	workers = max(1, min(workers, tasks))
	if len(ws.workers) < workers {
		ws.workers = append(ws.workers, make([]convScratch, workers-len(ws.workers))...)
	}
	var next atomic.Int64
	run := func(s *packedScratch) {
		for {
			t := int(next.Add(1) - 1)
			if t >= tasks {
				return
			}
			img, b := t/nb, t%nb
			g0 := b * tsz
			g1 := min(g0+tsz, th*tw)
			c.winogradPackedBand(dst[img*c.out*oh*ow:(img+1)*c.out*oh*ow], x[img*c.in*h*w:(img+1)*c.in*h*w], h, w, tw, g0, g1, s)
		}
	}
	if workers <= 1 {
		run(&ws.workers[0].packedScratch)
		return
	}
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { run(&ws.workers[i].packedScratch) })
	}
	wg.Wait()
}

// fillSlabWide is fillSlab with slab rows of wp >= w+1 floats: column c
// of a slab row holds input column c-1, zero outside the image.
func fillSlabWide(slab, src []float32, in, h, w, y0, rows, wp int) {
	cols := min(w, wp-1)
	for ci := range in {
		plane := src[ci*h*w : (ci+1)*h*w]
		for r := range rows {
			d := slab[(ci*rows+r)*wp : (ci*rows+r+1)*wp]
			y := y0 + r
			if y < 0 || y >= h {
				clear(d)
				continue
			}
			d[0] = 0
			copy(d[1:1+cols], plane[y*w:y*w+cols])
			clear(d[1+cols:])
		}
	}
}

// winogradPackedBand computes tiles g0..g1 (row-major over the tw-wide
// tile grid) of every output channel of one image: src is In x h x w,
// dst is Out x oh x ow.
func (c *Conv) winogradPackedBand(dst, src []float32, h, w, tw, g0, g1 int, s *packedScratch) {
	kn := &c.upk[0].kern
	mr, nr := kn.mr, kn.nr
	in := c.in
	mp := c.upk[0].mp
	tiles := g1 - g0
	np := (tiles + nr - 1) / nr
	tpad := np * nr
	ty0, ty1 := g0/tw, (g1-1)/tw+1 // tile rows touched
	srows := 2*(ty1-ty0) + 2
	wp := 2*tw + 2
	s.slab = growF32(s.slab, in*srows*wp)
	fillSlabWide(s.slab, src, in, h, w, 2*ty0-1, srows, wp)
	vstride := in * tpad
	s.b = growF32(s.b, 16*vstride)
	s.c = growF32(s.c, 16*mp*mr*tpad)
	v, m := s.b, s.c
	kb := c.upk[0].kb

	// Input transform V = Bᵀ d B of every 4x4 patch, written into the
	// B panels: V_p[ci][g] is at v[p*vstride + c0*tpad + j*kbb*nr +
	// (ci-c0)*nr + l] for the depth block c0 .. c0+kbb holding ci and
	// g-g0 = j*nr + l.
	for c0 := 0; c0 < in; c0 += kb {
		kbb := min(kb, in-c0)
		for ci := c0; ci < c0+kbb; ci++ {
			plane := s.slab[ci*srows*wp : (ci+1)*srows*wp]
			ty, tx := g0/tw, g0%tw
			for g := range tiles {
				j, l := g/nr, g%nr
				o := c0*tpad + j*kbb*nr + (ci-c0)*nr + l
				r := 2 * (ty - ty0) * wp
				q0 := plane[r+2*tx : r+2*tx+4 : r+2*tx+4]
				q1 := plane[r+wp+2*tx : r+wp+2*tx+4 : r+wp+2*tx+4]
				q2 := plane[r+2*wp+2*tx : r+2*wp+2*tx+4 : r+2*wp+2*tx+4]
				q3 := plane[r+3*wp+2*tx : r+3*wp+2*tx+4 : r+3*wp+2*tx+4]
				var t [4][4]float32
				for k := range 4 {
					t[0][k] = q0[k] - q2[k]
					t[1][k] = q1[k] + q2[k]
					t[2][k] = q2[k] - q1[k]
					t[3][k] = q1[k] - q3[k]
				}
				for rr := range 4 {
					a0, a1, a2, a3 := t[rr][0], t[rr][1], t[rr][2], t[rr][3]
					p := 4 * rr
					v[p*vstride+o] = a0 - a2
					v[(p+1)*vstride+o] = a1 + a2
					v[(p+2)*vstride+o] = a2 - a1
					v[(p+3)*vstride+o] = a1 - a3
				}
				if tx++; tx == tw {
					tx = 0
					ty++
				}
			}
			// Zero the unused lanes of the last panel.
			if tiles < tpad {
				o := c0*tpad + (np-1)*kbb*nr + (ci-c0)*nr
				for p := range 16 {
					clear(v[p*vstride+o+tiles-(np-1)*nr : p*vstride+o+nr])
				}
			}
		}
	}

	// The 16 products M_p = U_p V_p, into m[p*mp*mr*tpad + row*tpad + g].
	mstride := mp * mr * tpad
	for p := range 16 {
		up := c.upk[p]
		vp := v[p*vstride : (p+1)*vstride]
		mpp := m[p*mstride : (p+1)*mstride]
		var beta float32
		for c0 := 0; c0 < in; c0 += kb {
			kbb := min(kb, in-c0)
			for j := range np {
				bp := vp[c0*tpad+j*kbb*nr:]
				for t := range mp {
					kn.call(kbb, up.panel(c0, t), bp, mpp[t*mr*tpad+j*nr:], tpad, 1, beta)
				}
			}
			beta = 1
		}
	}

	// Output transform Y = Aᵀ M A, bias, ReLU, and pooling or clipping.
	oh, ow := c.OutputSize(h, w)
	for o := range c.out {
		b := c.bias[o]
		plane := dst[o*oh*ow : (o+1)*oh*ow]
		var mr16 [16][]float32
		for p := range 16 {
			mr16[p] = m[p*mstride+o*tpad : p*mstride+o*tpad+tiles]
		}
		ty, tx := g0/tw, g0%tw
		for g := range tiles {
			var r0, r1 [4]float32
			for k := range 4 {
				q0, q1, q2, q3 := mr16[k][g], mr16[4+k][g], mr16[8+k][g], mr16[12+k][g]
				r0[k] = q0 + q1 + q2
				r1[k] = q1 - q2 - q3
			}
			y00 := r0[0] + r0[1] + r0[2] + b
			y01 := r0[1] - r0[2] - r0[3] + b
			y10 := r1[0] + r1[1] + r1[2] + b
			y11 := r1[1] - r1[2] - r1[3] + b
			if c.pool {
				// The tile is exactly one pooling window; ReLU commutes
				// with the max.
				y := max(max(y00, y01), max(y10, y11))
				if c.relu {
					y = relu32(y)
				}
				plane[ty*ow+tx] = y
			} else {
				if c.relu {
					y00, y01, y10, y11 = relu32(y00), relu32(y01), relu32(y10), relu32(y11)
				}
				oy, ox := 2*ty, 2*tx
				plane[oy*w+ox] = y00
				if ox+1 < w {
					plane[oy*w+ox+1] = y01
				}
				if oy+1 < h {
					plane[(oy+1)*w+ox] = y10
					if ox+1 < w {
						plane[(oy+1)*w+ox+1] = y11
					}
				}
			}
			if tx++; tx == tw {
				tx = 0
				ty++
			}
		}
	}
}
