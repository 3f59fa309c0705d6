package engine

// The pointwise path of GEMMConv: 1x1 convolutions without padding, at
// any stride, which are plain GEMMs W (Out x In) · X (In x pixels)
// (after subsampling, at stride s > 1). They hold about half of a
// ResNet-50's arithmetic, in products too short (K = In, from 64) for a
// copy of the input into a slab and of the product out of a band buffer
// to stay cheap, so this path does neither where it can:
//
//   - the columns of the product are the output pixels of the whole
//     batch, image after image, in panels of nr; a panel inside one image
//     at stride 1 is read in place by the indirect kernel (B row p is
//     channel p's plane, offset p·h·w), and the others (across images,
//     past the batch's end, or strided) are gathered once per task into
//     a packed panel (B row p at p·nr);
//   - each tile of mr output channels x nr pixels inside one image is
//     written by the kernel straight into dst (ldc = oh·ow); the others
//     (the last, partial row panel, and panels across images) go through
//     a scratch tile;
//   - a residual already in dst is added by the kernel itself: its first
//     depth block runs with beta = 1 instead of 0, and the last adds the
//     bias and applies the ReLU. Against a second pass over the output
//     this saves 41%, 25%, 14% and 4% of the CPU time of ResNet-50's
//     residual layers at 56x56, 28x28, 14x14 and 7x7 at batch 1
//     (BenchmarkGEMMConvResidual, Zen 5 with AVX-512).
//
// A tile runs all its depth blocks one after another, so that a scratch
// tile lives for one tile; a task is a block of panels whose B fits the
// L2 cache times a chunk of row panels, and sweeps the row panels over
// the block so that each A panel serves every panel of the block.

// pointwisePlan is the split of one pointwise pass.
type pointwisePlan struct {
	n, h, w int
	hw      int // output pixels per image
	g       int // output pixels of the batch
	np      int // panels of nr pixels
	jb      int // panels per block
	nbk     int // blocks
	oc, tsz int // chunks of row panels, panels per chunk
	workers int
}

// pointwiseBlockFloats bounds the B panels of a task (256 KiB), which
// every row panel of its chunk reads again.
const pointwiseBlockFloats = 64 << 10

func (c *GEMMConv) pointwisePlan(n, h, w int) pointwisePlan {
	kn := &c.packed.kern
	nr := kn.nr
	oh, ow := c.OutputSize(h, w)
	pl := pointwisePlan{n: n, h: h, w: w, hw: oh * ow}
	pl.g = n * pl.hw
	pl.np = (pl.g + nr - 1) / nr
	pl.jb = max(1, min(16, pointwiseBlockFloats/(c.in*nr)))
	pl.workers = Workers(c.workers)
	if int64(pl.g)*c.minParallelPerOutput < convMinParallelFlops {
		pl.workers = 1
	}
	pl.nbk = (pl.np + pl.jb - 1) / pl.jb
	// Enough blocks to keep the workers busy, and a multiple of them.
	if w := pl.workers; w > 1 && pl.nbk < 4*w {
		pl.nbk = min(pl.np, (max(pl.nbk, 2*w)+w-1)/w*w)
	}
	pl.jb = (pl.np + pl.nbk - 1) / pl.nbk
	pl.nbk = (pl.np + pl.jb - 1) / pl.jb
	pl.oc, pl.tsz = rowChunks(c.packed.mp, pl.nbk, pl.workers)
	pl.workers = max(1, min(pl.workers, pl.nbk*pl.oc))
	return pl
}

func (c *GEMMConv) forwardPointwise(dst, x []float32, n, h, w int, residual bool, ws *Workspace) {
	pl := c.pointwisePlan(n, h, w)
	pk := c.packed
	nr, mr := pk.kern.nr, pk.kern.mr
	if int64(c.in)*int64(h*w) > 1<<31-1-int64(nr) {
		panic("style: GEMMConv.Forward: the input planes are too large for the kernels' 32-bit offsets")
	}
	scratch := ws.scratch(pl.workers)
	for i := range scratch {
		s := &scratch[i].packedScratch
		s.b = growF32(s.b, pl.jb*pk.k*nr)
		s.c = growF32(s.c, mr*nr)
		// Offsets of B rows in place (p·h·w), then in a packed panel (p·nr).
		if cap(s.off) < 2*pk.k {
			s.off = make([]int32, 2*pk.k)
		}
		s.off = s.off[:2*pk.k]
		for p := range pk.k {
			s.off[p] = int32(p * h * w)
			s.off[pk.k+p] = int32(p * nr)
		}
	}
	For(pl.workers, pl.nbk*pl.oc, func(wk, t int) {
		blk, j := t/pl.oc, t%pl.oc
		t0 := j * pl.tsz
		j0 := blk * pl.jb
		c.pointwiseTask(dst, x, residual, &pl, j0, min(j0+pl.jb, pl.np), t0, min(t0+pl.tsz, pk.mp), &scratch[wk].packedScratch)
	})
}

// pointwiseDirect reports whether panel j of pl is read in place: it
// lies inside one image, at stride 1.
func (c *GEMMConv) pointwiseDirect(pl *pointwisePlan, j int) (img, q0 int, ok bool) {
	nr := c.packed.kern.nr
	g0 := j * nr
	img, q0 = g0/pl.hw, g0%pl.hw
	return img, q0, q0+nr <= pl.hw
}

