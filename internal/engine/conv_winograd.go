package engine

import "gonum.org/v1/gonum/blas"

// The Winograd F(2x2, 3x3) engine through a caller's BLAS (Lavin and
// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Each
// 2x2 output tile comes from a 4x4 input patch d as
//
//	Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A
//
//	Bᵀ = [1  0 -1  0]   G = [  1    0    0]   Aᵀ = [1 1  1  0]
//	     [0  1  1  0]       [1/2  1/2  1/2]        [0 1 -1 -1]
//	     [0 -1  1  0]       [1/2 -1/2  1/2]
//	     [0  1  0 -1]       [  0    0    1]
//
// so that the 16 element-wise products, summed over the input channels,
// are 16 GEMMs with K = In (M_p = U_p V_p, U_p from winogradWeights). A
// task is a band of tile rows of one image (and a chunk of output
// channels when there are few bands): it transforms the band's input,
// runs the 16 products through Sgemm, and transforms the output, adding
// the bias and applying ReLU and pooling.

// winogradBLAS is the Winograd F(2x2, 3x3) engine through a caller's
// BLAS.
type winogradBLAS struct {
	convLayer
	wino []float32 // transformed weights, 16 x out x in
	impl blas.Float32Level3
}

func (c *winogradBLAS) forward(dst, x []float32, n, h, w int, ws *Workspace) {
	hc, rows, nb := c.winogradBands(h, w)
	oc, osz := c.outChunks(nb)
	colN, outN := c.winogradScratch(rows, w, osz)
	c.forwardBands(dst, x, n, h, w, hc, rows, nb, oc, osz, colN, outN, c.winogradBand, ws)
}

// winogradBands splits the output rows like bands, with bands of an even
// number of rows (whole 2x2 tiles) sized for the transformed buffers.
func (c *winogradBLAS) winogradBands(h, w int) (hc, rows, nb int) {
	hc = h
	if c.pool {
		hc = h &^ 1
	}
	tw := c.winogradTileCols(w)
	tiles := ((hc + 1) / 2) * tw
	per := 16 * max(c.in, c.out) // floats of the larger buffer per tile
	nb = max(1, (tiles*per+convBandBudget-1)/convBandBudget)
	nb = max(nb, min((hc+1)/2, tiles/256))
	tileRows := ((hc+1)/2 + nb - 1) / nb
	rows = 2 * tileRows
	nb = (hc + rows - 1) / rows
	return hc, rows, nb
}

// winogradTileCols returns the number of 2x2 tiles across a row of w
// outputs: an odd last column is a partial tile, or is dropped when pooling.
func (c *winogradBLAS) winogradTileCols(w int) int {
	if c.pool {
		return w / 2
	}
	return (w + 1) / 2
}

// winogradScratch returns the sizes of the transformed input and output
// buffers of a band of rows x w outputs and osz output channels.
func (c *winogradBLAS) winogradScratch(rows, w, osz int) (colN, outN int) {
	tiles := (rows / 2) * c.winogradTileCols(w)
	return 16 * c.in * tiles, 16 * osz * tiles
}

