package style

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
)

// ConvAlgorithm selects how a Conv computes the 3x3 convolution.
type ConvAlgorithm int

const (
	// ConvAuto, the zero value, picks per layer the fastest algorithm
	// whose error stays at float32 rounding level. With this package's
	// BLAS that is ConvWinograd4x4, or ConvWinograd for layers whose
	// F(4x4) weights would exceed 16 MiB (In x Out > 116,508, such as
	// VGG16's 512-channel layers; see autoAlgorithmBytes), and im2col for
	// layers with fewer than 8 input channels (VGG16's first); with any
	// other BLAS it is ConvIm2col.
	ConvAuto ConvAlgorithm = iota
	// ConvIm2col lowers the convolution to one GEMM with K = 9 x In + 1
	// (the bias) per band of output rows. It is the reference: float32
	// accumulation over 9 x In products. On the VGG16 formula golden the
	// relative L2 error of the features against float64 PyTorch is about
	// 9e-7 with this package's BLAS (fused multiply-adds).
	ConvIm2col
	// ConvWinograd uses Winograd's minimal filtering F(2x2, 3x3) (Lavin and
	// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
	// each 2x2 output tile costs 16 products per input channel instead of
	// 36, as 16 GEMMs with K = In, 2.25x fewer multiply-adds than im2col.
	// The transforms only add, subtract and halve, and each GEMM sums
	// In products instead of 9 x In, so the error stays at im2col's level:
	// on the VGG16 formula golden the relative L2 error is about 8e-7.
	ConvWinograd
	// ConvWinograd4x4 uses Winograd's F(4x4, 3x3): each 4x4 output tile
	// costs 36 products per input channel instead of 144, 4x fewer
	// multiply-adds than im2col. Its transforms multiply by constants up
	// to 8 (and the weight transform divides by 24), so it rounds a little
	// more than F(2x2, 3x3): on the VGG16 formula golden the relative L2
	// error is 1.6e-6 to 1.9e-6 (tolerance 1e-4). It needs this package's
	// BLAS, whose kernel it drives directly; with another BLAS it computes
	// as ConvWinograd.
	ConvWinograd4x4
)

// String returns the algorithm's name.
func (a ConvAlgorithm) String() string {
	switch a {
	case ConvAuto:
		return "auto"
	case ConvIm2col:
		return "im2col"
	case ConvWinograd:
		return "winograd"
	case ConvWinograd4x4:
		return "winograd4x4"
	}
	return fmt.Sprintf("ConvAlgorithm(%d)", int(a))
}

// winogradWeights returns the transformed weights U = G g G^T of
// F(2x2, 3x3), laid out as 16 matrices of out x in (position-major),
// computed in float64 and rounded once.
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

// winogradBands splits the output rows like bands, with bands of an even
// number of rows (whole 2x2 tiles) sized for the transformed buffers.
func (c *Conv) winogradBands(h, w int) (hc, rows, nb int) {
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
func (c *Conv) winogradTileCols(w int) int {
	if c.pool {
		return w / 2
	}
	return (w + 1) / 2
}

// winogradScratch returns the sizes of the transformed input and output
// buffers of a band of rows x w outputs and osz output channels.
func (c *Conv) winogradScratch(rows, w, osz int) (colN, outN int) {
	tiles := (rows / 2) * c.winogradTileCols(w)
	return 16 * c.in * tiles, 16 * osz * tiles
}

// winogradBand computes output rows y0..y1 (y0 even) of output channels
// o0..o1 of one image with F(2x2, 3x3): src is In x h x w, dst is
// Out x oh x ow.
func (c *Conv) winogradBand(dst, src []float32, h, w, y0, y1, o0, o1 int, s *convScratch) {
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