// pointwiseTask computes panels j0..j1 of the output pixels for the
// output channels of row panels t0..t1.
func (c *GEMMConv) pointwiseTask(dst, x []float32, residual bool, pl *pointwisePlan, j0, j1, t0, t1 int, s *packedScratch) {
	pk := c.packed
	kn := &pk.kern
	mr, nr, k := kn.mr, kn.nr, pk.k
	in, hw, inHW := c.in, pl.hw, pl.h*pl.w
	// Gather the panels not read in place.
	for j := j0; j < j1; j++ {
		if _, _, ok := c.pointwiseDirect(pl, j); ok && c.stride == 1 {
			continue
		}
		c.gatherPanel(s.b[(j-j0)*k*nr:(j-j0+1)*k*nr], x, pl, j)
	}
	offDirect, offPacked := s.off[:k], s.off[k:2*k]
	tile := s.c[:mr*nr]
	beta0 := float32(0)
	if residual {
		beta0 = 1
	}
	relu := c.relu
	for t := t0; t < t1; t++ {
		a0 := t * mr
		rows := min(mr, c.out-a0)
		bias := pk.bias[a0 : a0+mr]
		for j := j0; j < j1; j++ {
			img, q0, inside := c.pointwiseDirect(pl, j)
			var b []float32
			off := offPacked
			if inside && c.stride == 1 {
				b, off = x[img*in*inHW+q0:], offDirect
			} else {
				b = s.b[(j-j0)*k*nr : (j-j0+1)*k*nr]
			}
			if inside && rows == mr {
				cd := dst[(img*c.out+a0)*hw+q0:]
				c.pointwiseTile(b, off, cd, hw, t, beta0, bias, relu)
				continue
			}
			// Through the scratch tile, loaded with the residual if any.
			if residual {
				c.tileIO(tile, dst, pl, j, a0, rows, false)
			}
			c.pointwiseTile(b, off, tile, nr, t, beta0, bias, relu)
			c.tileIO(tile, dst, pl, j, a0, rows, true)
		}
	}
}

// pointwiseTile runs every depth block of row panel t on the B panel b
// (row p at b[off[p]:]) into the tile c (row stride ldc), the first with
// beta0 and the last adding bias and applying relu.
func (c *GEMMConv) pointwiseTile(b []float32, off []int32, cd []float32, ldc, t int, beta0 float32, bias []float32, relu bool) {
	pk := c.packed
	kn := &pk.kern
	beta := beta0
	for p0 := 0; p0 < pk.k; p0 += pk.kb {
		kbb := min(pk.kb, pk.k-p0)
		o := off[p0 : p0+kbb]
		if p0+kbb == pk.k {
			kn.callInd(kbb, pk.panel(p0, t), b, o, int(o[kbb-1]), cd, ldc, beta, bias, relu)
			return
		}
		kn.callInd(kbb, pk.panel(p0, t), b, o, int(o[kbb-1]), cd, ldc, beta, nil, false)
		beta = 1
	}
}

// tileIO copies the valid part of a scratch tile (rows output channels
// from a0, the pixels of panel j inside the batch) between the tile (mr
// x nr) and dst: into dst if store, else from dst, zeroing the rest of
// the tile.
func (c *GEMMConv) tileIO(tile, dst []float32, pl *pointwisePlan, j, a0, rows int, store bool) {
	kn := &c.packed.kern
	mr, nr := kn.mr, kn.nr
	if !store {
		clear(tile)
	}
	// Runs of the panel's pixels within one image.
	for l := 0; l < nr; {
		g := j*nr + l
		if g >= pl.g {
			break
		}
		img, q := g/pl.hw, g%pl.hw
		cnt := min(nr-l, pl.hw-q)
		for r := range min(rows, mr) {
			d := dst[(img*c.out+a0+r)*pl.hw+q:][:cnt]
			tl := tile[r*nr+l:][:cnt]
			if store {
				copy(d, tl)
			} else {
				copy(tl, d)
			}
		}
		l += cnt
	}
}

// gatherPanel writes panel j of the implicit B (In x the batch's output
// pixels) into dst as In rows of nr floats, zero past the batch.
func (c *GEMMConv) gatherPanel(dst, x []float32, pl *pointwisePlan, j int) {
	nr := c.packed.kern.nr
	in, s := c.in, c.stride
	inHW := pl.h * pl.w
	_, ow := c.OutputSize(pl.h, pl.w)
	for l := 0; l < nr; {
		g := j*nr + l
		if g >= pl.g {
			for p := range in {
				clear(dst[p*nr+l : (p+1)*nr])
			}
			return
		}
		img, q := g/pl.hw, g%pl.hw
		src := x[img*in*inHW:]
		if s == 1 {
			// A run of pixels within the image.
			cnt := min(nr-l, pl.hw-q)
			for p := range in {
				copy(dst[p*nr+l:p*nr+l+cnt], src[p*inHW+q:p*inHW+q+cnt])
			}
			l += cnt
			continue
		}
		// A run within one output row: every s-th input pixel of input
		// row s·oy.
		oy, ox := q/ow, q%ow
		cnt := min(nr-l, ow-ox)
		base := s*oy*pl.w + s*ox
		for p := range in {
			d := dst[p*nr+l : p*nr+l+cnt]
			row := src[p*inHW+base:]
			for i := range d {
				d[i] = row[s*i]
			}
		}
		l += cnt
	}
}