// winogradBand computes output rows y0..y1 (y0 even) of output channels
// o0..o1 of one image with F(2x2, 3x3): src is In x h x w, dst is
// Out x oh x ow.
func (c *winogradBLAS) winogradBand(dst, src []float32, h, w, y0, y1, o0, o1 int, s *convScratch) {
	tw := c.winogradTileCols(w)
	th := (y1 - y0 + 1) / 2
	tiles := th * tw
	in, out := c.in, o1-o0
	v := s.col[:16*in*tiles]
	m := s.out[:16*out*tiles]
	// Four zero-padded input rows (columns -1 .. 2*tw+1) and their row
	// combinations.
	pw := 2*tw + 2
	if cap(s.pad) < 8*pw {
		s.pad = make([]float32, 8*pw)
	}
	pad := s.pad[:8*pw]
	d := [4][]float32{pad[0:pw], pad[pw : 2*pw], pad[2*pw : 3*pw], pad[3*pw : 4*pw]}
	t := [4][]float32{pad[4*pw : 5*pw], pad[5*pw : 6*pw], pad[6*pw : 7*pw], pad[7*pw : 8*pw]}
	stride := in * tiles
	var vr [16][]float32

	// Input transform V = B^T d B of every 4x4 patch (rows 2ty-1..2ty+2,
	// columns 2tx-1..2tx+2, zero outside the image), one row of tiles at a
	// time: first t = B^T d on whole rows, then t B per tile.
	for ci := range in {
		plane := src[ci*h*w : (ci+1)*h*w]
		for ty := range th {
			for r := range 4 {
				clear(d[r])
				if sy := y0 + 2*ty - 1 + r; sy >= 0 && sy < h {
					copy(d[r][1:], plane[sy*w:sy*w+min(w, pw-1)])
				}
			}
			d0, d1, d2, d3 := d[0], d[1][:len(d[0])], d[2][:len(d[0])], d[3][:len(d[0])]
			t0, t1, t2, t3 := t[0][:len(d0)], t[1][:len(d0)], t[2][:len(d0)], t[3][:len(d0)]
			for k := range d0 {
				t0[k] = d0[k] - d2[k]
				t1[k] = d1[k] + d2[k]
				t2[k] = d2[k] - d1[k]
				t3[k] = d1[k] - d3[k]
			}
			base := ci*tiles + ty*tw
			for p := range 16 {
				vr[p] = v[p*stride+base : p*stride+base+tw]
			}
			for r := range 4 {
				tr := t[r]
				o0, o1, o2, o3 := vr[4*r][:tw], vr[4*r+1][:tw], vr[4*r+2][:tw], vr[4*r+3][:tw]
				for tx := range tw {
					q := tr[2*tx : 2*tx+4 : 2*tx+4]
					o0[tx] = q[0] - q[2]
					o1[tx] = q[1] + q[2]
					o2[tx] = q[2] - q[1]
					o3[tx] = q[1] - q[3]
				}
			}
		}
	}

	// 16 independent products M_p = U_p V_p.
	for p := range 16 {
		u := c.wino[(p*c.out+o0)*in : (p*c.out+o1)*in]
		c.impl.Sgemm(blas.NoTrans, blas.NoTrans, out, tiles, in, 1,
			u, in,
			v[p*in*tiles:(p+1)*in*tiles], tiles,
			0, m[p*out*tiles:(p+1)*out*tiles], tiles)
	}

	// Output transform Y = A^T M A, bias, ReLU, and pooling or clipping,
	// one row of tiles at a time.
	oh, ow := c.OutputSize(h, w)
	mstride := out * tiles
	var mr [16][]float32
	for o := range out {
		b := c.bias[o0+o]
		plane := dst[(o0+o)*oh*ow : (o0+o+1)*oh*ow]
		for ty := range th {
			base := o*tiles + ty*tw
			for p := range 16 {
				mr[p] = m[p*mstride+base : p*mstride+base+tw]
			}
			// Row combinations r = A^T q, one output row pair at a time.
			for tx := range tw {
				var r0, r1 [4]float32
				for k := range 4 {
					q0, q1, q2, q3 := mr[k][tx], mr[4+k][tx], mr[8+k][tx], mr[12+k][tx]
					r0[k] = q0 + q1 + q2
					r1[k] = q1 - q2 - q3
				}
				y00 := r0[0] + r0[1] + r0[2] + b
				y01 := r0[1] - r0[2] - r0[3] + b
				y10 := r1[0] + r1[1] + r1[2] + b
				y11 := r1[1] - r1[2] - r1[3] + b
				if c.relu {
					y00, y01, y10, y11 = max(y00, 0), max(y01, 0), max(y10, 0), max(y11, 0)
				}
				if c.pool {
					// The tile is exactly one pooling window.
					plane[(y0/2+ty)*ow+tx] = max(max(y00, y01), max(y10, y11))
					continue
				}
				oy, ox := y0+2*ty, 2*tx
				plane[oy*w+ox] = y00
				if ox+1 < w {
					plane[oy*w+ox+1] = y01
				}
				if oy+1 < y1 {
					plane[(oy+1)*w+ox] = y10
					if ox+1 < w {
						plane[(oy+1)*w+ox+1] = y11
					}
				}
			}
		}
	}
}
