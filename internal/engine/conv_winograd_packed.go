package engine

// The packed Winograd engine, F(2x2, 3x3) or F(4x4, 3x3) on this
// package's kernels (see conv_implicit.go for what driving the kernel
// directly brings, and conv_winograd.go for F(2x2, 3x3)). A band is a
// range of wm x wm output tiles, a multiple of the kernel's nr tiles long
// and possibly spanning images; its input transform writes the 16 or 36
// matrices V_p (In x tiles) straight into the kernel's B panel layout,
// the products M_p = U_p V_p run on the weights U_p packed at NewConv,
// and the output transform adds the bias and applies ReLU and pooling.

// F(4x4, 3x3): 6x6 input patches give 4x4 output tiles through 36
// products with K = In, 4x fewer multiply-adds than im2col (F(2x2, 3x3):
// 2.25x). The matrices are those of Lavin and
// Gray (interpolation points 0, ±1, ±2, ∞):
//
//	Bᵀ = [4  0 -5  0 1 0]   G = [ 1/4     0    0]   Aᵀ = [1 1  1 1  1 0]
//	     [0 -4 -4  1 1 0]       [-1/6 -1/6 -1/6]        [0 1 -1 2 -2 0]
//	     [0  4 -4 -1 1 0]       [-1/6  1/6 -1/6]        [0 1  1 4  4 0]
//	     [0 -2 -1  2 1 0]       [1/24 1/12  1/6]        [0 1 -1 8 -8 1]
//	     [0  2 -1 -2 1 0]       [1/24 -1/12 1/6]
//	     [0  4  0 -5 0 1]       [   0     0    1]

// winogradPacked is the packed Winograd engine.
type winogradPacked struct {
	convLayer
	wm  int           // output tile size: 2 or 4
	upk []*convPacked // the (wm+2)² transformed weight matrices, packed
}

// newWinogradPacked packs the transformed weight matrices U_p (Out x In
// each; 16 for F(2x2, 3x3), 36 for F(4x4, 3x3)) for the active kernel.
func newWinogradPacked(l convLayer, weight []float32, wm int) *winogradPacked {
	var u []float32
	if wm == 4 {
		u = winograd4Weights(weight, l.out, l.in)
	} else {
		u = winogradWeights(weight, l.out, l.in)
	}
	pk := make([]*convPacked, (wm+2)*(wm+2))
	for p := range pk {
		pk[p] = newConvPacked(gemmKernels.active, u[p*l.out*l.in:(p+1)*l.out*l.in], l.out, l.in, l.in)
	}
	return &winogradPacked{convLayer: l, wm: wm, upk: pk}
}

// winogradBandFloats bounds the transformed input and products of a band
// (16 or 36 x (In + Out) x tiles floats, 1.5 MiB), so that they stay in the L2
// cache between the transforms and the products; bands have at least two
// kernel panels of tiles, so that each weight panel is used twice.
const winogradBandFloats = 384 << 10

// winogradSkew is the padding, in floats, between the 16 transformed
// matrices of a band (see winogradPackedBand).
const winogradSkew = 80

// winogradTiles returns the grid of wm x wm output tiles of an h x w
// image: th rows of tw tiles, the last ones partial when wm does not
// divide the computed size (h and w, or their even parts when pooling).
func (c *winogradPacked) winogradTiles(h, w int) (th, tw int) {
	hc, wc := h, w
	if c.pool {
		hc, wc = h&^1, w&^1
	}
	return (hc + c.wm - 1) / c.wm, (wc + c.wm - 1) / c.wm
}

// winogradPackedBands splits the g tiles of a batch (image after image,
// each th x tw in row-major order) into nb bands of tsz tiles (a multiple
// of nr; the last band may be shorter). Bands span images, so that the
// products of small late layers have enough columns; they are small
// enough for the cache, and there are at least two when there are enough
// tiles, so that batch-1 passes use two cores. Every output value is
// computed the same way whatever band holds it, so results do not depend
// on the split.
func (c *winogradPacked) winogradPackedBands(g int) (nb, tsz int) {
	nr := c.upk[0].kern.nr
	npos := (c.wm + 2) * (c.wm + 2)
	tmax := max(2*nr, winogradBandFloats/(npos*(c.in+c.out))/nr*nr)
	nb = max((g+tmax-1)/tmax, min(2, (g+nr-1)/nr))
	tsz = ((g+nb-1)/nb + nr - 1) / nr * nr
	nb = (g + tsz - 1) / tsz
	return nb, tsz
}

