package style

// Winograd F(4x4, 3x3) for the packed path: 6x6 input patches give 4x4
// output tiles through 36 products with K = In, 4x fewer multiply-adds
// than im2col (F(2x2, 3x3): 2.25x). The matrices are those of Lavin and
// Gray (interpolation points 0, ±1, ±2, ∞):
//
//	Bᵀ = [4  0 -5  0 1 0]   G = [ 1/4     0    0]   Aᵀ = [1 1  1 1  1 0]
//	     [0 -4 -4  1 1 0]       [-1/6 -1/6 -1/6]        [0 1 -1 2 -2 0]
//	     [0  4 -4 -1 1 0]       [-1/6  1/6 -1/6]        [0 1  1 4  4 0]
//	     [0 -2 -1  2 1 0]       [1/24 1/12  1/6]        [0 1 -1 8 -8 1]
//	     [0  2 -1 -2 1 0]       [1/24 -1/12 1/6]
//	     [0  4  0 -5 0 1]       [   0     0    1]

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
func (c *Conv) winograd4Output(dst, m []float32, h, w, tw, g0, tiles, o0, o1, ldm, mstride int) {
	oh, ow := c.OutputSize(h, w)
	// The transform writes chunks of tiles position-major into y, then
	// winograd4Place puts them into the plane.
	var y [16 * winograd4OutputChunk]float32
	for o := o0; o < o1; o++ {
		plane := dst[o*oh*ow : (o+1)*oh*ow]
		mo := m[(o-o0)*ldm:]
		for a := 0; a < tiles; a += winograd4OutputChunk {
			n := min(winograd4OutputChunk, tiles-a)
			winograd4OutputRun(y[:], winograd4OutputChunk, mo[a:], mstride, n, c.bias[o], c.relu)
			c.winograd4Place(plane, &y, h, w, oh, ow, tw, g0+a, n)
		}
	}
}

// winograd4OutputChunk is the number of tiles winograd4Output transforms
// at a time.
const winograd4OutputChunk = 64

// winograd4Place writes the n output tiles g0 .. g0+n of one channel
// (Y[r][c] of tile g0+g at y[(4r+c)*winograd4OutputChunk+g]) into plane
// (oh x ow), max-pooling them if the layer pools.
func (c *Conv) winograd4Place(plane []float32, y *[16 * winograd4OutputChunk]float32, h, w, oh, ow, tw, g0, n int) {
	const s = winograd4OutputChunk
	ty, tx := g0/tw, g0%tw
	for g := range n {
		if c.pool {
			// Four 2x2 pooling windows (ReLU commutes with the max).
			py, px := 2*ty, 2*tx
			if py+1 < oh && px+1 < ow {
				d0 := plane[py*ow+px : py*ow+px+2 : py*ow+px+2]
				d1 := plane[(py+1)*ow+px : (py+1)*ow+px+2 : (py+1)*ow+px+2]
				d0[0] = max(max(y[0*s+g], y[1*s+g]), max(y[4*s+g], y[5*s+g]))
				d0[1] = max(max(y[2*s+g], y[3*s+g]), max(y[6*s+g], y[7*s+g]))
				d1[0] = max(max(y[8*s+g], y[9*s+g]), max(y[12*s+g], y[13*s+g]))
				d1[1] = max(max(y[10*s+g], y[11*s+g]), max(y[14*s+g], y[15*s+g]))
			} else {
				for a := range 2 {
					if py+a >= oh {
						break
					}
					for bb := range 2 {
						if px+bb >= ow {
							break
						}
						q := 8*a + 2*bb
						plane[(py+a)*ow+px+bb] = max(max(y[q*s+g], y[(q+1)*s+g]), max(y[(q+4)*s+g], y[(q+5)*s+g]))
					}
				}
			}
		} else {
			oy, ox := 4*ty, 4*tx
			if oy+3 < h && ox+3 < w {
				for r := range 4 {
					d := plane[(oy+r)*w+ox : (oy+r)*w+ox+4 : (oy+r)*w+ox+4]
					d[0], d[1], d[2], d[3] = y[(4*r)*s+g], y[(4*r+1)*s+g], y[(4*r+2)*s+g], y[(4*r+3)*s+g]
				}
			} else {
				for r := range min(4, h-oy) {
					for cc := range min(4, w-ox) {
						plane[(oy+r)*w+ox+cc] = y[(4*r+cc)*s+g]
					}
				}
			}
		}
		if tx++; tx == tw {
			tx = 0
			ty++
		}
	}
}
