package style

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
)

// ConvAlgorithm selects how a Conv computes the 3x3 convolution.
type ConvAlgorithm int

const (
	// ConvIm2col lowers the convolution to one GEMM with K = 9 x In per
	// band of output rows. It is the default and the reference: float32
	// accumulation over 9 x In products.
	ConvIm2col ConvAlgorithm = iota
	// ConvWinograd uses Winograd's minimal filtering F(2x2, 3x3) (Lavin and
	// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
	// each 2x2 output tile costs 16 products per input channel instead of
	// 36, as 16 GEMMs with K = In, 2.25x fewer multiply-adds than im2col.
	// The transforms only add, subtract and halve, and each GEMM sums
	// In products instead of 9 x In, so the error stays at im2col's level:
	// on the VGG16 formula golden the relative L2 error of the features
	// against float64 PyTorch is about 8e-7 (im2col: 2e-6). The larger
	// F(4x4, 3x3) tiles, with transform constants up to 8, would lose more.
	ConvWinograd
)

// String returns the algorithm's name.
func (a ConvAlgorithm) String() string {
	switch a {
	case ConvIm2col:
		return "im2col"
	case ConvWinograd:
		return "winograd"
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
// buffers of a band of rows x w outputs.
func (c *Conv) winogradScratch(rows, w int) (colN, outN int) {
	tiles := (rows / 2) * c.winogradTileCols(w)
	return 16 * c.in * tiles, 16 * c.out * tiles
}

// winogradBand computes output rows y0..y1 (y0 even) of one image with
// F(2x2, 3x3): src is In x h x w, dst is Out x oh x ow.
func (c *Conv) winogradBand(dst, src []float32, h, w, y0, y1 int, s *convScratch) {
	tw := c.winogradTileCols(w)
	th := (y1 - y0 + 1) / 2
	tiles := th * tw
	in, out := c.in, c.out
	v := s.col[:16*in*tiles]
	m := s.out[:16*out*tiles]

	// Input transform V = B^T d B of every 4x4 patch (rows 2ty-1..2ty+2,
	// columns 2tx-1..2tx+2, zero outside the image).
	for ci := range in {
		plane := src[ci*h*w : (ci+1)*h*w]
		for ty := range th {
			oy := y0 + 2*ty - 1
			for tx := range tw {
				ox := 2*tx - 1
				var d [4][4]float32
				for r := range 4 {
					sy := oy + r
					if sy < 0 || sy >= h {
						continue
					}
					row := plane[sy*w : sy*w+w]
					if ox >= 0 && ox+3 < w {
						d[r] = [4]float32(row[ox : ox+4])
						continue
					}
					for k := range 4 {
						if sx := ox + k; sx >= 0 && sx < w {
							d[r][k] = row[sx]
						}
					}
				}
				// t = B^T d (combine rows), then V = t B (combine columns).
				var t [4][4]float32
				for k := range 4 {
					t[0][k] = d[0][k] - d[2][k]
					t[1][k] = d[1][k] + d[2][k]
					t[2][k] = d[2][k] - d[1][k]
					t[3][k] = d[1][k] - d[3][k]
				}
				base := ci*tiles + ty*tw + tx
				stride := in * tiles
				for r := range 4 {
					v[(r*4+0)*stride+base] = t[r][0] - t[r][2]
					v[(r*4+1)*stride+base] = t[r][1] + t[r][2]
					v[(r*4+2)*stride+base] = t[r][2] - t[r][1]
					v[(r*4+3)*stride+base] = t[r][1] - t[r][3]
				}
			}
		}
	}

	// 16 independent products M_p = U_p V_p.
	for p := range 16 {
		c.impl.Sgemm(blas.NoTrans, blas.NoTrans, out, tiles, in, 1,
			c.wino[p*out*in:(p+1)*out*in], in,
			v[p*in*tiles:(p+1)*in*tiles], tiles,
			0, m[p*out*tiles:(p+1)*out*tiles], tiles)
	}

	// Output transform Y = A^T M A, bias, ReLU, and pooling or clipping.
	oh, ow := c.OutputSize(h, w)
	stride := out * tiles
	for o := range out {
		b := c.bias[o]
		plane := dst[o*oh*ow : (o+1)*oh*ow]
		for ty := range th {
			for tx := range tw {
				base := o*tiles + ty*tw + tx
				var q [4][4]float32
				for p := range 16 {
					q[p/4][p%4] = m[p*stride+base]
				}
				// r = A^T q (2x4), y = r A (2x2).
				var y [2][2]float32
				for r, row := range [2][4]float32{
					{q[0][0] + q[1][0] + q[2][0], q[0][1] + q[1][1] + q[2][1], q[0][2] + q[1][2] + q[2][2], q[0][3] + q[1][3] + q[2][3]},
					{q[1][0] - q[2][0] - q[3][0], q[1][1] - q[2][1] - q[3][1], q[1][2] - q[2][2] - q[3][2], q[1][3] - q[2][3] - q[3][3]},
				} {
					y[r][0] = row[0] + row[1] + row[2] + b
					y[r][1] = row[1] - row[2] - row[3] + b
					if c.relu {
						y[r][0] = max(y[r][0], 0)
						y[r][1] = max(y[r][1], 0)
					}
				}
				if c.pool {
					// The tile is exactly one pooling window.
					plane[(y0/2+ty)*ow+tx] = max(max(y[0][0], y[0][1]), max(y[1][0], y[1][1]))
					continue
				}
				for r := range 2 {
					oy := y0 + 2*ty + r
					if oy >= y1 {
						break
					}
					for k := range 2 {
						if ox := 2*tx + k; ox < w {
							plane[oy*w+ox] = y[r][k]
						}
					}
				}
			}
		}
	}
}