func (c *winogradPacked) forward(dst, x []float32, n, h, w int, ws *Workspace) {
	th, tw := c.winogradTiles(h, w)
	if th == 0 || tw == 0 {
		return
	}
	g := n * th * tw
	nb, tsz := c.winogradPackedBands(g)
	workers := c.parallelism(n, h*w)
	// A band count that is a multiple of the workers keeps them all busy
	// to the end. The split does not change the results (see
	// winogradPackedBands).
	if workers > 1 && nb > 1 && nb%workers != 0 {
		nr := c.upk[0].kern.nr
		nb2 := (nb + workers - 1) / workers * workers
		if tsz2 := ((g+nb2-1)/nb2 + nr - 1) / nr * nr; (g+tsz2-1)/tsz2 == nb2 {
			nb, tsz = nb2, tsz2
		}
	}
	// With fewer bands than twice the workers (small late layers at
	// batch 1), the output channels are split too; each chunk repeats
	// its band's input transform, which is cheap next to its products.
	mp := c.upk[0].mp
	oc := 1
	if workers > 1 && nb < 2*workers {
		oc = max(1, min((2*workers+nb-1)/nb, mp/4))
	}
	csz := (mp + oc - 1) / oc
	oc = (mp + csz - 1) / csz
	tasks := nb * oc
	workers = max(1, min(workers, tasks))
	scratch := ws.scratch(workers)
	for i := range scratch {
		c.winogradGrow(&scratch[i].packedScratch, tsz, csz, tw)
	}
	For(workers, tasks, func(wk, t int) {
		g0 := t / oc * tsz
		t0 := t % oc * csz
		c.winogradPackedBand(dst, x, h, w, th, tw, g0, min(g0+tsz, g), t0, min(t0+csz, mp), &scratch[wk].packedScratch)
	})
}

// winogradPackedBand computes tiles g0..g1 of the batch (image after
// image, each th x tw tiles in row-major order) for the output channels
// of row panels t0..t1: x is n x In x h x w, dst is n x Out x oh x ow.
func (c *winogradPacked) winogradPackedBand(dst, x []float32, h, w, th, tw, g0, g1, t0, t1 int, s *packedScratch) {
	kn := &c.upk[0].kern
	mr, nr := kn.mr, kn.nr
	in := c.in
	mp := t1 - t0
	o0, o1 := t0*mr, min(t1*mr, c.out)
	tiles := g1 - g0
	np := (tiles + nr - 1) / nr
	tpad := np * nr
	npos := len(c.upk)
	per := th * tw
	oh, ow := c.OutputSize(h, w)
	// The npos matrices are written (V) and read (M) together, npos
	// streams at once: a stride of a multiple of 4 KiB would map them to
	// the same L1 sets, so the strides are skewed by 5 cache lines.
	vstride := in*tpad + winogradSkew
	ldm := convLd(tpad)
	mstride := mp*mr*ldm + winogradSkew
	s.b = growF32(s.b, npos*vstride)
	s.c = growF32(s.c, npos*mstride)
	v, m := s.b, s.c
	kb := c.upk[0].kb

	for a := g0; a < g1; {
		img := a / per
		e := min(g1, (img+1)*per)
		c.winogradInput(v, vstride, tpad, x[img*in*h*w:(img+1)*in*h*w], h, w, tw, a-img*per, e-img*per, a-g0, s)
		a = e
	}
	// Zero the unused lanes of the last panel.
	if tiles < tpad {
		for c0 := 0; c0 < in; c0 += kb {
			kbb := min(kb, in-c0)
			for ci := c0; ci < c0+kbb; ci++ {
				o := c0*tpad + (ci-c0)*nr + (np-1)*kbb*nr
				for p := range npos {
					clear(v[p*vstride+o+tiles-(np-1)*nr : p*vstride+o+nr])
				}
			}
		}
	}

	// The 16 products M_p = U_p V_p, into m[p*mstride + row*ldm + g].
	for p := range npos {
		up := c.upk[p]
		vp := v[p*vstride : (p+1)*vstride]
		mpp := m[p*mstride : (p+1)*mstride]
		var beta float32
		for c0 := 0; c0 < in; c0 += kb {
			kbb := min(kb, in-c0)
			for j := range np {
				bp := vp[c0*tpad+j*kbb*nr:]
				for t := t0; t < t1; t++ {
					kn.call(kbb, up.panel(c0, t), bp, mpp[(t-t0)*mr*ldm+j*nr:], ldm, 1, beta)
				}
			}
			beta = 1
		}
	}

	// Output transforms, image by image.
	for a := g0; a < g1; {
		img := a / per
		e := min(g1, (img+1)*per)
		d := dst[img*c.out*oh*ow : (img+1)*c.out*oh*ow]
		if c.wm == 4 {
			c.winograd4Output(d, m[a-g0:], h, w, tw, a-img*per, e-a, o0, o1, ldm, mstride)
		} else {
			c.winogradOutput(d, m[a-g0:], h, w, tw, a-img*per, e-a, o0, o1, ldm, mstride)
		}
		a = e
	}
}

// winogradInput writes the input transform of tiles l0..l1 of one image
// (src, In x h x w) into the band's B panels v, starting at band tile off.
// The tiles of a tile row are transformed together, from the six (or
// four) input rows of the tile row, read in place where they lie inside
// the image and else from zero-padded copies: one run per tile row and
// panel, however few tiles a row has (a 14x14 map has four F(4x4) tiles
// per row, the first and last reaching into the padding).
func (c *winogradPacked) winogradInput(v []float32, vstride, tpad int, src []float32, h, w, tw, l0, l1, off int, s *packedScratch) {
	nr := c.upk[0].kern.nr
	kb := c.upk[0].kb
	in, wm := c.in, c.wm
	alpha := wm + 2
	maxCols := wm*tw + 2
	s.slab = growF32(s.slab, (alpha+1)*maxCols)
	zero := s.slab[alpha*maxCols : (alpha+1)*maxCols]
	clear(zero)
	var rows, sub [6][]float32
	// V_p[ci][tile] is at v[p*vstride + c0*tpad + j*kbb*nr + (ci-c0)*nr +
	// l] for the depth block c0 .. c0+kbb holding ci and band tile
	// j*nr + l.
	for c0 := 0; c0 < in; c0 += kb {
		kbb := min(kb, in-c0)
		for ci := c0; ci < c0+kbb; ci++ {
			plane := src[ci*h*w : (ci+1)*h*w]
			vc := v[c0*tpad+(ci-c0)*nr:]
			// The band's tiles of one tile row at a time.
			for g := l0; g < l1; {
				ty, tx := g/tw, g%tw
				m := min(tw-tx, l1-g)
				x0 := wm*tx - 1
				cols := wm*m + 2
				for r := range alpha {
					y := wm*ty - 1 + r
					switch {
					case y < 0 || y >= h:
						rows[r] = zero[:cols]
					case x0 >= 0 && x0+cols <= w:
						rows[r] = plane[y*w+x0 : y*w+x0+cols]
					default:
						// Clip to the image and pad with zeros.
						d := s.slab[r*maxCols : r*maxCols+cols]
						a, b := max(x0, 0), min(x0+cols, w)
						clear(d[:a-x0])
						copyRun(d[a-x0:b-x0], plane[y*w+a:y*w+b])
						clear(d[b-x0:])
						rows[r] = d
					}
				}
				// Runs within one panel.
				for k := 0; k < m; {
					q := off + g + k - l0
					j, l := q/nr, q%nr
					n := min(m-k, nr-l)
					for r := range alpha {
						sub[r] = rows[r][wm*k:]
					}
					if wm == 4 {
						winograd4InputRun(vc[j*kbb*nr+l:], vstride, &sub, n)
					} else {
						winogradInputRun(vc[j*kbb*nr+l:], vstride, (*[4][]float32)(sub[:4]), n)
					}
					k += n
				}
				g += m
			}
		}
	}
}

// copyRun copies src into dst (same length) in 16-byte moves and a
// scalar tail: the runs of the Winograd input are short (a tile row of
// a few hundred floats at most), where a call to memmove costs more than
// the move.
func copyRun(dst, src []float32) {
	dst = dst[:len(src)]
	i := 0
	for ; i+4 <= len(src); i += 4 {
		*(*[4]float32)(dst[i : i+4]) = *(*[4]float32)(src[i : i+4])
	}
	for ; i < len(src); i++ {
		dst[i] = src[i]
	}
}

// winogradOutput applies Y = Aᵀ M A of F(2x2, 3x3) to tiles g0 ..
// g0+tiles of one image for output channels o0..o1 (M_p of channel o,
// tile g0+g at m[p*mstride+(o-o0)*ldm+g]), adds the bias and applies ReLU
// and pooling, writing into dst (Out x oh x ow).
func (c *winogradPacked) winogradOutput(dst, m []float32, h, w, tw, g0, tiles, o0, o1, ldm, mstride int) {
	oh, ow := c.OutputSize(h, w)
	// The transform writes chunks of tiles into y, the two rows of output
	// values of each tile after those of the previous tile; then
	// winograd2Place puts them into the plane.
	const s = 2 * winograd2OutputChunk
	var y [2 * s]float32
	for o := o0; o < o1; o++ {
		plane := dst[o*oh*ow : (o+1)*oh*ow]
		mo := m[(o-o0)*ldm:]
		for a := 0; a < tiles; a += winograd2OutputChunk {
			n := min(winograd2OutputChunk, tiles-a)
			winograd2OutputRun(y[:], s, mo[a:], mstride, n, c.bias[o], c.relu)
			c.winograd2Place(plane, &y, h, w, ow, tw, g0+a, n)
		}
	}
}

// winograd2OutputChunk is the number of tiles winogradOutput transforms
// at a time.
const winograd2OutputChunk = 128

// winograd2Place writes the n output tiles g0 .. g0+n of one channel
// (Y[r][c] of tile g0+g at y[r*2*winograd2OutputChunk+2g+c]) into plane
// (oh x ow), max-pooling them if the layer pools: each tile is then
// exactly one pooling window (ReLU, applied before, commutes with the
// max).
func (c *winogradPacked) winograd2Place(plane []float32, y *[4 * winograd2OutputChunk]float32, h, w, ow, tw, g0, n int) {
	const s = 2 * winograd2OutputChunk
	for g := 0; g < n; {
		// The k tiles g.. are in tile row ty.
		ty, tx := (g0+g)/tw, (g0+g)%tw
		k := min(n-g, tw-tx)
		y0 := y[2*g : 2*g+2*k]
		y1 := y[s+2*g : s+2*g+2*k]
		if c.pool {
			d := plane[ty*ow+tx : ty*ow+tx+k]
			for j := range d {
				d[j] = max(max(y0[2*j], y0[2*j+1]), max(y1[2*j], y1[2*j+1]))
			}
		} else {
			oy, ox := 2*ty, 2*tx
			cols := min(2*k, w-ox)
			copy(plane[oy*w+ox:oy*w+ox+cols], y0[:cols])
			if oy+1 < h {
				copy(plane[(oy+1)*w+ox:(oy+1)*w+ox+cols], y1[:cols])
			}
		}
		g += k
	}
}

// winogradGrow sizes the buffers of s for any band of at most tsz tiles
// and csz row panels, of images tw tiles wide, so that a worker never
// reallocates them whichever bands it is handed.
func (c *winogradPacked) winogradGrow(s *packedScratch, tsz, csz, tw int) {
	kn := &c.upk[0].kern
	tpad := (tsz + kn.nr - 1) / kn.nr * kn.nr
	npos := len(c.upk)
	s.b = growF32(s.b, npos*(c.in*tpad+winogradSkew))
	s.c = growF32(s.c, npos*(csz*kn.mr*convLd(tpad)+winogradSkew))
	s.slab = growF32(s.slab, (c.wm+3)*(c.wm*tw+2))
}

// winograd4Weights returns U = G g Gᵀ of F(4x4, 3x3) for every filter,
// as 36 matrices of out x in (position-major), computed in float64 and
// rounded once.
func winograd4Weights(weight []float32, out, in int) []float32 {
	G := [6][3]float64{
		{1.0 / 4, 0, 0},
		{-1.0 / 6, -1.0 / 6, -1.0 / 6},
		{-1.0 / 6, 1.0 / 6, -1.0 / 6},
		{1.0 / 24, 1.0 / 12, 1.0 / 6},
		{1.0 / 24, -1.0 / 12, 1.0 / 6},
		{0, 0, 1},
	}
	u := make([]float32, 36*out*in)
	for o := range out {
		for i := range in {
			g := weight[(o*in+i)*9 : (o*in+i)*9+9]
			var t [6][3]float64 // G g
			for r := range 6 {
				for c := range 3 {
					t[r][c] = G[r][0]*float64(g[c]) + G[r][1]*float64(g[3+c]) + G[r][2]*float64(g[6+c])
				}
			}
			for r := range 6 {
				for c := range 6 {
					x := t[r][0]*G[c][0] + t[r][1]*G[c][1] + t[r][2]*G[c][2]
					u[((r*6+c)*out+o)*in+i] = float32(x)
				}
			}
		}
	}
	return u
}

// winograd4Output applies Y = Aᵀ M A to the tiles g0 .. g0+tiles of one
// image for output channels o0..o1 (M_p of channel o, tile g0+g at
// m[p*mstride+(o-o0)*ldm+g]), adds the bias and applies ReLU and pooling,
// writing into dst (Out x oh x ow).
func (c *winogradPacked) winograd4Output(dst, m []float32, h, w, tw, g0, tiles, o0, o1, ldm, mstride int) {
	oh, ow := c.OutputSize(h, w)
	// The transform writes chunks of tiles into y, the four rows of
	// output values of each tile after those of the previous tile; then
	// winograd4Place puts them into the plane.
	const s = 4 * winograd4OutputChunk
	var y [4 * s]float32
	if c.pool && c.relu {
		// The kernel pools too: rows of 2 values per tile.
		const s = 2 * winograd4OutputChunk
		for o := o0; o < o1; o++ {
			plane := dst[o*oh*ow : (o+1)*oh*ow]
			mo := m[(o-o0)*ldm:]
			for a := 0; a < tiles; a += winograd4OutputChunk {
				n := min(winograd4OutputChunk, tiles-a)
				winograd4OutputPoolRun(y[:], s, mo[a:], mstride, n, c.bias[o])
				for g := 0; g < n; {
					// The k tiles g.. are in tile row ty.
					ty, tx := (g0+a+g)/tw, (g0+a+g)%tw
					k := min(n-g, tw-tx)
					py, px := 2*ty, 2*tx
					cols := min(2*k, ow-px)
					for r := range min(2, oh-py) {
						copy(plane[(py+r)*ow+px:(py+r)*ow+px+cols], y[r*s+2*g:r*s+2*g+cols])
					}
					g += k
				}
			}
		}
		return
	}
	for o := o0; o < o1; o++ {
		plane := dst[o*oh*ow : (o+1)*oh*ow]
		mo := m[(o-o0)*ldm:]
		for a := 0; a < tiles; a += winograd4OutputChunk {
			n := min(winograd4OutputChunk, tiles-a)
			winograd4OutputRun(y[:], s, mo[a:], mstride, n, c.bias[o], c.relu)
			c.winograd4Place(plane, &y, h, w, oh, ow, tw, g0+a, n)
		}
	}
}

// winograd4OutputChunk is the number of tiles winograd4Output transforms
// at a time.
const winograd4OutputChunk = 64

// winograd4Place writes the n output tiles g0 .. g0+n of one channel
// (Y[r][c] of tile g0+g at y[r*4*winograd4OutputChunk+4g+c]) into plane
// (oh x ow), max-pooling them if the layer pools (ReLU, applied before,
// commutes with the max).
func (c *winogradPacked) winograd4Place(plane []float32, y *[16 * winograd4OutputChunk]float32, h, w, oh, ow, tw, g0, n int) {
	const s = 4 * winograd4OutputChunk
	for g := 0; g < n; {
		// The k tiles g.. are in tile row ty.
		ty, tx := (g0+g)/tw, (g0+g)%tw
		k := min(n-g, tw-tx)
		if c.pool {
			py, px := 2*ty, 2*tx
			cols := min(2*k, ow-px)
			for a := range min(2, oh-py) {
				y0 := y[2*a*s+4*g : 2*a*s+4*g+2*cols]
				y1 := y[(2*a+1)*s+4*g : (2*a+1)*s+4*g+2*cols]
				d := plane[(py+a)*ow+px : (py+a)*ow+px+cols]
				for j := range d {
					d[j] = max(max(y0[2*j], y0[2*j+1]), max(y1[2*j], y1[2*j+1]))
				}
			}
		} else {
			oy, ox := 4*ty, 4*tx
			cols := min(4*k, w-ox)
			for r := range min(4, h-oy) {
				copy(plane[(oy+r)*w+ox:(oy+r)*w+ox+cols], y[r*s+4*g:r*s+4*g+cols])
			}
		}
		g += k
	}
}
